// Log lines of the live run: the selected node's, or all of them.
import { useEffect, useRef } from "react";
import type { LogPayload } from "../types";

export function LogPanel({ logs, nodeKey }: { logs: LogPayload[]; nodeKey: string | null }) {
  const list = useRef<HTMLOListElement>(null);
  const shown = nodeKey === null ? logs : logs.filter((log) => log.node_key === nodeKey);
  const atBottom = useRef(true);

  useEffect(() => {
    const element = list.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  }, [shown.length]);

  return (
    <section className="dm-logs" aria-label="Log lines">
      <h3>Logs {nodeKey === null ? "of the run" : <code>{nodeKey}</code>}</h3>
      <ol
        ref={list}
        className="logs"
        onScroll={(event) => {
          const element = event.currentTarget;
          atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < 24;
        }}
      >
        {shown.length === 0 && <li className="empty-logs">No log lines yet.</li>}
        {shown.map((log) => (
          <li key={log.id} className={`log level-${log.level}`}>
            <time title={log.created_at ?? ""}>{(log.created_at ?? "").slice(11, 19)}</time>
            {nodeKey === null && <span className="log-node">{log.node_key}</span>}
            <span className="log-level">{log.level}</span>
            <span className="log-msg">{log.message}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
