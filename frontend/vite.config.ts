import { copyFileSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const OUT_DIR = "../src/mistudio/web/static";

/** Copy Swagger UI's files into the build (served at /swagger-ui/), so the API docs page (/docs) needs no CDN. */
function swaggerUiAssets() {
  return {
    name: "swagger-ui-assets",
    apply: "build" as const,
    closeBundle() {
      const from = fileURLToPath(new URL("./node_modules/swagger-ui-dist/", import.meta.url));
      const to = fileURLToPath(new URL(`${OUT_DIR}/swagger-ui/`, import.meta.url));
      mkdirSync(to, { recursive: true });
      for (const name of ["swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"]) {
        copyFileSync(`${from}${name}`, `${to}${name}`);
      }
    },
  };
}

// React without @vitejs/plugin-react: esbuild compiles JSX with the automatic runtime.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  plugins: [swaggerUiAssets()],
  build: {
    outDir: OUT_DIR,
    emptyOutDir: true,
    chunkSizeWarningLimit: 800,
  },
  server: {
    proxy: { "/api": process.env.MISTUDIO_API ?? "http://127.0.0.1:8000" },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
