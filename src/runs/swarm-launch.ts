import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { openworkPaths } from "../config/paths.js";
import { SANDBOX_PATHS } from "../contract/layout.js";
import { probeDocker } from "../docker/client.js";
import { type EntrypointConfig, renderEntrypoint } from "../entrypoint/write.js";
import { OpenworkError } from "../errors/errors.js";
import { type BakedImage, bakeRuntimeImage, checkBakedLabels, manifestDigest } from "../image/bake.js";
import { ensureImage } from "../image/local.js";
import { type PushedImage, pushImage } from "../image/push.js";
import type { Logger } from "../logging/logger.js";
import { done, notYet, pollUntil } from "../retry/poll.js";
import { LABEL_RUN, type SandboxHandle } from "../sandbox/backend.js";
import type { SwarmBackend, TaskPlace } from "../sandbox/swarm/swarm-backend.js";
import { imageToEngine } from "../shipping/image.js";
import { type ResolvedRequest, stageResolved } from "./prepare.js";

/** Where Swarm mounts a run's imports (its secrets), as OPENWORK_IMPORT. */
const SWARM_IMPORT_DIR = SANDBOX_PATHS.swarmImports;

/**
 * Bake a resolved runtime onto the sandbox image on this machine's engine
 * (src/image/bake.ts): what a Swarm start runs and what `openwork image bake` makes.
 */
export async function bakeResolved(options: {
  resolved: ResolvedRequest;
  config: EntrypointConfig;
  sandboxImage?: string | undefined;
  log: Logger;
}): Promise<{ baked: BakedImage; local: Docker }> {
  const { resolved, log } = options;
  const local = await probeDocker(3000);
  if (!local.ok)
    throw new OpenworkError(
      `a runtime image is baked on this machine's Docker engine, and none answers (${local.reason})`,
      { code: "image_missing", hint: "start Docker here (the image is then pushed where it runs)" },
    );
  const runtime = await stageResolved(resolved, {
    stagingRoot: path.join(openworkPaths().cache, "bake"),
    log,
  });
  const baked = await bakeRuntimeImage({
    docker: local.docker,
    sandboxImage: options.sandboxImage ?? (await ensureImage("swarm", log)),
    runtimeDir: runtime.dir,
    runtimeId: runtime.runtimeId,
    manifestDigest: manifestDigest(resolved.manifest),
    entrypoint: renderEntrypoint(options.config),
    log,
  });
  return { baked, local: local.docker };
}

/**
 * Carry a baked image to an engine that reaches the registry (streamed from this machine's engine
 * when it lacks it), check there that it carries the labels of what was resolved, and push it.
 */
export async function publishBaked(options: {
  baked: BakedImage;
  local: Docker;
  via: Docker;
  registry: string;
  log: Logger;
}): Promise<PushedImage> {
  const { baked, via, log } = options;
  await imageToEngine({ local: options.local, remote: via, ref: baked.tag, log });
  const there = await via.getImage(baked.tag).inspect();
  checkBakedLabels(there.Config?.Labels ?? undefined, baked, baked.tag);
  return pushImage({ docker: via, image: baked.tag, registry: options.registry, log });
}

/**
 * The image a Swarm service runs, by digest: the resolved runtime baked here,
 * pushed through the manager to the registry the nodes pull from.
 */
export async function swarmImage(options: {
  resolved: ResolvedRequest;
  backend: SwarmBackend;
  registry: string;
  config: EntrypointConfig;
  sandboxImage?: string | undefined;
  log: Logger;
}): Promise<{ pinned: string; tag: string }> {
  const { baked, local } = await bakeResolved(options);
  const pushed = await publishBaked({
    baked,
    local,
    via: options.backend.docker,
    registry: options.registry,
    log: options.log,
  });
  return { pinned: pushed.pinned, tag: baked.tag };
}

/**
 * A run's imports (the user's opencode config, logins, CA bundle) as Swarm
 * secrets, one per file, mounted below SWARM_IMPORT_DIR as the runtime's user:
 * nothing of them goes into the image, the registry or a command line.
 */
export async function importSecrets(options: {
  backend: SwarmBackend;
  importDir: string;
  runId: string;
  labels: Record<string, string>;
}): Promise<Array<{ id: string; name: string; target: string }>> {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) files.push(full);
    }
  };
  await walk(options.importDir);
  const secrets: Array<{ id: string; name: string; target: string }> = [];
  for (const [index, file] of files.entries()) {
    const name = `openwork-${options.runId}-${index}`;
    const created = (await options.backend.docker.createSecret({
      Name: name,
      Labels: { ...options.labels, [LABEL_RUN]: options.runId },
      Data: (await readFile(file)).toString("base64"),
    })) as { id?: string; ID?: string };
    const rel = path.relative(options.importDir, file).split(path.sep).join("/");
    secrets.push({
      id: created.id ?? created.ID ?? "",
      name,
      target: `${SWARM_IMPORT_DIR.slice("/run/secrets/".length)}/${rel}`,
    });
  }
  return secrets;
}

/**
 * Wait until Swarm runs the service's task somewhere and say where (the node's
 * name and address: the server is published there). A task Swarm rejects (no
 * node fits the constraints, the image cannot be pulled) is said with its reason.
 */
export async function waitForPlace(
  backend: SwarmBackend,
  handle: SandboxHandle,
  options: { deadlineMs: number; signal?: AbortSignal | undefined },
): Promise<TaskPlace> {
  return pollUntil(
    async () => {
      const place = await backend.place(handle);
      if (place?.state === "running" && place.address) return done(place);
      const problem = await backend.taskProblem(handle);
      if (problem)
        throw new OpenworkError(`Swarm cannot run the service: ${problem}`, { code: "launch_failed" });
      return notYet(place ? `task ${place.state} on ${place.node}` : "no task placed yet");
    },
    {
      what: "the Swarm task to run",
      pace: { intervalMs: 250 },
      deadlineMs: options.deadlineMs,
      signal: options.signal,
    },
  );
}
