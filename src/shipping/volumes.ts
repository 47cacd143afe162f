import type Docker from "dockerode";
import { statusCode } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { LABEL_HOME, LABEL_MANAGED } from "../sandbox/backend.js";
import type { SandboxUser } from "../sandbox/user.js";
import { runHelper } from "./helper.js";

/** What kind of data a volume of ours holds (label openwork.volume). */
export type VolumeRole = "persist" | "runtimes" | "workspace";
export const LABEL_VOLUME = "openwork.volume";

/**
 * The names of a shipped run's volumes. The runtimes volume is one per engine
 * and home (content-addressed, shared by every run there); the others are the
 * workspace's own, so that its state outlives a run as the persisted directory does.
 */
export function volumeNames(homeId: string, workspaceId: string) {
  return {
    runtimes: `openwork-${homeId}-runtimes`,
    persist: `openwork-${homeId}-persist-${workspaceId}`,
    workspace: `openwork-${homeId}-workspace-${workspaceId}`,
  };
}

/**
 * Make sure a volume of ours exists; a new one's root is given to `owner` (a
 * new volume's root is root's, and the sandbox never runs as root). A volume
 * of that name that is not ours is refused, never taken over.
 */
export async function ensureVolume(
  docker: Docker,
  options: {
    name: string;
    role: VolumeRole;
    labels: Record<string, string>;
    /** the image that runs the one-off chown of a new volume */
    image: string;
    owner?: SandboxUser | undefined;
    mode?: string;
  },
): Promise<{ created: boolean }> {
  const { name } = options;
  const existing = await docker
    .getVolume(name)
    .inspect()
    .catch((error: unknown) => {
      if (statusCode(error) === 404) return undefined;
      throw error;
    });
  if (existing) {
    const labels = (existing.Labels ?? {}) as Record<string, string>;
    if (labels[LABEL_MANAGED] !== "1" || labels[LABEL_HOME] !== options.labels[LABEL_HOME])
      throw new OpenworkError(`the volume ${name} on the engine is not one this openwork made`, {
        code: "volume_foreign",
        hint: `remove or rename it (docker volume rm ${name}) if it is yours to drop`,
      });
    return { created: false };
  }
  try {
    await docker.createVolume({ Name: name, Labels: { ...options.labels, [LABEL_VOLUME]: options.role } });
  } catch (error) {
    throw new OpenworkError(
      `the Docker engine refused to create the volume ${name}: ${errorMessage(error)}`,
      {
        code: "ship_failed",
        cause: error,
      },
    );
  }
  if (options.owner) {
    const { uid, gid } = options.owner;
    try {
      await runHelper(docker, {
        image: options.image,
        labels: options.labels,
        mounts: [{ Type: "volume", Source: name, Target: "/v" }],
        command: ["sh", "-c", `chown ${uid}:${gid} /v && chmod ${options.mode ?? "0700"} /v`],
      });
    } catch (error) {
      await docker
        .getVolume(name)
        .remove()
        .catch(() => {});
      throw error;
    }
  }
  return { created: true };
}
