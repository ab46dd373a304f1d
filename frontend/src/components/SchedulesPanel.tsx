// The pipeline's schedules: each in words with its next fire time and last outcome; add,
// edit (ScheduleForm) and delete. Celery beat fires them (pipelines/schedules.py).
import "./SchedulesPanel.css";
import { useEffect, useState } from "react";
import { problemText, type Api } from "../api";
import type { PanelsApi } from "../panelsApi";
import type { Schedule } from "../panelTypes";
import type { ParameterDefinition } from "../types";
import { Dialog } from "./Dialog";
import { PanelButton } from "./PanelButton";
import { OVERLAP_CHOICES, ScheduleForm, fireTime } from "./ScheduleForm";
import type { SavedVersion } from "./VersionsPanel";

interface Props {
  api: Api;
  pipeline: number;
  saved: SavedVersion | null;
}

export function SchedulesButton({ api, pipeline, saved }: Props) {
  return (
    <PanelButton id="schedules" label="Schedules" api={api} pipeline={pipeline} saved={saved}>
      {(panels, saved, close) => (
        <SchedulesDialog panels={panels} definitions={saved.document.parameters ?? []} onClose={close} />
      )}
    </PanelButton>
  );
}

interface DialogProps {
  panels: PanelsApi;
  definitions: ParameterDefinition[];
  onClose: () => void;
}

function SchedulesDialog({ panels, definitions, onClose }: DialogProps) {
  const [schedules, setSchedules] = useState<Schedule[] | null>(null);
  /** The schedule in the form: "new", one being edited, or none (the list). */
  const [editing, setEditing] = useState<Schedule | "new" | null>(null);
  const [confirmDelete, setConfirmDelete] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  const fail = (problem: unknown) => setError(problemText(problem));
  const load = () =>
    panels
      .schedules()
      .then((loaded) => {
        setSchedules(loaded);
        setError(null);
      })
      .catch(fail);
  useEffect(() => void load(), []);

  const remove = async (id: number) => {
    try {
      await panels.deleteSchedule(id);
      setConfirmDelete(null);
      await load();
    } catch (problem) {
      fail(problem);
    }
  };

  const title = editing === "new" ? "New schedule" : editing ? "Edit schedule" : "Schedules";
  return (
    <Dialog title={title} className="dm-dialog-wide" onClose={onClose} closeButton>
      {editing ? (
        <ScheduleForm
          panels={panels}
          definitions={definitions}
          schedule={editing === "new" ? null : editing}
          onCancel={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            void load();
          }}
        />
      ) : (
        <>
          <p className="muted">
            Runs of the latest saved version on a cron expression, started by the scheduler (Celery beat). Each run is
            in the run history with the trigger <em>schedule</em>.
          </p>
          {error && (
            <p className="dm-error-list" role="alert">
              {error}
            </p>
          )}
          {schedules === null ? (
            <p className="muted">Loading…</p>
          ) : schedules.length === 0 ? (
            <p className="dm-empty">No schedules yet.</p>
          ) : (
            <ul className="dm-schedule-list" aria-label="Schedules">
              {schedules.map((schedule) => (
                <li key={schedule.id} className="dm-schedule" data-schedule={schedule.id}>
                  <div className="dm-schedule-head">
                    <code className="dm-schedule-cron">{schedule.cron}</code>
                    <span className={`badge ${schedule.enabled ? "state-succeeded" : "state-skipped"}`}>
                      {schedule.enabled ? "enabled" : "disabled"}
                    </span>
                    <span className="dm-schedule-actions">
                      {confirmDelete === schedule.id ? (
                        <>
                          <span>Delete this schedule?</span>
                          <button type="button" className="danger" onClick={() => void remove(schedule.id)}>
                            Delete
                          </button>
                          <button type="button" onClick={() => setConfirmDelete(null)}>
                            Keep
                          </button>
                        </>
                      ) : (
                        <>
                          <button type="button" onClick={() => setEditing(schedule)}>
                            Edit
                          </button>
                          <button type="button" onClick={() => setConfirmDelete(schedule.id)}>
                            Delete
                          </button>
                        </>
                      )}
                    </span>
                  </div>
                  <div className="dm-schedule-words">{schedule.description}</div>
                  <div className="muted small">
                    {schedule.next_runs.length > 0 ? (
                      <>
                        Next:{" "}
                        <time className="dm-schedule-next" dateTime={schedule.next_runs[0]}>
                          {fireTime(schedule.next_runs[0], schedule.timezone)}
                        </time>
                      </>
                    ) : (
                      "No fire ahead."
                    )}{" "}
                    · {OVERLAP_CHOICES.find(([value]) => value === schedule.overlap)?.[1] ?? schedule.overlap}
                    {Object.keys(schedule.params).length > 0 && (
                      <>
                        {" "}
                        · parameters:{" "}
                        {Object.entries(schedule.params)
                          .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
                          .join(", ")}
                      </>
                    )}
                  </div>
                  {schedule.last_outcome && (
                    <div className="small">
                      Last fire {schedule.last_fire_at && fireTime(schedule.last_fire_at, schedule.timezone)}:{" "}
                      <strong>{schedule.last_outcome}</strong> {schedule.last_message}
                    </div>
                  )}
                </li>
              ))}
            </ul>
          )}
          <div className="dm-dialog-actions">
            <button type="button" className="primary" id="new-schedule" onClick={() => setEditing("new")}>
              New schedule
            </button>
          </div>
        </>
      )}
    </Dialog>
  );
}
