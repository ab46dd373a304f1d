// The keyboard shortcuts of the canvas, listed in a small help (the ? key or the button).
export const SHORTCUTS: [string, string][] = [
  ["Ctrl+S", "Save a new version"],
  ["Ctrl+Z", "Undo"],
  ["Ctrl+Shift+Z or Ctrl+Y", "Redo"],
  ["Ctrl+C", "Copy the selected nodes"],
  ["Ctrl+V", "Paste them (with new keys)"],
  ["Ctrl+D", "Duplicate the selected nodes"],
  ["Ctrl+A", "Select every node"],
  ["Delete or Backspace", "Remove the selection"],
  ["Shift+L", "Auto-layout"],
  ["Shift+F", "Fit the view"],
  ["Shift+drag", "Select an area"],
  ["Double-click a note", "Edit it on the canvas"],
  ["Escape", "Close this help or a dialog"],
  ["?", "Show or hide this help"],
];

export function EditShortcuts({ onClose }: { onClose: () => void }) {
  return (
    <div className="dm-shortcuts" role="dialog" aria-label="Keyboard shortcuts" id="shortcuts">
      <div className="dm-shortcuts-head">
        <h3>Keyboard shortcuts</h3>
        <button type="button" className="link" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </div>
      <p className="muted small">On a Mac, Cmd works where Ctrl is written.</p>
      <dl>
        {SHORTCUTS.map(([keys, action]) => (
          <div key={keys}>
            <dt>
              <kbd>{keys}</kbd>
            </dt>
            <dd>{action}</dd>
          </div>
        ))}
      </dl>
    </div>
  );
}
