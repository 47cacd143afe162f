import type Docker from "dockerode";
import { type DockerProgressEvent, followProgress } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { splitImageRef } from "./registry-ref.js";

export interface PushedImage {
  /** registry/repo:tag */
  ref: string;
  /** sha256:… as the registry names the manifest */
  digest: string;
  /** registry/repo@sha256:… — what a node pulls: immutable, unlike a tag */
  pinned: string;
}

/**
 * Push a local image of `docker` (an engine that can reach the registry: for
 * Swarm, the manager) as registry/repo:tag, with progress in the log, and
 * return the digest the registry gave it — nodes pull it by that digest.
 */
export async function pushImage(options: {
  docker: Docker;
  image: string;
  registry: string;
  log: Logger;
}): Promise<PushedImage> {
  const { docker, log } = options;
  const [repo, tag] = splitImageRef(options.image);
  const target = `${options.registry}/${repo}`;
  const ref = `${target}:${tag}`;
  await docker.getImage(options.image).tag({ repo: target, tag });
  let digest: string | undefined;
  let last = 0;
  try {
    const stream = (await docker.getImage(ref).push({ tag })) as NodeJS.ReadableStream;
    await followProgress(docker, stream, (event: DockerProgressEvent & { aux?: { Digest?: string } }) => {
      if (event.aux?.Digest) digest = event.aux.Digest;
      const now = Date.now();
      if (event.status && now - last > 2000) {
        last = now;
        log.info({ image: ref, status: event.status, progress: event.progress }, `pushing ${ref}`);
      }
    });
  } catch (error) {
    throw new OpenworkError(`pushing ${ref} failed: ${errorMessage(error)}`, {
      code: "image_push",
      hint: `the engine must reach and trust ${options.registry} (an insecure registry must be listed in its daemon.json)`,
      cause: error,
    });
  }
  if (!digest) {
    const info = await docker.getImage(ref).inspect();
    digest = info.RepoDigests?.find((entry) => entry.startsWith(`${target}@`))?.split("@")[1];
  }
  if (!digest) throw new OpenworkError(`the registry gave ${ref} no digest`, { code: "image_push" });
  log.info({ image: ref, digest }, "image pushed");
  return { ref, digest, pinned: `${target}@${digest}` };
}
