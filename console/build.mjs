// Bundles src/main.tsx and src/style.css into dist/assets/ under content-hashed names, and writes dist/index.html
// pointing at them. Everything comes from node_modules: the page loads nothing from outside the console.
import { build } from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

const out = "dist";
rmSync(out, { recursive: true, force: true });
mkdirSync(`${out}/assets`, { recursive: true });
const result = await build({
  entryPoints: { app: "src/main.tsx" },
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: "es2022",
  outdir: `${out}/assets`,
  entryNames: "[name]-[hash]",
  metafile: true,
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "linked",
  logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((p) => path.basename(p));
const js = outputs.find((n) => n.startsWith("app-") && n.endsWith(".js"));
const css = outputs.find((n) => n.startsWith("app-") && n.endsWith(".css"));
const html = readFileSync("index.html", "utf8")
  .replace("%SCRIPT%", `/assets/${js}`)
  .replace("%STYLE%", css ? `<link rel="stylesheet" href="/assets/${css}">` : "");
writeFileSync(`${out}/index.html`, html);
console.log(`console built: ${out}/index.html, ${outputs.filter((n) => !n.endsWith(".map")).join(", ")}`);
