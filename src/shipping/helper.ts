import type Docker from "dockerode";
import { statusCode } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { LABEL_MANAGED } from "../sandbox/backend.js";

/**
 * A container that is created and never started, only to reach volumes
 * through the archive API (PUT/HEAD /containers/{id}/archive): the engine
 * mounts a created container's volumes for those calls, so files go in and
 * out without running anything. Removed when `use` ends, well or not.
 */
export async function withArchiveHelper<T>(
  docker: Docker,
  options: { image: string; mounts: Docker.MountSettings[]; labels: Record<string, string> },
  use: (helper: Docker.Container) => Promise<T>,
): Promise<T> {
  const helper = await docker
    .createContainer({
      Image: options.image,
      Cmd: ["true"],
      Labels: { ...options.labels, [LABEL_MANAGED]: "1", "openwork.helper": "1" },
      NetworkDisabled: true,
      HostConfig: { Mounts: options.mounts, NetworkMode: "none" },
    })
    .catch((error: unknown) => {
      throw new OpenworkError(`the Docker engine refused a file-transfer helper: ${errorMessage(error)}`, {
        code: "ship_failed",
        cause: error,
      });
    });
  try {
    return await use(helper);
  } finally {
    await helper.remove({ force: true }).catch(() => {});
  }
}

/**
 * Run one short command in a throwaway container and return its output; a
 * non-zero exit is an error carrying that output. As root with only
 * chown/fowner/dac capabilities and no network, for what the archive API
 * cannot do (give a new volume's root to the sandbox's user); or as the
 * sandbox's user, with no capability, and a network when `network` says so
 * (a `git clone` of the workspace). Secrets go in `env`, never the command.
 */
export async function runHelper(
  docker: Docker,
  options: {
    image: string;
    mounts: Docker.MountSettings[];
    labels: Record<string, string>;
    command: string[];
    /** "uid:gid"; default root, with the few capabilities that chown a volume */
    user?: string;
    network?: boolean;
    env?: Record<string, string>;
  },
): Promise<string> {
  const root = options.user === undefined;
  const container = await docker.createContainer({
    Image: options.image,
    Cmd: options.command,
    User: options.user ?? "0:0",
    Env: Object.entries({ HOME: "/tmp", ...options.env }).map(([key, value]) => `${key}=${value}`),
    Labels: { ...options.labels, [LABEL_MANAGED]: "1", "openwork.helper": "1" },
    NetworkDisabled: options.network !== true,
    HostConfig: {
      Mounts: options.mounts,
      NetworkMode: options.network ? "bridge" : "none",
      CapDrop: ["ALL"],
      CapAdd: root ? ["CHOWN", "FOWNER", "DAC_OVERRIDE", "DAC_READ_SEARCH"] : [],
      SecurityOpt: ["no-new-privileges"],
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,nosuid,nodev,size=64m" },
    },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const raw = (await container.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    const output = demux(raw).trim();
    if (StatusCode !== 0)
      throw new OpenworkError(
        `${options.command.join(" ")} failed on the engine (code ${StatusCode}): ${output}`,
        {
          code: "ship_failed",
        },
      );
    return output;
  } finally {
    await container.remove({ force: true }).catch(() => {});
  }
}

/** The payloads of a non-TTY log buffer (8-byte frame headers), joined. */
function demux(buffer: Buffer): string {
  let offset = 0;
  let out = "";
  while (offset + 8 <= buffer.length) {
    const size = buffer.readUInt32BE(offset + 4);
    out += buffer.subarray(offset + 8, offset + 8 + size).toString("utf8");
    offset += 8 + size;
  }
  return out;
}

/** Whether a path exists in a helper's view (HEAD on the archive endpoint: 404 when not). */
export async function pathExists(helper: Docker.Container, path: string): Promise<boolean> {
  try {
    await helper.infoArchive({ path });
    return true;
  } catch (error) {
    if (statusCode(error) === 404) return false;
    throw error;
  }
}
