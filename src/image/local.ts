import { openworkPaths } from "../config/paths.js";
import { probeDocker } from "../docker/client.js";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import type { SandboxKind } from "../sandbox/backend.js";
import { findSandboxImage, readImageInputs } from "./inputs.js";

/**
 * The sandbox image, built locally when missing (with progress in the log).
 * Apple's backend is driven here through an emulator that shares the Docker
 * engine's image store; see docs/apple-container.md for a real Apple host.
 */
export async function ensureImage(kind: SandboxKind, log: Logger): Promise<string> {
  const paths = openworkPaths();
  log.info("checking the sandbox image");
  const probe = await probeDocker(3000);
  if (!probe.ok) {
    // Only reachable for Apple's backend: the Docker backend was probed before.
    throw new OpenworkError(
      `--sandbox ${kind} needs the sandbox image, which openwork builds with a Docker engine, and none answers (${probe.reason})`,
      {
        code: "image_missing",
        hint: "pass --image REF naming an image Apple's container has (e.g. built from images/sandbox with `container build`), or start a Docker engine once",
      },
    );
  }
  // The common case, an image with the current inputs, needs no building code (tar, the build) at all.
  const inputs = await readImageInputs();
  if (await findSandboxImage(probe.docker, inputs)) return inputs.tag;
  const { ensureSandboxImage } = await import("./build.js");
  const image = await ensureSandboxImage({
    docker: probe.docker,
    log,
    workDir: paths.cache,
    lockDir: paths.locks,
    inputs,
  });
  if (!image.reused) log.info({ tag: image.tag }, "sandbox image ready");
  return image.tag;
}

/** The sandbox image a start would use, and whether it would have to be built first. */
export async function plannedImage(): Promise<string> {
  const inputs = await readImageInputs();
  const probe = await probeDocker(3000);
  const found = probe.ok ? await findSandboxImage(probe.docker, inputs) : undefined;
  return found ? inputs.tag : `${inputs.tag} (to be built)`;
}
