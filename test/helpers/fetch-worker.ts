// A separate process that fetches one blob, for the cross-process lock test:
//   node fetch-worker.js '<json: {kind:"url"|"npm", storeDir, locksDir, ...}>'
import { downloadToStore } from "../../src/download/http.js";
import { fetchNpmBinary } from "../../src/download/npm.js";
import { createLogger } from "../../src/logging/logger.js";
import { BlobStore } from "../../src/store/store.js";

const args = JSON.parse(process.argv[2] ?? "{}") as {
  kind: "url" | "npm";
  storeDir: string;
  locksDir: string;
  url?: string;
  sha256?: string;
  size?: number;
  registry?: string;
  package?: string;
  version?: string;
  integrity?: string;
  path?: string;
};
const log = createLogger({ format: "json", level: "info" });
const store = new BlobStore({ dir: args.storeDir, locksDir: args.locksDir, log });
const retry = { baseDelayMs: 20 };
const result =
  args.kind === "url"
    ? await downloadToStore({
        store,
        log,
        retry,
        url: args.url!,
        sha256: args.sha256!,
        size: args.size!,
        what: "worker blob",
        progress: "off",
      })
    : await fetchNpmBinary({
        store,
        log,
        retry,
        registry: args.registry,
        package: args.package!,
        version: args.version!,
        integrity: args.integrity,
        path: args.path!,
        what: "worker npm blob",
        progress: "off",
      });
process.stdout.write(`${JSON.stringify(result)}\n`);
