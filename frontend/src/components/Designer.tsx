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
  type NodeTypes,
  type OnConnectEnd,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { ApiError, versionFromETag, type Api } from "../api";
import { CanvasContext } from "../context";
import { nodeFieldPath, parameterRowsSchema } from "../forms";
import {
  connectionProblem,
  documentFingerprint,
  makeEdge,
  newKey,
  toDocument,
  toFlow,
  type Catalogue,
  type PipelineEdge,
  type PipelineMeta,
  type PipelineNode,
  type PipelineNodeData,
} from "../graph";
import { LiveRun, isFinished, type LiveView } from "../live";
import type { DesignerConfig, FieldError, JsonObject, NodeType, PipelineDocument } from "../types";
import { NodeCard } from "./NodeCard";
import { NodePanel } from "./NodePanel";
import { DRAG_TYPE, Palette } from "./Palette";
import { PipelinePanel } from "./PipelinePanel";
import { RunDialog } from "./RunDialog";
import { SaveDialog } from "./SaveDialog";

// Declared once at module scope, as React Flow asks (a new object per render remounts nodes).
const NODE_TYPES: NodeTypes = { pipeline: NodeCard };
const DELETE_KEYS = ["Delete", "Backspace"];
const NODE_WIDTH = 220; // .dm-node in designer.css
const NO_ERRORS: FieldError[] = [];

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

  useEffect(() => {
    const shortcut = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
        event.preventDefault();
        if (saved) setDialog("save");
      }
    };
    window.addEventListener("keydown", shortcut);
    return () => window.removeEventListener("keydown", shortcut);
  }, [saved]);

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
    setEdges((current) => [
      ...current,
      makeEdge(connection.source, connection.sourceHandle ?? "out", connection.target),
    ]);
  }, []);

  const addNode = useCallback(
    (typeKey: string, position: { x: number; y: number }) => {
      const nodeType = catalogue.get(typeKey);
      if (!nodeType) return;
      setNodes((current) => {
        const key = newKey(typeKey, new Set(current.map((n) => n.id)));
        const node: PipelineNode = {
          id: key,
          type: "pipeline",
          position,
          selected: true,
          data: {
            type: typeKey,
            label: "",
            config: structuredClone(nodeType.default_config),
            notes: "",
            settings: {},
            parent: null,
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
    addNode(typeKey, { x: point.x - NODE_WIDTH / 2, y: point.y - 20 }); // the card's head under the pointer
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
    setNodes((current) => current.map((n) => (n.id === oldKey ? { ...n, id: newKeyText } : n)));
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
      liveRun.current?.close();
      setLive(null);
      liveRun.current = new LiveRun(data.id, config.urls.runSocket.replace("{id}", String(data.id)), setLive);
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

  // --- view -------------------------------------------------------------------------------

  const errorsByNode = useMemo(() => {
    const byNode = new Map<string, FieldError[]>();
    for (const error of errors) if (error.node) byNode.set(error.node, [...(byNode.get(error.node) ?? []), error]);
    return byNode;
  }, [errors]);
  const canvasState = useMemo(() => ({ catalogue, errorsByNode, live }), [catalogue, errorsByNode, live]);

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
  const updateMeta = useCallback((patch: Partial<PipelineMeta>) => setMeta((m) => ({ ...m, ...patch })), []);

  if (loadError) return <div className="error-box">The designer could not load this pipeline: {loadError}</div>;

  return (
    <CanvasContext.Provider value={canvasState}>
      <div className="dm-designer">
        <div className="dm-toolbar" role="toolbar" aria-label="Pipeline">
          <strong className="dm-title">{meta.name || "Untitled"}</strong>
          {saved && <span className="dm-version">v{saved.version}</span>}
          <span className={`dm-dirty ${dirty ? "is-dirty" : ""}`} aria-live="polite">
            {saved === null ? "Loading…" : dirty ? "Unsaved changes" : "All changes saved"}
          </span>
          <button type="button" onClick={() => flow.fitView({ maxZoom: 1, duration: 200 })}>
            Fit view
          </button>
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
              {isFinished(live.run.state) && (
                <button type="button" className="link" onClick={hideRun}>
                  Hide
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
                nodes={nodes}
                edges={shownEdges}
                nodeTypes={NODE_TYPES}
                onNodesChange={onNodesChange}
                onEdgesChange={onEdgesChange}
                onConnect={onConnect}
                onConnectStart={onConnectStart}
                onConnectEnd={onConnectEnd}
                isValidConnection={isValidConnection}
                deleteKeyCode={DELETE_KEYS}
                minZoom={0.1}
                // Fit a loaded graph once; an empty one keeps its view, so the first drop does not jump.
                fitView={initialNodes > 0}
                fitViewOptions={{ maxZoom: 1 }}
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
            {hint && (
              <div className="dm-hint" role="status">
                {hint}
              </div>
            )}
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
      </div>
    </CanvasContext.Provider>
  );
}
