// Bundles the CLI (dist/entrypoints/openwork.js, compiled by tsc) into dist/bin/openwork.js plus
// chunks: our own modules become one file that Node parses at once instead of ~200 it resolves one
// by one, and each dynamic import (a command's implementation, image building, downloads) becomes
// a chunk loaded only by the commands that use it.
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";
import { zodEnglishOnly } from "./esbuild-zod-locales.mjs";

/** @param {{ root: string }} options */
export async function bundleCli({ root }) {
  const outdir = path.join(root, "dist", "bin");
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: { openwork: path.join(root, "dist", "entrypoints", "openwork.js") },
    outdir,
    bundle: true,
    splitting: true,
    platform: "node",
    format: "esm",
    target: "node20",
    // Dependencies are bundled too (fewer files for Node to find and read at start-up), each into the
    // chunk of the code that uses it, so a command still loads only what it needs. External: dockerode
    // (it requires native modules and files by path, and src/docker/client.ts defers part of it
    // through require's cache) and undici (loaded by import() on the first HTTP call; bundled, that
    // import loses its named exports). pino-pretty is required at run time, only on a terminal.
    external: ["dockerode", "undici"],
    // ESM builds first: jsonc-parser's UMD build requires its parts at run time, which a bundle cannot.
    mainFields: ["module", "main"],
    chunkNames: "chunks/[name]-[hash]",
    // Bundled CommonJS packages (commander, pino, …) require Node's built-ins: give the bundle a require.
    banner: {
      js: "import { createRequire as __owCreateRequire } from 'node:module'; const require = __owCreateRequire(import.meta.url);",
    },
    plugins: [zodEnglishOnly],
    legalComments: "none",
    logLevel: "warning",
  });
}
