// The designer: palette, canvas, side panel and toolbar around one pipeline document.
// The document is loaded from and saved to the API; the canvas shows a live run over its
// websocket. Types, handles and forms all come from the catalogue.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
  type OnBeforeDelete,
  type OnConnectEnd,
  type OnNodeDrag,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { ApiError, apiUrls, versionFromETag, type Api } from "../api";
import { autoLayout } from "../CanvasLayout";
import { FIT_VIEW, MIN_ZOOM, NODE_TYPES } from "../CanvasView";
import { CanvasContext, EditorContext, once } from "../context";
import { copyNodes, pasteNodes } from "../EditClipboard";
import { useEditHistory, type Snapshot } from "../EditHistory";
import { nodeFieldPath, parameterRowsSchema } from "../forms";
import {
  absolutePosition,
  connectionProblem,
  containerAt,
  containerSizes,
  documentFingerprint,
  insideContainer,
  makeEdge,
  newKey,
  reparent,
  toDocument,
  toFlow,
  withDescendants,
  NODE_WIDTH,
  type Catalogue,
  type PipelineEdge,
  type PipelineMeta,
  type PipelineNode,
  type PipelineNodeData,
} from "../graph";
import { LiveRun, isFinished, type LiveView } from "../live";
import type {
  DesignerConfig,
  FieldError,
  JsonObject,
  NodeType,
  Operator,
  ParameterDefinition,
  PipelineDocument,
  RunDetail,
} from "../types";
import { EditShortcuts } from "./EditShortcuts";
import { NodePanel } from "./NodePanel";
import { DRAG_TYPE, Palette } from "./Palette";
import { PipelinePanel } from "./PipelinePanel";
import { RunDialog } from "./RunDialog";
import { SaveDialog } from "./SaveDialog";
import { SchedulesButton } from "./SchedulesPanel";
import { TemplateSaveButton } from "./TemplateSaveDialog";
import { VersionsButton } from "./VersionsPanel";

const DELETE_KEYS = ["Delete", "Backspace"];
const NO_ERRORS: FieldError[] = [];
const NO_DEFINITIONS: ParameterDefinition[] = [];
/** Config edits settle this long before the server is asked for the handles they make. */
const HANDLES_DELAY_MS = 250;

/** The same array as last time while its items are: a dependency that moving nodes keeps. */
function useSameItems<T>(items: T[]): T[] {
  const held = useRef(items);
  if (items.length !== held.current.length || items.some((item, i) => item !== held.current[i])) held.current = items;
  return held.current;
}

interface Saved {
  version: number;
  document: PipelineDocument;
  fingerprint: string;
}

interface Notice {
  kind: "error" | "success" | "info";
  text: string;
  reload?: boolean;
}

export function Designer({ config, api }: { config: DesignerConfig; api: Api }) {
  const flow = useReactFlow<PipelineNode, PipelineEdge>();
  const canvas = useRef<HTMLDivElement>(null);
  const [types, setTypes] = useState<NodeType[]>([]);
  const [nodes, setNodes] = useState<PipelineNode[]>([]);
  const [edges, setEdges] = useState<PipelineEdge[]>([]);
  const [meta, setMeta] = useState<PipelineMeta>({ name: "", description: "", parameters: [] });
  const [saved, setSaved] = useState<Saved | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [notice, setNotice] = useState<Notice | null>(null);
  const [dialog, setDialog] = useState<"save" | "run" | null>(null);
  const [busy, setBusy] = useState(false);
  const [runErrors, setRunErrors] = useState<FieldError[]>([]);
  const [live, setLive] = useState<LiveView | null>(null);
  const liveRun = useRef<LiveRun | null>(null);
  const [hint, setHint] = useState<string | null>(null);
  const [initialNodes, setInitialNodes] = useState(0);

  const catalogue: Catalogue = useMemo(() => new Map(types.map((t) => [t.key, t])), [types]);
  const parameterSchema = useMemo(() => parameterRowsSchema(config.parameterSchema), [config.parameterSchema]);
  const urls = useMemo(() => apiUrls(config), [config]);
  const [handlesByNode, setHandlesByNode] = useState<Map<string, string[]>>(new Map());
  const [showShortcuts, setShowShortcuts] = useState(false);
  const [rerunFrom, setRerunFrom] = useState<{ key: string; run: RunDetail } | null>(null);
  const pastes = useRef(0);

  // --- undo and redo --------------------------------------------------------------------

  const stateRef = useRef<Snapshot>({ nodes, edges, meta });
  stateRef.current = { nodes, edges, meta };
  const history = useEditHistory(
    () => stateRef.current,
    (snapshot) => {
      // The selection is not an edit: it stays as it is.
      const selected = new Set(stateRef.current.nodes.filter((n) => n.selected).map((n) => n.id));
      setNodes(snapshot.nodes.map((n) => ({ ...n, selected: selected.has(n.id), dragging: false })));
      setEdges(snapshot.edges);
      setMeta(snapshot.meta);
    },
  );
  const { checkpoint } = history;

  // What the side panel's widgets complete and pick from.
  const operators = useMemo(() => once(() => api.get<Operator[]>(urls.operators).then((r) => r.data)), [api, urls]);
  const parameterNames = JSON.stringify(
    meta.parameters.filter((p) => p.name).map((p) => ({ name: p.name, type: p.type ?? "string" })),
  );
  const nodeKeys = nodes.map((n) => n.id).join("\n");
  const editorState = useMemo(
    () => ({
      api,
      urls,
      operators,
      parameters: JSON.parse(parameterNames) as { name: string; type: string }[],
      nodeKeys: nodeKeys ? nodeKeys.split("\n") : [],
    }),
    [api, urls, operators, parameterNames, nodeKeys],
  );

  const nodeData = useSameItems(nodes.map((n) => n.data)); // not changed by moving nodes
  // Handles that depend on a node's config (a Parallel's branches) follow the type's own
  // rule on the server; a node with its type's default config has the catalogue's handles.
  const handleQuery = useMemo(() => {
    const asked = nodes.filter((n) => {
      const nodeType = catalogue.get(n.data.type);
      return nodeType && JSON.stringify(n.data.config) !== JSON.stringify(nodeType.default_config);
    });
    return JSON.stringify(asked.map((n) => ({ key: n.id, type: n.data.type, config: n.data.config })));
  }, [nodeData, nodeKeys, catalogue]);
  useEffect(() => {
    const asked = JSON.parse(handleQuery) as { key: string; type: string; config: JsonObject }[];
    if (!asked.length) {
      setHandlesByNode((current) => (current.size ? new Map() : current));
      return;
    }
    let current = true;
    const timer = window.setTimeout(() => {
      api
        .post<{ handles: string[][] }>(urls.handles, { nodes: asked.map(({ type, config }) => ({ type, config })) })
        .then(({ data }) => current && setHandlesByNode(new Map(asked.map((n, i) => [n.key, data.handles[i]]))))
        .catch(() => undefined); // the catalogue's handles stay; saving names any problem
    }, HANDLES_DELAY_MS);
    return () => {
      current = false;
      window.clearTimeout(timer);
    };
  }, [handleQuery]);

  // --- load ---------------------------------------------------------------------------

  useEffect(() => {
    Promise.all([api.get<NodeType[]>(config.urls.nodeTypes), api.get<PipelineDocument>(config.urls.graph)])
      .then(([typesResponse, graphResponse]) => {
        const loadedTypes = typesResponse.data;
        const loaded = toFlow(graphResponse.data, new Map(loadedTypes.map((t) => [t.key, t])));
        setTypes(loadedTypes);
        setNodes(loaded.nodes);
        setInitialNodes(loaded.nodes.length);
        setEdges(loaded.edges);
        setMeta(loaded.meta);
        setSaved({
          version: versionFromETag(graphResponse.headers) ?? 0,
          document: graphResponse.data,
          fingerprint: documentFingerprint(toDocument(loaded.nodes, loaded.edges, loaded.meta)),
        });
      })
      .catch((error: unknown) => setLoadError(error instanceof Error ? error.message : String(error)));
    return () => liveRun.current?.close();
  }, []);

  const document = useMemo(() => toDocument(nodes, edges, meta), [nodes, edges, meta]);
  const dirty = saved !== null && documentFingerprint(document) !== saved.fingerprint;

  useEffect(() => {
    if (!dirty) return;
    const warn = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = ""; // older browsers need it set to show the prompt
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  // One listener, which calls the latest handler (`onShortcut.current`, set after the
  // actions it calls are defined).
  const onShortcut = useRef<(event: KeyboardEvent) => void>(() => undefined);
  useEffect(() => {
    const shortcut = (event: KeyboardEvent) => onShortcut.current(event);
    window.addEventListener("keydown", shortcut);
    return () => window.removeEventListener("keydown", shortcut);
  }, []);

  // --- canvas editing -------------------------------------------------------------------

  const onNodesChange = useCallback(
    (changes: NodeChange<PipelineNode>[]) => setNodes((current) => applyNodeChanges(changes, current)),
    [],
  );
  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => setEdges((current) => applyEdgeChanges(changes, current)),
    [],
  );

  // Refs, so the connection check reads the current graph without re-creating callbacks.
  const graphRef = useRef({ nodes, edges, catalogue });
  graphRef.current = { nodes, edges, catalogue };

  // Why the connection being dragged is refused: shown while it hovers a handle, and for a
  // few seconds after it was dropped there.
  const connecting = useRef(false);
  const hintTimer = useRef<number | undefined>(undefined);
  const isValidConnection = useCallback((connection: Connection | Edge) => {
    const { nodes: n, edges: e, catalogue: c } = graphRef.current;
    const problem = connectionProblem(connection, n, e, c);
    if (connecting.current) setHint(problem);
    return problem === null;
  }, []);
  const onConnectStart = useCallback(() => {
    connecting.current = true;
    window.clearTimeout(hintTimer.current);
    setHint(null);
  }, []);
  const onConnectEnd = useCallback<OnConnectEnd>((_, state) => {
    connecting.current = false;
    if (state.toHandle && state.isValid === false) {
      hintTimer.current = window.setTimeout(() => setHint(null), 4000);
    } else {
      setHint(null);
    }
  }, []);

  const onConnect = useCallback((connection: Connection) => {
    const { nodes: n, edges: e, catalogue: c } = graphRef.current;
    if (connectionProblem(connection, n, e, c) !== null) return;
    checkpoint();
    setEdges((current) => [
      ...current,
      makeEdge(connection.source, connection.sourceHandle ?? "out", connection.target),
    ]);
  }, []);

  /** A new node at `position` (canvas coordinates); put where a Loop is, it goes inside it. */
  const addNode = useCallback(
    (typeKey: string, position: { x: number; y: number }, headPoint?: { x: number; y: number }) => {
      const nodeType = catalogue.get(typeKey);
      if (!nodeType) return;
      checkpoint();
      setNodes((current) => {
        const key = newKey(typeKey, new Set(current.map((n) => n.id)));
        const parent = containerAt(headPoint ?? position, current, containerSizes(current, catalogue));
        const parentNode = current.find((n) => n.id === parent);
        let place = position;
        if (parentNode) {
          const corner = absolutePosition(parentNode, current);
          place = insideContainer({ x: position.x - corner.x, y: position.y - corner.y });
        }
        const node: PipelineNode = {
          id: key,
          type: "pipeline",
          position: place,
          ...(parent ? { parentId: parent } : {}),
          selected: true,
          data: {
            type: typeKey,
            label: "",
            config: structuredClone(nodeType.default_config),
            notes: "",
            settings: {},
          },
        };
        return [...current.map((n) => (n.selected ? { ...n, selected: false } : n)), node];
      });
    },
    [catalogue],
  );

  const onDrop = (event: DragEvent) => {
    const typeKey = event.dataTransfer.getData(DRAG_TYPE);
    if (!typeKey) return;
    event.preventDefault();
    const point = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    addNode(typeKey, { x: point.x - NODE_WIDTH / 2, y: point.y - 20 }, point); // the card's head under the pointer
  };

  const addInView = (typeKey: string) => {
    const box = canvas.current?.getBoundingClientRect();
    if (!box) return;
    const offset = (nodes.length % 8) * 24; // so clicked nodes don't pile up exactly
    const point = flow.screenToFlowPosition({
      x: box.left + box.width / 2 + offset,
      y: box.top + box.height / 3 + offset,
    });
    addNode(typeKey, { x: point.x - NODE_WIDTH / 2, y: point.y });
  };

  // Stable callbacks, so the memoised side panel does not re-render while a node is dragged.
  const updateNode = useCallback((key: string, patch: Partial<PipelineNodeData>) => {
    const node = graphRef.current.nodes.find((n) => n.id === key);
    const fields = Object.keys(patch) as (keyof PipelineNodeData)[];
    // A form that reports the value it was given changes nothing (and is no undo step).
    if (node && fields.every((f) => JSON.stringify(node.data[f]) === JSON.stringify(patch[f]))) return;
    checkpoint(`node:${key}:${fields.join(",")}`);
    setNodes((current) => current.map((n) => (n.id === key ? { ...n, data: { ...n.data, ...patch } } : n)));
    // An edited section's server errors are stale; the form's own validation takes over.
    const sections = (["config", "settings"] as const).filter((s) => s in patch);
    if (sections.length) {
      setErrors((current) =>
        current.filter((e) => e.node !== key || sections.every((s) => nodeFieldPath(e.field, s) === null)),
      );
    }
  }, []);

  const renameNode = useCallback((oldKey: string, newKeyText: string): string | null => {
    if (graphRef.current.nodes.some((n) => n.id === newKeyText))
      return `another node already has the key ${newKeyText}`;
    checkpoint();
    setNodes((current) =>
      current.map((n) =>
        n.id === oldKey
          ? { ...n, id: newKeyText }
          : n.parentId === oldKey // inside the renamed Loop
            ? { ...n, parentId: newKeyText }
            : n,
      ),
    );
    setEdges((current) =>
      current.map((e) =>
        e.source === oldKey || e.target === oldKey
          ? makeEdge(
              e.source === oldKey ? newKeyText : e.source,
              e.sourceHandle ?? "out",
              e.target === oldKey ? newKeyText : e.target,
            )
          : e,
      ),
    );
    setErrors((current) => current.map((e) => (e.node === oldKey ? { ...e, node: newKeyText } : e)));
    return null;
  }, []);

  // --- save and run ---------------------------------------------------------------------

  const save = async (message: string) => {
    if (!saved) return;
    setBusy(true);
    try {
      const { data } = await api.request<{ version: number; document: PipelineDocument }>(
        "PUT",
        config.urls.graph,
        { ...document, message },
        { "If-Match": `"${saved.version}"` },
      );
      setSaved({ version: data.version, document: data.document, fingerprint: documentFingerprint(document) });
      setErrors([]);
      setNotice(
        data.version === saved.version
          ? { kind: "info", text: `Nothing changed since v${data.version}.` }
          : { kind: "success", text: `Saved as version v${data.version}.` },
      );
      setDialog(null);
    } catch (error) {
      setDialog(null);
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 400) {
        setErrors(error.errors);
        const count = error.errors.length;
        setNotice({
          kind: "error",
          text: `Not saved: ${count} problem${count === 1 ? "" : "s"}, marked on the nodes and fields.`,
        });
      } else if (error.status === 412) {
        setNotice({
          kind: "error",
          text: "Not saved: a newer version was saved meanwhile (another tab or person). Reload to get it.",
          reload: true,
        });
      } else {
        setNotice({ kind: "error", text: `Not saved: ${error.message}` });
      }
    } finally {
      setBusy(false);
    }
  };

  const startRun = async (params: JsonObject) => {
    setBusy(true);
    try {
      const { data } = await api.request<{ id: number }>("POST", config.urls.runs, { params });
      setDialog(null);
      setRunErrors([]);
      watchRun(data.id);
      setNotice({ kind: "info", text: `Run #${data.id} started.` });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setRunErrors(error.errors);
      // A saved graph the engine refuses: show its errors on the nodes too.
      if (error.errors.some((e) => e.node)) setErrors(error.errors.filter((e) => e.node));
    } finally {
      setBusy(false);
    }
  };

  const hideRun = () => {
    liveRun.current?.close();
    liveRun.current = null;
    setLive(null);
  };

  const watchRun = (id: number) => {
    liveRun.current?.close();
    setLive(null);
    liveRun.current = new LiveRun(id, config.urls.runSocket.replace("{id}", String(id)), setLive);
  };

  const cancelRun = async () => {
    if (!live?.run) return;
    try {
      await api.post(`${urls.run(live.run.id)}cancel/`);
      setNotice({ kind: "info", text: `Run #${live.run.id} is being cancelled.` });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setNotice({ kind: "error", text: `Not cancelled: ${error.message}` });
    }
  };

  // Re-run from a node: the parameters of the run it repeats, editable, then a new run.
  const openRerun = useCallback(
    async (key: string) => {
      const runId = liveRun.current?.runId;
      if (runId === undefined) return;
      try {
        const { data } = await api.get<RunDetail>(urls.run(runId));
        setRunErrors([]);
        setRerunFrom({ key, run: data });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        setNotice({ kind: "error", text: `Run #${runId} could not be read: ${error.message}` });
      }
    },
    [api, urls],
  );

  const rerun = async (params: JsonObject) => {
    if (!rerunFrom) return;
    setBusy(true);
    try {
      const { data } = await api.post<{ id: number }>(`${urls.run(rerunFrom.run.id)}rerun/`, {
        from_node: rerunFrom.key,
        params,
      });
      setRerunFrom(null);
      watchRun(data.id);
      setNotice({ kind: "info", text: `Run #${data.id} re-runs run #${rerunFrom.run.id} from ${rerunFrom.key}.` });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setRunErrors(error.errors);
    } finally {
      setBusy(false);
    }
  };

  // --- copy, paste, layout, moving into and out of Loops --------------------------------

  const [flash, setFlash] = useState<string | null>(null);
  const flashTimer = useRef<number | undefined>(undefined);
  const say = (text: string) => {
    setFlash(text);
    window.clearTimeout(flashTimer.current);
    flashTimer.current = window.setTimeout(() => setFlash(null), 3000);
  };

  const copy = () => {
    const count = copyNodes(nodes, edges);
    pastes.current = 0;
    if (count) say(`Copied ${count} node${count === 1 ? "" : "s"}. Ctrl+V pastes.`);
    return count;
  };

  const paste = () => {
    const pasted = pasteNodes(nodes, edges, ++pastes.current);
    if (!pasted) return say("Nothing to paste: copy nodes first (Ctrl+C).");
    checkpoint();
    setNodes(pasted.nodes);
    setEdges(pasted.edges);
  };

  const layout = () => {
    if (!nodes.length) return;
    checkpoint();
    const positions = autoLayout(nodes, edges, catalogue);
    setNodes(nodes.map((n) => ({ ...n, position: positions.get(n.id) ?? n.position })));
    window.requestAnimationFrame(() => flow.fitView({ ...FIT_VIEW, duration: 200 }));
  };

  const onBeforeDelete: OnBeforeDelete<PipelineNode, PipelineEdge> = useCallback(async () => {
    checkpoint();
    return true;
  }, []);

  const onNodeDragStart: OnNodeDrag<PipelineNode> = useCallback(() => checkpoint(), []);

  // A node dropped on a Loop goes into it; one dragged out of its Loop leaves it.
  const onNodeDragStop: OnNodeDrag<PipelineNode> = useCallback((_, __, dragged) => {
    // After React Flow's last position change is in the state.
    window.requestAnimationFrame(() => {
      const { nodes: current, edges: currentEdges } = stateRef.current;
      const draggedKeys = new Set(dragged.map((n) => n.id));
      // Sizes as while dragging: a Loop does not stretch around the node leaving it.
      const sizes = containerSizes(
        current.map((n) => (draggedKeys.has(n.id) ? { ...n, dragging: true } : n)),
        graphRef.current.catalogue,
      );
      let graph = { nodes: current, edges: currentEdges };
      let dropped = 0;
      for (const key of draggedKeys) {
        const node = graph.nodes.find((n) => n.id === key);
        if (!node || (node.parentId && draggedKeys.has(node.parentId))) continue; // moves with its Loop
        const corner = absolutePosition(node, graph.nodes);
        const head = { x: corner.x + (node.measured?.width ?? NODE_WIDTH) / 2, y: corner.y + 20 };
        const target = containerAt(head, graph.nodes, sizes, withDescendants(new Set([key]), graph.nodes));
        if (target === (node.parentId ?? null)) continue;
        const moved = reparent(graph.nodes, graph.edges, key, target);
        graph = moved;
        dropped += moved.dropped;
      }
      if (graph.nodes === current) return;
      setNodes(graph.nodes);
      setEdges(graph.edges);
      if (dropped) {
        say(`${dropped} edge${dropped === 1 ? "" : "s"} removed: an edge cannot cross a Loop boundary.`);
      }
    });
  }, []);

  const notesChange = useCallback((key: string, notes: string) => updateNode(key, { notes }), [updateNode]);

  onShortcut.current = (event: KeyboardEvent) => {
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (ctrl && key === "s") {
      event.preventDefault();
      if (saved) setDialog("save");
      return;
    }
    // The others act on the canvas: not while typing in a field, nor under a dialog.
    const target = event.target as HTMLElement | null;
    const typing = target?.closest("input, textarea, select, [contenteditable=true]");
    if (typing || window.document.querySelector("dialog[open]") || !saved) return;
    if (ctrl && (key === "z" || key === "y")) {
      event.preventDefault();
      if (key === "y" || event.shiftKey) history.redo();
      else history.undo();
    } else if (ctrl && key === "c") {
      if (window.getSelection()?.toString()) return; // text selected on the page: copy that
      if (copy()) event.preventDefault();
    } else if (ctrl && key === "v") {
      event.preventDefault();
      paste();
    } else if (ctrl && key === "d") {
      event.preventDefault();
      if (copy()) paste();
    } else if (ctrl && key === "a") {
      event.preventDefault();
      setNodes((current) => current.map((n) => ({ ...n, selected: true })));
    } else if (!ctrl && event.shiftKey && key === "l") {
      layout();
    } else if (!ctrl && event.shiftKey && key === "f") {
      flow.fitView({ ...FIT_VIEW, duration: 200 });
    } else if (event.key === "?") {
      setShowShortcuts((shown) => !shown);
    } else if (event.key === "Escape") {
      setShowShortcuts(false);
    }
  };

  // --- view -------------------------------------------------------------------------------

  const errorsByNode = useMemo(() => {
    const byNode = new Map<string, FieldError[]>();
    for (const error of errors) if (error.node) byNode.set(error.node, [...(byNode.get(error.node) ?? []), error]);
    return byNode;
  }, [errors]);
  const canvasState = useMemo(
    () => ({ catalogue, errorsByNode, live, handlesByNode, onNotesChange: notesChange }),
    [catalogue, errorsByNode, live, handlesByNode, notesChange],
  );

  // A Loop is drawn around its body.
  const sizes = useMemo(() => containerSizes(nodes, catalogue), [nodes, catalogue]);
  const shownNodes = useMemo(
    () => nodes.map((node) => (sizes.has(node.id) ? { ...node, ...sizes.get(node.id) } : node)),
    [nodes, sizes],
  );

  const shownEdges = useMemo(
    () =>
      edges.map((edge) => {
        const handle = edge.sourceHandle ?? "out";
        const sourceRun = live?.nodes.get(edge.source);
        const parts = handle === "out" ? [] : [handle];
        if (sourceRun?.records_out != null) parts.push(`${sourceRun.records_out} records`);
        return {
          ...edge,
          label: parts.join(" · ") || undefined,
          className: `handle-${handle}`,
          animated: live?.nodes.get(edge.target)?.state === "running",
        };
      }),
    [edges, live],
  );

  const selected = nodes.filter((n) => n.selected);
  const pipelineErrors = useMemo(() => errors.filter((e) => !e.node), [errors]);
  const updateMeta = useCallback((patch: Partial<PipelineMeta>) => {
    checkpoint(`meta:${Object.keys(patch).join(",")}`);
    setMeta((m) => ({ ...m, ...patch }));
  }, []);

  if (loadError) return <div className="error-box">The designer could not load this pipeline: {loadError}</div>;

  return (
    <EditorContext.Provider value={editorState}>
      <CanvasContext.Provider value={canvasState}>
        <div className="dm-designer">
          <div className="dm-toolbar" role="toolbar" aria-label="Pipeline">
            <strong className="dm-title">{meta.name || "Untitled"}</strong>
            {saved && <span className="dm-version">v{saved.version}</span>}
            <span className={`dm-dirty ${dirty ? "is-dirty" : ""}`} aria-live="polite">
              {saved === null ? "Loading…" : dirty ? "Unsaved changes" : "All changes saved"}
            </span>
            <button type="button" id="undo" disabled={!history.canUndo} onClick={history.undo} title="Ctrl+Z">
              Undo
            </button>
            <button type="button" id="redo" disabled={!history.canRedo} onClick={history.redo} title="Ctrl+Shift+Z">
              Redo
            </button>
            <button type="button" id="auto-layout" disabled={!nodes.length} onClick={layout} title="Shift+L">
              Auto-layout
            </button>
            <button type="button" onClick={() => flow.fitView({ ...FIT_VIEW, duration: 200 })}>
              Fit view
            </button>
            <button
              type="button"
              id="show-shortcuts"
              aria-label="Keyboard shortcuts"
              aria-expanded={showShortcuts}
              title="Keyboard shortcuts (?)"
              onClick={() => setShowShortcuts((shown) => !shown)}
            >
              ?
            </button>
            <VersionsButton api={api} pipeline={config.pipeline} saved={saved} dirty={dirty} />
            <SchedulesButton api={api} pipeline={config.pipeline} saved={saved} />
            <TemplateSaveButton api={api} pipeline={config.pipeline} saved={saved} dirty={dirty} />
            <button
              type="button"
              className="primary"
              id="save"
              disabled={!saved || busy}
              onClick={() => setDialog("save")}
            >
              Save
            </button>
            <button
              type="button"
              className="primary"
              id="execute"
              disabled={!saved || busy}
              onClick={() => {
                setRunErrors([]);
                setDialog("run");
              }}
            >
              Execute Now
            </button>
            {live?.run && (
              <span className="dm-run-status">
                <a href={config.urls.runPage.replace("{id}", String(live.run.id))}>Run #{live.run.id}</a>{" "}
                <span className={`badge state-${live.run.state}`} id="run-state">
                  {live.run.state}
                </span>{" "}
                <span className="live-status" data-status={live.status}>
                  {live.statusText}
                </span>
                {isFinished(live.run.state) ? (
                  <button type="button" className="link" onClick={hideRun}>
                    Hide
                  </button>
                ) : (
                  <button type="button" id="cancel-run" onClick={cancelRun}>
                    Cancel run
                  </button>
                )}
              </span>
            )}
          </div>
          {notice && (
            <div className={`message ${notice.kind}`} role={notice.kind === "error" ? "alert" : "status"} id="notice">
              <span className="dm-notice-text">{notice.text}</span>
              {notice.reload && (
                <button type="button" className="link" onClick={() => window.location.reload()}>
                  Reload
                </button>
              )}
              <button type="button" className="link dm-dismiss" aria-label="Dismiss" onClick={() => setNotice(null)}>
                ×
              </button>
            </div>
          )}
          <div className="dm-body">
            <Palette types={types} onAdd={addInView} />
            <div
              className="dm-canvas"
              ref={canvas}
              onDragOver={(e) => {
                e.preventDefault();
                e.dataTransfer.dropEffect = "move";
              }}
              onDrop={onDrop}
            >
              {saved && (
                <ReactFlow<PipelineNode, PipelineEdge>
                  nodes={shownNodes}
                  edges={shownEdges}
                  nodeTypes={NODE_TYPES}
                  onNodesChange={onNodesChange}
                  onEdgesChange={onEdgesChange}
                  onBeforeDelete={onBeforeDelete}
                  onNodeDragStart={onNodeDragStart}
                  onNodeDragStop={onNodeDragStop}
                  onConnect={onConnect}
                  onConnectStart={onConnectStart}
                  onConnectEnd={onConnectEnd}
                  isValidConnection={isValidConnection}
                  deleteKeyCode={DELETE_KEYS}
                  minZoom={MIN_ZOOM}
                  // Fit a loaded graph once; an empty one keeps its view, so the first drop does not jump.
                  fitView={initialNodes > 0}
                  fitViewOptions={FIT_VIEW}
                >
                  <Background />
                  <Controls />
                  <MiniMap
                    pannable
                    zoomable
                    nodeClassName={(node) => `minimap-${live?.nodes.get(node.id)?.state ?? "idle"}`}
                  />
                </ReactFlow>
              )}
              {(hint ?? flash) && (
                <div className="dm-hint" role="status">
                  {hint ?? flash}
                </div>
              )}
              {showShortcuts && <EditShortcuts onClose={() => setShowShortcuts(false)} />}
            </div>
            <aside className="dm-panel" aria-label="Selection">
              {selected.length === 1 ? (
                <NodePanel
                  nodeKey={selected[0].id}
                  data={selected[0].data}
                  nodeType={catalogue.get(selected[0].data.type)}
                  settingsSchema={config.settingsSchema}
                  errors={errorsByNode.get(selected[0].id) ?? NO_ERRORS}
                  live={live}
                  definitions={saved?.document.parameters ?? NO_DEFINITIONS}
                  onRerun={openRerun}
                  onRename={renameNode}
                  onChange={updateNode}
                />
              ) : (
                <>
                  {selected.length > 1 && (
                    <p className="muted">{selected.length} nodes selected. Press Delete to remove them.</p>
                  )}
                  <PipelinePanel meta={meta} schema={parameterSchema} errors={pipelineErrors} onChange={updateMeta} />
                </>
              )}
            </aside>
          </div>
          {dialog === "save" && <SaveDialog busy={busy} onSave={save} onClose={() => setDialog(null)} />}
          {dialog === "run" && saved && (
            <RunDialog
              definitions={saved.document.parameters ?? []}
              version={saved.version}
              unsaved={dirty}
              busy={busy}
              errors={runErrors}
              onStart={startRun}
              onClose={() => setDialog(null)}
            />
          )}
          {rerunFrom && saved && (
            <RunDialog
              title={`Re-run from ${rerunFrom.key}`}
              intro={
                <>
                  A new run of version <strong>v{rerunFrom.run.version}</strong>: <code>{rerunFrom.key}</code> and every
                  node after it run again; the other nodes' results of run #{rerunFrom.run.id} are reused.
                </>
              }
              initialValues={rerunFrom.run.params}
              submitLabel="Re-run"
              definitions={saved.document.parameters ?? []}
              version={rerunFrom.run.version}
              unsaved={false}
              busy={busy}
              errors={runErrors}
              onStart={rerun}
              onClose={() => setRerunFrom(null)}
            />
          )}
        </div>
      </CanvasContext.Provider>
    </EditorContext.Provider>
  );
}
