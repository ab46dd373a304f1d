// Create or edit one schedule: cron (Quartz or Unix), time zone, overlap policy, enabled,
// and parameter values in a form generated from the pipeline's parameter definitions.
// While you type, the server reads the expression back in words with its next fire times,
// or says which field it refuses and why.
import type { RJSFSchema } from "@rjsf/utils";
import { useEffect, useMemo, useState } from "react";
import { ApiError } from "../api";
import { errorSchemaUnder, runParametersSchema } from "../forms";
import type { PanelsApi } from "../panelsApi";
import type { Overlap, Schedule, ScheduleInput, SchedulePreview } from "../panelTypes";
import type { FieldError, JsonObject, ParameterDefinition } from "../types";
import { FormButtons } from "./Dialog";
import { ErrorList } from "./ErrorList";
import { SchemaForm } from "./SchemaForm";

const PREVIEW_DELAY_MS = 250; // after the last keystroke
const OWN_FIELDS = ["cron", "timezone", "overlap", "enabled", "catch_up"];

export const OVERLAP_CHOICES: [Overlap, string][] = [
  ["skip", "Skip the fire while a run of this pipeline is active"],
  ["queue", "Queue one fire until the active run ends"],
  ["allow", "Start runs in parallel"],
];

function timeZones(): string[] {
  const zones = Intl.supportedValuesOf("timeZone");
  return zones.includes("UTC") ? zones : ["UTC", ...zones];
}
const TIME_ZONES = timeZones();

function browserTimeZone(): string {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return TIME_ZONES.includes(zone) ? zone : "UTC";
}

/** A fire time in the schedule's own time zone, e.g. "Tue, Jun 3, 2025, 02:00 GMT+2". */
export function fireTime(iso: string, timeZone: string): string {
  const options: Intl.DateTimeFormatOptions = {
    weekday: "short",
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
  };
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone }).format(new Date(iso));
  } catch {
    return iso; // a zone this browser does not know
  }
}

/** The run form's fields, but a value left empty stays empty: the run then gets the
 * pipeline's default as it is at that time, not a copy made today. */
function scheduleParametersSchema(definitions: ParameterDefinition[]): RJSFSchema {
  const schema = runParametersSchema(definitions);
  const properties = Object.entries(schema.properties ?? {}).map(([name, field]) => {
    if (typeof field !== "object" || field.default === undefined) return [name, field];
    const { default: fallback, ...rest } = field;
    const note = `Empty: the pipeline's default (${JSON.stringify(fallback)}).`;
    return [name, { ...rest, description: rest.description ? `${rest.description} ${note}` : note }];
  });
  return { ...schema, properties: Object.fromEntries(properties) };
}

interface Preview {
  preview: SchedulePreview | null;
  errors: FieldError[];
  checking: boolean;
}

/** The server's reading of an expression, asked again a moment after each change. */
function useSchedulePreview(panels: PanelsApi, cron: string, timezone: string): Preview {
  const [state, setState] = useState<Preview>({ preview: null, errors: [], checking: false });
  useEffect(() => {
    if (!cron.trim()) {
      setState({ preview: null, errors: [], checking: false });
      return;
    }
    let current = true; // an answer for an older expression is dropped
    setState((shown) => ({ ...shown, checking: true }));
    const timer = window.setTimeout(() => {
      panels
        .previewSchedule(cron, timezone)
        .then((preview) => current && setState({ preview, errors: [], checking: false }))
        .catch((problem: unknown) => {
          if (!current) return;
          const errors =
            problem instanceof ApiError
              ? problem.errors
              : [{ field: "", message: String(problem) } satisfies FieldError];
          setState({ preview: null, errors, checking: false });
        });
    }, PREVIEW_DELAY_MS);
    return () => {
      current = false;
      window.clearTimeout(timer);
    };
  }, [panels, cron, timezone]);
  return state;
}

interface Props {
  panels: PanelsApi;
  definitions: ParameterDefinition[];
  /** null: a new schedule. */
  schedule: Schedule | null;
  onSaved: (schedule: Schedule) => void;
  onCancel: () => void;
}

export function ScheduleForm({ panels, definitions, schedule, onSaved, onCancel }: Props) {
  const [values, setValues] = useState<ScheduleInput>(() => ({
    cron: schedule?.cron ?? "",
    timezone: schedule?.timezone ?? browserTimeZone(),
    params: schedule?.params ?? {},
    overlap: schedule?.overlap ?? "skip",
    catch_up: schedule?.catch_up ?? false,
    enabled: schedule?.enabled ?? true,
  }));
  const [saveErrors, setSaveErrors] = useState<FieldError[]>([]);
  const [busy, setBusy] = useState(false);
  const preview = useSchedulePreview(panels, values.cron, values.timezone);
  const paramsSchema = useMemo(() => scheduleParametersSchema(definitions), [definitions]);

  const change = (patch: Partial<ScheduleInput>) => {
    setValues((current) => ({ ...current, ...patch }));
    // The server's answer was about the old values of these fields.
    const edited = Object.keys(patch);
    setSaveErrors((current) =>
      current.filter((e) => !edited.some((field) => e.field === field || e.field.startsWith(`${field}.`))),
    );
  };

  // Cron and time zone: the live reading first, it is about what is in the field now.
  const errorOf = (field: string) =>
    [...preview.errors, ...saveErrors].find((e) => e.field === field)?.message ??
    (field === "cron" ? preview.errors.find((e) => e.field === "")?.message : undefined);
  const paramErrors = useMemo(() => errorSchemaUnder(saveErrors, "params."), [saveErrors]);
  const otherErrors = saveErrors.filter((e) => !OWN_FIELDS.includes(e.field) && !e.field.startsWith("params."));

  const save = async () => {
    setBusy(true);
    try {
      onSaved(await panels.saveSchedule(schedule?.id ?? null, values));
    } catch (problem) {
      if (!(problem instanceof ApiError)) throw problem;
      setSaveErrors(problem.errors);
      setBusy(false);
    }
  };

  const cronError = errorOf("cron");
  const timezoneError = errorOf("timezone");
  const overlapError = errorOf("overlap");
  return (
    <form
      className="dm-schedule-form"
      id="schedule-form"
      onSubmit={(event) => {
        event.preventDefault();
        void save();
      }}
    >
      <div className="dm-schedule-when">
        <label className="dm-field">
          <span>Cron expression</span>
          <input
            id="schedule-cron"
            autoFocus
            value={values.cron}
            spellCheck={false}
            autoComplete="off"
            placeholder="0 0 2 * * ?   or   0 2 * * *"
            aria-invalid={cronError ? true : undefined}
            aria-describedby="schedule-cron-help"
            onChange={(e) => change({ cron: e.target.value })}
          />
          {cronError ? (
            <span className="dm-error-text" id="schedule-cron-error" role="alert">
              Cron: {cronError}
            </span>
          ) : (
            <small className="muted" id="schedule-cron-help">
              Quartz: seconds first, <code>?</code> for any day, day-of-week 1-7 = SUN-SAT. Unix: 5 fields, day-of-week
              0-6 = SUN-SAT.
            </small>
          )}
        </label>
        <label className="dm-field">
          <span>Time zone</span>
          <input
            id="schedule-timezone"
            list="dm-time-zones"
            value={values.timezone}
            spellCheck={false}
            autoComplete="off"
            aria-invalid={timezoneError ? true : undefined}
            onChange={(e) => change({ timezone: e.target.value })}
          />
          <datalist id="dm-time-zones">
            {TIME_ZONES.map((zone) => (
              <option key={zone} value={zone} />
            ))}
          </datalist>
          {timezoneError && (
            <span className="dm-error-text" id="schedule-timezone-error" role="alert">
              Time zone: {timezoneError}
            </span>
          )}
        </label>
      </div>
      <div className="dm-schedule-preview" id="schedule-preview" aria-live="polite" aria-busy={preview.checking}>
        {preview.preview ? (
          <>
            <p className="dm-schedule-words" id="schedule-words">
              {preview.preview.description}
              <span className="badge">{preview.preview.dialect}</span>
            </p>
            <h4>Next {preview.preview.next_runs.length} fire times</h4>
            <ol className="dm-fire-times" id="schedule-next-runs">
              {preview.preview.next_runs.map((moment) => (
                <li key={moment}>
                  <time dateTime={moment}>{fireTime(moment, preview.preview?.timezone ?? values.timezone)}</time>
                </li>
              ))}
            </ol>
          </>
        ) : (
          <p className="muted small">
            {values.cron.trim()
              ? preview.checking
                ? "Reading the expression…"
                : "Fix the expression to see when it fires."
              : "Type an expression to see it in words and its next fire times."}
          </p>
        )}
      </div>
      <label className="dm-field">
        <span>When a run is still active</span>
        <select
          id="schedule-overlap"
          value={values.overlap}
          aria-invalid={overlapError ? true : undefined}
          onChange={(e) => change({ overlap: e.target.value as Overlap })}
        >
          {OVERLAP_CHOICES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        {overlapError && <span className="dm-error-text">Overlap: {overlapError}</span>}
      </label>
      <label className="dm-check">
        <input
          type="checkbox"
          id="schedule-enabled"
          checked={values.enabled}
          onChange={(e) => change({ enabled: e.target.checked })}
        />
        Enabled <span className="muted small">(a disabled schedule keeps its settings and never fires)</span>
      </label>
      <label className="dm-check">
        <input
          type="checkbox"
          id="schedule-catch-up"
          checked={values.catch_up}
          onChange={(e) => change({ catch_up: e.target.checked })}
        />
        Catch up{" "}
        <span className="muted small">(after the scheduler was down, run once for the latest missed fire)</span>
      </label>
      <section className="dm-schedule-params" aria-label="Parameters">
        <h3>Parameters</h3>
        {definitions.length === 0 ? (
          <p className="muted small">This pipeline has no parameters.</p>
        ) : (
          <SchemaForm<JsonObject>
            id="schedule-params"
            schema={paramsSchema}
            value={values.params}
            serverErrors={paramErrors}
            onChange={(params) => change({ params: params ?? {} })}
          />
        )}
      </section>
      <ErrorList errors={otherErrors} />
      <FormButtons
        id="save-schedule"
        label={schedule ? "Save schedule" : "Create schedule"}
        busy={busy}
        onCancel={onCancel}
      />
    </form>
  );
}
