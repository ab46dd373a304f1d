// What the designer's canvas and the read-only version canvas share: the node card as
// React Flow's node type, and how far their view zooms.
import type { NodeTypes } from "@xyflow/react";
import { NodeCard } from "./components/NodeCard";

/** Declared once at module scope, as React Flow asks (a new object per render remounts nodes). */
export const NODE_TYPES: NodeTypes = { pipeline: NodeCard };

export const MIN_ZOOM = 0.1;
/** Fitting the view to the graph never zooms in past 100%. */
export const FIT_VIEW = { maxZoom: 1 };
