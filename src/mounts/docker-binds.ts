import type { ValidatedMount } from "./types.js";

/** Docker's bind syntax for validated mounts: read-only unless validation granted read-write. */
export function dockerBinds(mounts: ValidatedMount[]): string[] {
  return mounts.map((mount) => `${mount.hostPath}:${mount.containerPath}:${mount.readOnly ? "ro" : "rw"}`);
}
