// Save as Template: the saved version of this pipeline becomes a template that the
// gallery offers to everyone who may see it (you, and staff).
import { useState } from "react";
import { ApiError, type Api } from "../api";
import { TEMPLATE_GALLERY_URL, type PanelsApi } from "../panelsApi";
import type { Template } from "../panelTypes";
import type { FieldError } from "../types";
import { Dialog, FormButtons } from "./Dialog";
import { ErrorList } from "./ErrorList";
import { PanelButton } from "./PanelButton";
import type { SavedVersion } from "./VersionsPanel";

interface Props {
  api: Api;
  pipeline: number;
  saved: SavedVersion | null;
  dirty: boolean;
}

export function TemplateSaveButton({ api, pipeline, saved, dirty }: Props) {
  return (
    <PanelButton id="save-as-template" label="Save as template" api={api} pipeline={pipeline} saved={saved}>
      {(panels, saved, close) => (
        <TemplateSaveDialog panels={panels} pipeline={pipeline} saved={saved} dirty={dirty} onClose={close} />
      )}
    </PanelButton>
  );
}

interface DialogProps {
  panels: PanelsApi;
  pipeline: number;
  saved: SavedVersion;
  dirty: boolean;
  onClose: () => void;
}

function TemplateSaveDialog({ panels, pipeline, saved, dirty, onClose }: DialogProps) {
  const [name, setName] = useState(saved.document.name);
  const [description, setDescription] = useState(saved.document.description ?? "");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Template | null>(null);

  const errorOf = (field: string) => errors.find((e) => e.field === field)?.message;
  const otherErrors = errors.filter((e) => e.field !== "name" && e.field !== "description");

  const save = async () => {
    setBusy(true);
    try {
      setCreated(await panels.saveAsTemplate({ pipeline, version: saved.version, name, description }));
      setErrors([]);
    } catch (problem) {
      if (!(problem instanceof ApiError)) throw problem;
      setErrors(problem.errors);
    } finally {
      setBusy(false);
    }
  };

  if (created) {
    return (
      <Dialog title="Template saved" onClose={onClose}>
        <p role="status" id="template-saved">
          Template <strong>{created.name}</strong> is saved from v{saved.version}. Use it from the{" "}
          <a href={TEMPLATE_GALLERY_URL}>template gallery</a>.
        </p>
        <div className="dm-dialog-actions">
          <button type="button" className="primary" onClick={onClose}>
            Close
          </button>
        </div>
      </Dialog>
    );
  }

  const nameError = errorOf("name");
  const descriptionError = errorOf("description");
  return (
    <Dialog title="Save as template" onClose={onClose}>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void save();
        }}
      >
        <p className="muted">
          The template is a copy of the saved version <strong>v{saved.version}</strong>: nodes, edges, configs and
          parameters.
        </p>
        {dirty && (
          <p className="dm-warning">
            You have unsaved changes: they are not part of the template. Save first to include them.
          </p>
        )}
        <label className="dm-field">
          <span>Name</span>
          <input
            id="template-name"
            autoFocus
            value={name}
            maxLength={200}
            aria-invalid={nameError ? true : undefined}
            onChange={(e) => {
              setName(e.target.value);
              setErrors((current) => current.filter((error) => error.field !== "name"));
            }}
          />
          {nameError && <span className="dm-error-text">Name: {nameError}</span>}
        </label>
        <label className="dm-field">
          <span>Description</span>
          <textarea
            id="template-description"
            rows={3}
            value={description}
            placeholder="What the template is for, and what to set before a run"
            onChange={(e) => setDescription(e.target.value)}
          />
          {descriptionError && <span className="dm-error-text">Description: {descriptionError}</span>}
        </label>
        <ErrorList errors={otherErrors} />
        <FormButtons id="save-template" label="Save template" busy={busy} onCancel={onClose} />
      </form>
    </Dialog>
  );
}
