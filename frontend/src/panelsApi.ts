// The API calls of the versions, templates and schedules panels. The paths are the REST
// API's (pipelines/urls.py); errors are the ApiErrors of api.ts, each naming its field.
import type { Api } from "./api";
import type {
  Page,
  SaveResult,
  Schedule,
  ScheduleInput,
  SchedulePreview,
  Template,
  VersionDetail,
  VersionDiff,
  VersionSummary,
} from "./panelTypes";

/** The template gallery page (pipelines/page_urls.py). */
export const TEMPLATE_GALLERY_URL = "/templates/";

export class PanelsApi {
  private api: Api;
  private pipelineUrl: string;

  constructor(api: Api, pipeline: number) {
    this.api = api;
    this.pipelineUrl = `/api/pipelines/${pipeline}`;
  }

  /** The newest versions first; `url` is a page's `next` link. */
  async versions(url = `${this.pipelineUrl}/versions/`) {
    return (await this.api.get<Page<VersionSummary>>(url)).data;
  }

  async version(number: number) {
    return (await this.api.get<VersionDetail>(`${this.pipelineUrl}/versions/${number}/`)).data;
  }

  /** What changed from version `from` to version `to`. */
  async diff(to: number, from: number) {
    return (await this.api.get<VersionDiff>(`${this.pipelineUrl}/versions/${to}/diff/?against=${from}`)).data;
  }

  async restore(number: number) {
    return (await this.api.request<SaveResult>("POST", `${this.pipelineUrl}/versions/${number}/restore/`)).data;
  }

  async saveAsTemplate(body: { pipeline: number; version: number; name: string; description: string }) {
    return (await this.api.request<Template>("POST", "/api/templates/", body)).data;
  }

  async schedules() {
    return (await this.api.get<Page<Schedule>>(`${this.pipelineUrl}/schedules/`)).data.results;
  }

  async saveSchedule(id: number | null, body: ScheduleInput) {
    const url = id === null ? `${this.pipelineUrl}/schedules/` : `${this.pipelineUrl}/schedules/${id}/`;
    // PATCH, so what the form does not show (start_at, end_at, a pinned version) is kept.
    return (await this.api.request<Schedule>(id === null ? "POST" : "PATCH", url, body)).data;
  }

  async deleteSchedule(id: number) {
    await this.api.request<null>("DELETE", `${this.pipelineUrl}/schedules/${id}/`);
  }

  async previewSchedule(cron: string, timezone: string) {
    return (await this.api.request<SchedulePreview>("POST", "/api/schedules/preview/", { cron, timezone })).data;
  }
}
