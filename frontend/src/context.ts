// What every node card reads besides its own data: the catalogue, the server's errors
// by node key, and the live run (if one is shown).
import { createContext, useContext } from "react";
import type { Catalogue } from "./graph";
import type { LiveView } from "./live";
import type { FieldError } from "./types";

export interface CanvasState {
  catalogue: Catalogue;
  errorsByNode: Map<string, FieldError[]>;
  live: LiveView | null;
}

export const CanvasContext = createContext<CanvasState>({
  catalogue: new Map(),
  errorsByNode: new Map(),
  live: null,
});

export const useCanvas = () => useContext(CanvasContext);
