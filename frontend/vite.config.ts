// Builds the designer into ../static/designer/ as designer.js + designer.css: fixed names
// (no content hash), so the Django template includes them with {% static %} and the
// committed bundle only changes when its source does.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "./",
  build: {
    outDir: "../static/designer",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    cssCodeSplit: false,
    reportCompressedSize: false,
    // One file on purpose (React, React Flow, rjsf + ajv): about 260 kB gzipped.
    chunkSizeWarningLimit: 1200,
    rolldownOptions: {
      input: "src/main.tsx",
      output: {
        entryFileNames: "designer.js",
        assetFileNames: "designer[extname]",
        codeSplitting: false,
      },
    },
  },
});
