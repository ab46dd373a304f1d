// A toolbar button that opens a dialog about the saved pipeline (version history,
// schedules, Save as template): disabled until there is a saved version.
import { useMemo, useState, type ReactNode } from "react";
import type { Api } from "../api";
import { PanelsApi } from "../panelsApi";
import type { SavedVersion } from "./VersionsPanel";

interface Props {
  id: string;
  label: string;
  api: Api;
  pipeline: number;
  saved: SavedVersion | null;
  /** The dialog while it is open; `close` closes it. */
  children: (panels: PanelsApi, saved: SavedVersion, close: () => void) => ReactNode;
}

export function PanelButton({ id, label, api, pipeline, saved, children }: Props) {
  const [open, setOpen] = useState(false);
  const panels = useMemo(() => new PanelsApi(api, pipeline), [api, pipeline]);
  return (
    <>
      <button type="button" id={id} disabled={!saved} onClick={() => setOpen(true)}>
        {label}
      </button>
      {open && saved && children(panels, saved, () => setOpen(false))}
    </>
  );
}
