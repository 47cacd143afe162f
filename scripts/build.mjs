// Build: type-check and compile everything with tsc into dist/, bundle the CLI into
// dist/bin/openwork.js (what `openwork` runs: see bundle-cli.mjs), and bundle the
// runtime server into one self-contained file, dist/sidecars/openwork-server.mjs:
// the artefact that is hashed, put in the manifest and staged like any sidecar.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundleCli } from "./bundle-cli.mjs";
import { bundleServer } from "./bundle-server.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
rmSync(path.join(root, "dist"), { recursive: true, force: true });
execFileSync(
  process.execPath,
  [path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"],
  {
    cwd: root,
    stdio: "inherit",
  },
);
mkdirSync(path.join(root, "dist", "sidecars"), { recursive: true });
const { version: packageVersion } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
// OPENWORK_SERVER_VERSION builds a server artefact stamped with another version (upgrade tests, releases).
const serverVersion = process.env.OPENWORK_SERVER_VERSION ?? packageVersion;
const out = path.join(root, "dist", "sidecars", "openwork-server.mjs");
await bundleServer({ root, outfile: out, version: serverVersion });
chmodSync(path.join(root, "dist", "test", "fixtures", "router-double.js"), 0o755);
await bundleCli({ root });
for (const bin of ["openwork.js", "openwork-server.js"])
  chmodSync(path.join(root, "dist", "entrypoints", bin), 0o755);
chmodSync(path.join(root, "dist", "bin", "openwork.js"), 0o755);
