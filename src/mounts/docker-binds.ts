import type Docker from "dockerode";
import { OpenworkError } from "../errors/errors.js";
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

/**
 * The same mounts as `HostConfig.Binds` strings (`host:container:ro|rw`). A
 * path containing ":" would be split in the wrong place by the engine, so it
 * is refused here rather than silently mounting something else.
 */
export function dockerBinds(mounts: readonly ValidatedMount[]): string[] {
  return mounts.map((mount) => {
    if (mount.hostPath.includes(":") || mount.containerPath.includes(":"))
      throw new OpenworkError(
        `--mount ${JSON.stringify(mount.spec)}: ${mount.hostPath} contains ":", which Docker's Binds syntax cannot carry`,
        {
          code: "docker_bind_colon",
          hint: "the Docker backend should pass mounts as HostConfig.Mounts (dockerMounts)",
        },
      );
    return `${mount.hostPath}:${mount.containerPath}:${mount.readOnly ? "ro" : "rw"}`;
  });
}
