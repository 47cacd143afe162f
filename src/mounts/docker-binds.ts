import type Docker from "dockerode";
import type { ValidatedMount } from "./types.js";

/**
 * Docker's form of validated mounts for the Engine API's `HostConfig.Mounts`.
 * Prefer this to `Binds`: a `Binds` entry is itself colon-separated, so a host
 * path with a colon (which the validator accepts, e.g. `/data/a:b`) cannot be
 * said there, while a Mounts entry carries any path.
 */
export function dockerMounts(mounts: readonly ValidatedMount[]): Docker.MountSettings[] {
  return mounts.map((mount) => ({
    Type: "bind",
    Source: mount.hostPath,
    Target: mount.containerPath,
    ReadOnly: mount.readOnly,
  }));
}
