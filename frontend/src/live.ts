// One run watched over /ws/runs/<id>/: a snapshot, then numbered deltas, applied with the
// rules of static/js/run.js (see pipelines/consumers.py for why nothing is missed):
// - a snapshot replaces everything held;
// - deltas apply in seq order; one that arrives early waits, and if the gap is still
//   there after GAP_WAIT_MS the socket reconnects for a fresh snapshot;
// - a node-run delta applies only if its `version` is >= the one held;
// - a run delta never moves a finished run back;
// - log lines are kept by id.
import type { LogPayload, NodeRunPayload, RunPayload } from "./types";

const GAP_WAIT_MS = 2000;
const MAX_LOG_LINES = 2000;
const REFUSED: Record<number, string> = { 4401: "not logged in", 4403: "not allowed" };
const RUN_RANK: Record<string, number> = { pending: 0, running: 1, succeeded: 2, failed: 2, cancelled: 2 };

export type LiveStatus = "connecting" | "live" | "offline" | "refused";

export interface LiveView {
  status: LiveStatus;
  statusText: string;
  run: RunPayload | null;
  /** Top-level node runs (not loop iterations) by node key: what the canvas shows. */
  nodes: Map<string, NodeRunPayload>;
  logs: LogPayload[];
}

type Event =
  { kind: "node"; node_run: NodeRunPayload } | { kind: "run"; run: RunPayload } | { kind: "log"; log: LogPayload };

type Message =
  | { type: "snapshot"; seq: number; run: RunPayload; node_runs: NodeRunPayload[]; logs: LogPayload[] }
  | { type: "delta"; seq: number; event: Event };

export function isFinished(state: string | undefined): boolean {
  return RUN_RANK[state ?? ""] === 2;
}

export class LiveRun {
  readonly runId: number;
  private url: string;
  private onChange: (view: LiveView) => void;
  private socket: WebSocket | null = null;
  private seq: number | null = null;
  private run: RunPayload | null = null;
  private nodeRuns = new Map<number, NodeRunPayload>();
  private logs = new Map<number, LogPayload>();
  private early = new Map<number, Event>();
  private gapTimer: number | null = null;
  private retryTimer: number | null = null;
  private retries = 0;
  private status: LiveStatus = "connecting";
  private statusText = "connecting";
  private frame: number | null = null;
  private closed = false;

  constructor(runId: number, url: string, onChange: (view: LiveView) => void) {
    this.runId = runId;
    this.url = url;
    this.onChange = onChange;
    this.connect();
  }

  close() {
    this.closed = true;
    if (this.gapTimer !== null) window.clearTimeout(this.gapTimer);
    if (this.retryTimer !== null) window.clearTimeout(this.retryTimer);
    if (this.frame !== null) window.cancelAnimationFrame(this.frame);
    this.socket?.close();
    this.socket = null;
  }

  private setStatus(status: LiveStatus, text?: string) {
    this.status = status;
    this.statusText = text ?? status;
    this.notify();
  }

  private connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    this.setStatus("connecting");
    const socket = new WebSocket(scheme + window.location.host + this.url);
    this.socket = socket;
    socket.onmessage = (message) => this.receive(JSON.parse(message.data) as Message);
    socket.onclose = (event) => {
      if (this.closed || this.socket !== socket) return;
      this.socket = null;
      if (REFUSED[event.code]) {
        this.setStatus("refused", `live updates refused: ${REFUSED[event.code]}`);
      } else if (event.code === 4000) {
        this.connect(); // our own resync after a gap
      } else {
        const delay = Math.min(10000, 500 * 2 ** this.retries++);
        this.setStatus("offline", "offline, retrying");
        this.retryTimer = window.setTimeout(() => this.connect(), delay);
      }
    };
  }

  private resync() {
    this.early.clear();
    if (this.gapTimer !== null) window.clearTimeout(this.gapTimer);
    this.gapTimer = null;
    this.socket?.close(4000, "missing events; resync");
  }

  private receive(message: Message) {
    if (message.type === "snapshot") {
      this.retries = 0;
      this.seq = message.seq;
      this.run = message.run;
      this.nodeRuns = new Map(message.node_runs.map((n) => [n.id, n]));
      this.logs = new Map(message.logs.map((l) => [l.id, l]));
      for (const seq of this.early.keys()) if (seq <= message.seq) this.early.delete(seq);
      this.status = "live";
      this.statusText = "live";
      this.drain();
    } else if (message.type === "delta") {
      if (this.seq === null || message.seq <= this.seq) return;
      this.early.set(message.seq, message.event);
      this.drain();
    }
  }

  private drain() {
    while (this.seq !== null && this.early.has(this.seq + 1)) {
      this.seq += 1;
      this.apply(this.early.get(this.seq)!);
      this.early.delete(this.seq);
    }
    if (this.early.size && this.gapTimer === null) {
      this.gapTimer = window.setTimeout(() => {
        this.gapTimer = null;
        if (this.early.size) this.resync();
      }, GAP_WAIT_MS);
    } else if (!this.early.size && this.gapTimer !== null) {
      window.clearTimeout(this.gapTimer);
      this.gapTimer = null;
    }
    this.notify();
  }

  private apply(event: Event) {
    if (event.kind === "node") {
      const held = this.nodeRuns.get(event.node_run.id);
      if (!held || event.node_run.version >= held.version) this.nodeRuns.set(event.node_run.id, event.node_run);
    } else if (event.kind === "run") {
      if (!this.run || (RUN_RANK[event.run.state] ?? 0) >= (RUN_RANK[this.run.state] ?? 0)) this.run = event.run;
    } else if (event.kind === "log") {
      if (this.logs.has(event.log.id)) return;
      this.logs.set(event.log.id, event.log);
      if (this.logs.size > MAX_LOG_LINES) this.logs.delete(this.logs.keys().next().value!);
    }
  }

  /** One view per animation frame, however many events arrived in it. */
  private notify() {
    if (this.frame !== null || this.closed) return;
    this.frame = window.requestAnimationFrame(() => {
      this.frame = null;
      this.onChange(this.view());
    });
  }

  private view(): LiveView {
    const nodes = new Map<string, NodeRunPayload>();
    for (const nodeRun of [...this.nodeRuns.values()].sort((a, b) => a.id - b.id)) {
      if (!nodeRun.iteration) nodes.set(nodeRun.node_key, nodeRun);
    }
    const logs = [...this.logs.values()].sort((a, b) => a.id - b.id);
    return { status: this.status, statusText: this.statusText, run: this.run, nodes, logs };
  }
}
