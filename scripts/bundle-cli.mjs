// Bundles the CLI (dist/entrypoints/openwork.js, compiled by tsc) into dist/bin/openwork.js plus
// chunks: our own modules become one file that Node parses at once instead of ~200 it resolves one
// by one, and each dynamic import (a command's implementation, the Docker client, image building,
// pretty logging) becomes a chunk loaded only by the commands that use it. Packages stay external:
// they are installed beside us, and loading them lazily is what the chunks are for (commander aside).
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

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
    // Every dependency stays external but commander, which every command needs first: bundled,
    // it costs no module resolution in node_modules before the command line is even parsed.
    external: Object.keys(
      JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).dependencies,
    ).filter((name) => name !== "commander"),
    chunkNames: "chunks/[name]-[hash]",
    // commander is CommonJS and requires Node's built-ins: give the bundle a require.
    banner: {
      js: "import { createRequire as __owCreateRequire } from 'node:module'; const require = __owCreateRequire(import.meta.url);",
    },
    legalComments: "none",
    logLevel: "warning",
  });
}
