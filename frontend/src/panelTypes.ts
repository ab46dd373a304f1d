// Shapes of what the versions, templates and schedules endpoints answer. They mirror
// pipelines/serializers.py, services.diff_versions and pipelines/schedules_api.py.
import type { DocumentEdge, DocumentNode, JsonObject, PipelineDocument } from "./types";

/** DRF's page of a list (PageNumberPagination). */
export interface Page<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}

/** One entry of GET /api/pipelines/{id}/versions/. */
export interface VersionSummary {
  number: number;
  message: string;
  author: string | null;
  created_at: string;
}

export interface VersionDetail extends VersionSummary {
  document: PipelineDocument;
}

/** A change to one field: `config.operators[0].name`, `label`, `parameters`… */
export interface FieldChange {
  field: string;
  old: unknown;
  new: unknown;
  change: "added" | "removed" | "changed";
}

/** GET /api/pipelines/{id}/versions/{n}/diff/?against=m: from version m to version n. */
export interface VersionDiff {
  from_version: number;
  to_version: number;
  pipeline: FieldChange[];
  nodes: {
    added: DocumentNode[];
    removed: DocumentNode[];
    changed: { key: string; changes: FieldChange[] }[];
  };
  edges: { added: DocumentEdge[]; removed: DocumentEdge[] };
}

/** POST .../versions/{n}/restore/ and PUT .../graph/. */
export interface SaveResult {
  version: number;
  document: PipelineDocument;
}

export interface Template {
  id: number;
  name: string;
  slug: string;
  description: string;
  owner: string | null;
  built_in: boolean;
  document: PipelineDocument;
  created_at: string;
}

export type Overlap = "skip" | "queue" | "allow";

/** What a schedule is made of: the body of POST and PUT. */
export interface ScheduleInput {
  cron: string;
  timezone: string;
  params: JsonObject;
  overlap: Overlap;
  catch_up: boolean;
  enabled: boolean;
}

export interface Schedule extends ScheduleInput {
  id: number;
  pipeline: number;
  dialect: "quartz" | "unix";
  description: string;
  /** ISO 8601 with the offset of the schedule's time zone; empty while it is disabled. */
  next_runs: string[];
  last_fire_at: string | null;
  last_outcome: string;
  last_message: string;
}

/** POST /api/schedules/preview/. */
export interface SchedulePreview {
  cron: string;
  timezone: string;
  dialect: "quartz" | "unix";
  description: string;
  next_runs: string[];
}
