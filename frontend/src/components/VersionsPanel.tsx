// Version history: every saved version with author, time and message; any version shown
// read-only on its own canvas, or as the changes from it to the current version (marked
// on the canvas and listed); Restore writes a new version with its content.
import "./VersionsPanel.css";
import { useEffect, useMemo, useRef, useState } from "react";
import { problemText, type Api } from "../api";
import type { PanelsApi } from "../panelsApi";
import type { VersionDetail, VersionDiff, VersionSummary } from "../panelTypes";
import type { PipelineDocument } from "../types";
import { Dialog } from "./Dialog";
import { PanelButton } from "./PanelButton";
import { VersionCanvas } from "./VersionCanvas";
import { VersionChanges } from "./VersionChanges";
import { changeCount, diffCanvas } from "./VersionDiff";

/** The designer's last saved version. */
export interface SavedVersion {
  version: number;
  document: PipelineDocument;
}

interface Props {
  api: Api;
  pipeline: number;
  saved: SavedVersion | null;
  dirty: boolean;
}

const TIME = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const FLASH_SECONDS = 10;

function formatTime(iso: string): string {
  return TIME.format(new Date(iso));
}

// After a restore the page reloads (the designer then loads the restored graph as the new
// latest version); this note says what happened, once.
const flashKey = (pipeline: number) => `datamate.restored.${pipeline}`;

/** The toolbar's Versions button, and the history it opens. */
export function VersionsButton({ api, pipeline, saved, dirty }: Props) {
  const [flash, setFlash] = useState(() => sessionStorage.getItem(flashKey(pipeline)));
  useEffect(() => {
    sessionStorage.removeItem(flashKey(pipeline));
    const timer = window.setTimeout(() => setFlash(null), FLASH_SECONDS * 1000);
    return () => window.clearTimeout(timer);
  }, [pipeline]);
  const restored = (text: string) => {
    sessionStorage.setItem(flashKey(pipeline), text);
    window.location.reload();
  };
  return (
    <>
      {flash && (
        <span className="dm-flash" role="status" id="versions-flash">
          {flash}
        </span>
      )}
      <PanelButton id="versions" label="Versions" api={api} pipeline={pipeline} saved={saved}>
        {(panels, saved, close) => (
          <VersionHistory panels={panels} current={saved} dirty={dirty} onRestored={restored} onClose={close} />
        )}
      </PanelButton>
    </>
  );
}

interface HistoryProps {
  panels: PanelsApi;
  current: SavedVersion;
  dirty: boolean;
  onRestored: (text: string) => void;
  onClose: () => void;
}

type View = "version" | "changes";

function VersionHistory({ panels, current, dirty, onRestored, onClose }: HistoryProps) {
  const [versions, setVersions] = useState<VersionSummary[]>([]);
  const [nextPage, setNextPage] = useState<string | null>(null);
  const [selected, setSelected] = useState(current.version);
  const [view, setView] = useState<View>("version");
  const [detail, setDetail] = useState<VersionDetail | null>(null);
  const [diff, setDiff] = useState<VersionDiff | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [restoring, setRestoring] = useState(false);
  const showing = useRef(selected); // answers for an earlier selection are dropped

  const fail = (problem: unknown) => setError(problemText(problem));

  const loadPage = (url?: string) =>
    panels
      .versions(url)
      .then((page) => {
        setVersions((shown) => [...shown, ...page.results]);
        setNextPage(page.next);
      })
      .catch(fail);

  useEffect(() => void loadPage(), []);

  useEffect(() => {
    showing.current = selected;
    setDetail(null);
    setDiff(null);
    setError(null);
    panels
      .version(selected)
      .then((version) => showing.current === selected && setDetail(version))
      .catch(fail);
    if (selected !== current.version) {
      panels
        .diff(current.version, selected)
        .then((changes) => showing.current === selected && setDiff(changes))
        .catch(fail);
    }
  }, [selected]);

  const isCurrent = selected === current.version;
  const shownView: View = isCurrent ? "version" : view;
  const canvas = useMemo(() => (diff ? diffCanvas(current.document, diff) : null), [diff, current.document]);

  const restore = async () => {
    setRestoring(true);
    try {
      const result = await panels.restore(selected);
      onRestored(
        result.version === current.version
          ? `v${selected} has the same content as v${current.version}: nothing to restore.`
          : `Restored v${selected} as the new version v${result.version}.`,
      );
    } catch (problem) {
      fail(problem);
      setRestoring(false);
    }
  };

  return (
    <Dialog title="Version history" className="dm-dialog-full" onClose={onClose} closeButton>
      <div className="dm-history">
        <div className="dm-history-canvas" aria-label={`Version v${selected}, read-only`}>
          <div className="dm-history-bar">
            <div className="dm-tabs" role="tablist">
              <button
                type="button"
                role="tab"
                id="show-version"
                aria-selected={shownView === "version"}
                onClick={() => setView("version")}
              >
                v{selected}
                {isCurrent ? " (current)" : ""}
              </button>
              {!isCurrent && (
                <button
                  type="button"
                  role="tab"
                  id="show-changes"
                  aria-selected={shownView === "changes"}
                  onClick={() => setView("changes")}
                >
                  Changes v{selected} → v{current.version}
                  {diff ? ` (${changeCount(diff)})` : ""}
                </button>
              )}
            </div>
            <span className="dm-readonly">Read-only</span>
            {shownView === "changes" && (
              <span className="dm-legend">
                <span className="diff-added">added</span>
                <span className="diff-changed">changed</span>
                <span className="diff-removed">removed</span>
              </span>
            )}
          </div>
          {shownView === "version" && detail && (
            <VersionCanvas viewKey={`version-${detail.number}`} document={detail.document} />
          )}
          {shownView === "changes" && canvas && diff && (
            <VersionCanvas
              viewKey={`diff-${diff.from_version}-${diff.to_version}`}
              document={canvas.document}
              marks={canvas.marks}
            />
          )}
        </div>
        <aside className="dm-history-side">
          <ol className="dm-version-list" aria-label="Versions">
            {versions.map((version) => (
              <li key={version.number}>
                <button
                  type="button"
                  data-version={version.number}
                  aria-current={version.number === selected}
                  onClick={() => setSelected(version.number)}
                >
                  <span className="dm-version-number">v{version.number}</span>
                  {version.number === current.version && <span className="badge">current</span>}
                  <span className="dm-version-message">{version.message || <em>no message</em>}</span>
                  <span className="dm-version-meta">
                    {version.author ?? "unknown"} ·{" "}
                    <time dateTime={version.created_at}>{formatTime(version.created_at)}</time>
                  </span>
                </button>
              </li>
            ))}
          </ol>
          {nextPage && (
            <button type="button" className="link" onClick={() => loadPage(nextPage)}>
              Older versions…
            </button>
          )}
          {error && (
            <p className="dm-error-list" role="alert">
              {error}
            </p>
          )}
          {!isCurrent && (
            <section className="dm-restore">
              {dirty ? (
                <p className="dm-warning">
                  You have unsaved changes. Save them (or reload to drop them) before you restore a version.
                </p>
              ) : (
                <p className="muted small">
                  Restore writes a new version v{current.version + 1} with the content of v{selected}. Nothing is lost:
                  v{current.version} stays in the history.
                </p>
              )}
              <button type="button" className="primary" id="restore" disabled={dirty || restoring} onClick={restore}>
                {restoring ? "Restoring…" : `Restore v${selected}`}
              </button>
            </section>
          )}
          {!isCurrent && diff && (
            <section className="dm-history-changes">
              <h3>
                Changes from v{diff.from_version} to v{diff.to_version} (current)
              </h3>
              <VersionChanges diff={diff} />
            </section>
          )}
          {isCurrent && (
            <p className="muted small">
              This is the current version. Select an older one to see it, compare it or restore it.
            </p>
          )}
        </aside>
      </div>
    </Dialog>
  );
}
