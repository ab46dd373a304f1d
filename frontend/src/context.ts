// What every node card reads besides its own data (the catalogue, the server's errors by
// node key, the live run, handles that depend on a node's config), and what the side
// panel's form widgets read (the API, and the names `{{ }}` references may use).
import { createContext, useContext, useMemo } from "react";
import type { Api, ApiUrls } from "./api";
import type { Catalogue } from "./graph";
import type { LiveView } from "./live";
import type { FieldError, Operator } from "./types";

export interface CanvasState {
  catalogue: Catalogue;
  errorsByNode: Map<string, FieldError[]>;
  live: LiveView | null;
  /** Source handles of nodes whose config changes them (a Parallel's branches), by key;
   * other nodes have their type's handles. */
  handlesByNode: Map<string, string[]>;
  onNotesChange: ((key: string, notes: string) => void) | null;
}

export const CanvasContext = createContext<CanvasState>({
  catalogue: new Map(),
  errorsByNode: new Map(),
  live: null,
  handlesByNode: new Map(),
  onNotesChange: null,
});

export const useCanvas = () => useContext(CanvasContext);

export interface EditorState {
  api: Api;
  urls: ApiUrls;
  /** The pipeline's parameters as edited now: `{{ params.<name> }}`. */
  parameters: { name: string; type: string }[];
  /** The nodes' keys: `{{ nodes.<key>.output. }}`. */
  nodeKeys: string[];
  /** The operator catalogue, fetched once when first asked for. */
  operators: () => Promise<Operator[]>;
}

export const EditorContext = createContext<EditorState | null>(null);

export const useEditor = () => useContext(EditorContext);

/** The editor for forms of plain values (a run's parameters): nothing to refer to. */
export function useValuesOnlyEditor(): EditorState | null {
  const editor = useEditor();
  return useMemo(() => editor && { ...editor, parameters: [], nodeKeys: [] }, [editor]);
}

/** `load()` once; later calls share its answer (a failure is retried on the next call). */
export function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    pending ??= load().catch((error: unknown) => {
      pending = null;
      throw error;
    });
    return pending;
  };
}
