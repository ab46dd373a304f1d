// Entry point: templates/pipelines/designer.html provides #designer-root and the
// configuration (json_script "designer-config").
import "@xyflow/react/dist/style.css";
import "./designer.css";
import { ReactFlowProvider } from "@xyflow/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Api } from "./api";
import { Designer } from "./components/Designer";
import type { DesignerConfig } from "./types";

const root = document.getElementById("designer-root");
const configElement = document.getElementById("designer-config");
if (root && configElement?.textContent) {
  const config = JSON.parse(configElement.textContent) as DesignerConfig;
  createRoot(root).render(
    <StrictMode>
      <ReactFlowProvider>
        <Designer config={config} api={new Api(config.csrfToken)} />
      </ReactFlowProvider>
    </StrictMode>,
  );
}
