// Save: a message for the new version, then PUT the document.
import { useState } from "react";
import { Dialog } from "./Dialog";

export function SaveDialog({
  onSave,
  onClose,
  busy,
}: {
  onSave: (message: string) => void;
  onClose: () => void;
  busy: boolean;
}) {
  const [message, setMessage] = useState("");
  return (
    <Dialog title="Save a new version" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          onSave(message.trim());
        }}
      >
        <label className="dm-field">
          <span>What changed?</span>
          <input
            id="save-message"
            autoFocus
            value={message}
            maxLength={500}
            placeholder="e.g. Drop short documents"
            onChange={(e) => setMessage(e.target.value)}
          />
        </label>
        <div className="dm-dialog-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Saving…" : "Save"}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
