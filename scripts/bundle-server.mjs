// Bundles the runtime server (dist/entrypoints/openwork-server.js, compiled by tsc) into one
// self-contained ESM file. Shared by the build and by tests that need a server artefact
// stamped with another version (an upgrade needs two different servers).
import { chmodSync, mkdirSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { zodEnglishOnly } from "./esbuild-zod-locales.mjs";

/** @param {{ root: string, outfile: string, version: string }} options */
export async function bundleServer({ root, outfile, version }) {
  mkdirSync(path.dirname(outfile), { recursive: true });
  await build({
    entryPoints: [path.join(root, "dist", "entrypoints", "openwork-server.js")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // A fixed banner and no timestamps: the same source gives the same bytes (and hash).
    banner: {
      js: "import { createRequire as __owCreateRequire } from 'node:module'; const require = __owCreateRequire(import.meta.url);",
    },
    plugins: [zodEnglishOnly],
    legalComments: "none",
    define: { __OPENWORK_SERVER_VERSION__: JSON.stringify(version) },
    // ESM builds first: jsonc-parser's UMD build requires its parts at run time, which a bundle cannot.
    mainFields: ["module", "main"],
    logLevel: "warning",
  });
  chmodSync(outfile, 0o755);
}
