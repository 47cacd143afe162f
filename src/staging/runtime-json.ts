import { createHash } from "node:crypto";
import type { SidecarName } from "../sidecars/names.js";
import type { Target } from "../sidecars/platform.js";

/** `<persist>/runtimes/<id>/runtime.json`, exactly as docs/architecture.md specifies. */
export interface RuntimeJson {
  runtimeId: string;
  target: Target;
  runtimeVersion: string;
  sidecars: Partial<Record<SidecarName, { file: string; sha256: string; size: number; version: string }>>;
}

/**
 * The runtime id: the first 16 hex digits of sha256 over the sorted
 * `name=sha256` lines (each ended by "\n") of the staged sidecars. The id
 * binds runtime.json to its directory: editing a hash in it changes the id.
 */
export function runtimeIdOf(sidecars: Iterable<[string, string]>): string {
  const lines = [...sidecars].map(([name, sha256]) => `${name}=${sha256}\n`).sort();
  return createHash("sha256").update(lines.join("")).digest("hex").slice(0, 16);
}

export const RUNTIME_ID = /^[0-9a-f]{16}$/;
