import type Docker from "dockerode";
import type { ValidatedMount } from "./types.js";

/**
 * Docker's form of validated mounts. The Mounts API (not `Binds` strings),
 * because a `Binds` entry is itself colon-separated and a host path with a
 * colon would be split in the wrong place.
 */
export function dockerBinds(mounts: readonly ValidatedMount[]): Docker.MountSettings[] {
  return mounts.map((mount) => ({
    Type: "bind",
    Source: mount.hostPath,
    Target: mount.containerPath,
    ReadOnly: mount.readOnly,
  }));
}
