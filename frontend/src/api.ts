// The designer's calls to the REST API: session cookie + CSRF token, JSON both ways.
// Every failure becomes an ApiError whose `errors` name a field, whatever shape the
// server used ({"errors": [...]}, DRF's {"field": ["message"]}, or {"detail": ...}).
import type { DesignerConfig, FieldError } from "./types";

export class ApiError extends Error {
  status: number;
  errors: FieldError[];
  body: unknown;

  constructor(status: number, errors: FieldError[], body: unknown) {
    super(errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join("; ") || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.body = body;
  }
}

/** A failure in words: an ApiError's message, or the failure as text. */
export function problemText(problem: unknown): string {
  return problem instanceof ApiError ? problem.message : String(problem);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Field errors from any of the error shapes the API answers with. */
export function fieldErrors(body: unknown, status: number): FieldError[] {
  if (isRecord(body)) {
    if (Array.isArray(body.errors)) {
      return body.errors.filter(isRecord).map((e) => ({
        field: String(e.field ?? ""),
        message: String(e.message ?? ""),
        node: typeof e.node === "string" ? e.node : null,
      }));
    }
    if (typeof body.detail === "string") return [{ field: "", message: body.detail }];
    const errors: FieldError[] = [];
    for (const [field, messages] of Object.entries(body)) {
      for (const message of Array.isArray(messages) ? messages : [messages]) {
        errors.push({ field, message: String(message) });
      }
    }
    if (errors.length) return errors;
  }
  return [{ field: "", message: `The server answered HTTP ${status}.` }];
}

export interface JsonResponse<T> {
  data: T;
  headers: Headers;
  status: number;
}

export class Api {
  private csrfToken: string;

  constructor(csrfToken: string) {
    this.csrfToken = csrfToken;
  }

  async request<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}) {
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: {
          Accept: "application/json",
          ...(body === undefined ? {} : { "Content-Type": "application/json" }),
          ...(method === "GET" ? {} : { "X-CSRFToken": this.csrfToken }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError(0, [{ field: "", message: "The server cannot be reached. Check your connection." }], null);
    }
    const text = await response.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!response.ok) throw new ApiError(response.status, fieldErrors(data, response.status), data);
    return { data: data as T, headers: response.headers, status: response.status } satisfies JsonResponse<T>;
  }

  get<T>(url: string) {
    return this.request<T>("GET", url);
  }

  post<T>(url: string, body: unknown = {}) {
    return this.request<T>("POST", url, body);
  }
}

/** The API's URLs that the page does not hand over: all are under the API root, which is
 * where the node-type catalogue is served (`/api/node-types/` → `/api/`). */
export function apiUrls(config: DesignerConfig) {
  const root = config.urls.nodeTypes.replace(/node-types\/$/, "");
  const pipeline = `${root}pipelines/${config.pipeline}/`;
  return {
    handles: `${config.urls.nodeTypes}handles/`,
    operators: `${root}operators/`,
    datasets: `${root}datasets/`,
    run: (id: number) => `${root}runs/${id}/`,
    nodeTest: (key: string) => `${pipeline}nodes/${encodeURIComponent(key)}/test/`,
  };
}

export type ApiUrls = ReturnType<typeof apiUrls>;

/** The version number in an ETag such as `"3"`. */
export function versionFromETag(headers: Headers): number | null {
  const tag = headers.get("ETag");
  if (!tag) return null;
  const number = Number(tag.replace(/^W\//, "").replaceAll('"', ""));
  return Number.isInteger(number) ? number : null;
}
