import type { Logger } from "../logging/logger.js";
import type { RunRecord } from "./record.js";

/** What the user asked of the runtime's sidecars (manifest, overrides). */
export interface RuntimeRequest {
  manifest?: string | undefined;
  overrides?: Record<string, string> | undefined;
  allowExternal?: boolean;
  allowVersionMismatch?: boolean;
}

export interface PreparedRuntime {
  runtimeId: string;
  /** the staged runtime directory on the host */
  dir: string;
  versions: RunRecord["versions"];
}

/** Resolve, verify and stage the sidecars into the workspace's persisted directory. */
export async function prepareRuntime(
  _request: RuntimeRequest & { persistDir: string; sandboxed: boolean; router: boolean; log: Logger },
): Promise<PreparedRuntime> {
  throw new Error("prepareRuntime: wired to src/staging at merge");
}
