// Undo and redo over the canvas and the pipeline's details: a snapshot of the state is
// kept before each change (a burst of typing in one field is one change).
import { useCallback, useRef, useState } from "react";
import type { PipelineEdge, PipelineMeta, PipelineNode } from "./graph";

export interface Snapshot {
  nodes: PipelineNode[];
  edges: PipelineEdge[];
  meta: PipelineMeta;
}

const LIMIT = 200;
/** Changes with the same tag closer together than this are one step (typing in a field). */
const BURST_MS = 1000;

export function useEditHistory(current: () => Snapshot, restore: (snapshot: Snapshot) => void) {
  const past = useRef<Snapshot[]>([]);
  const future = useRef<Snapshot[]>([]);
  const burst = useRef<{ tag: string; at: number } | null>(null);
  const [, setSteps] = useState(0); // re-render the Undo/Redo buttons

  /** Call before a change: keeps the state it changes. */
  const checkpoint = useCallback((tag?: string) => {
    const now = Date.now();
    if (tag && burst.current?.tag === tag && now - burst.current.at < BURST_MS) {
      burst.current.at = now;
      return;
    }
    burst.current = tag ? { tag, at: now } : null;
    past.current = [...past.current.slice(1 - LIMIT), current()];
    future.current = [];
    setSteps((n) => n + 1);
  }, []);

  const step = useCallback((from: { current: Snapshot[] }, to: { current: Snapshot[] }) => {
    const snapshot = from.current.pop();
    if (!snapshot) return;
    to.current.push(current());
    burst.current = null;
    restore(snapshot);
    setSteps((n) => n + 1);
  }, []);

  const undo = useCallback(() => step(past, future), []);
  const redo = useCallback(() => step(future, past), []);
  return { checkpoint, undo, redo, canUndo: past.current.length > 0, canRedo: future.current.length > 0 };
}
