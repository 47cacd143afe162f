import path from "node:path";
import type Docker from "dockerode";
import tarFs from "tar-fs";
import { type DockerProgressEvent, followProgress, withTimeout } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { withLock } from "../locks/lock.js";
import type { Logger } from "../logging/logger.js";
import {
  findSandboxImage,
  type ImageInputs,
  LABEL_BASE,
  LABEL_IMAGE,
  LABEL_INPUTS,
  PUBLIC_BASE,
  readImageInputs,
} from "./inputs.js";
import { buildRootfsImage } from "./rootfs.js";

export type BaseMode = "auto" | "registry" | "rootfs";

export interface EnsureImageOptions {
  docker: Docker;
  log: Logger;
  /** rootfs forces the offline path; registry refuses to fall back; auto tries the registry then the rootfs */
  base?: BaseMode;
  /** build even when an image with the same inputs exists */
  force?: boolean;
  /** where locks and temporary root file systems go */
  workDir: string;
  lockDir: string;
  inputs?: ImageInputs;
  /** how long a pull of the public base may take before the registry counts as unreachable */
  pullTimeoutMs?: number;
}

export interface ImageResult {
  tag: string;
  id: string;
  inputsHash: string;
  reused: boolean;
  base: "registry" | "rootfs";
  baseImage: string;
  /** why the base was chosen (e.g. the registry's error) */
  note?: string | undefined;
  durationMs: number;
}

/**
 * Make sure the sandbox image for the current inputs exists: reuse it when its
 * inputs hash matches, else build it — from the public base where a registry
 * answers, else from a debootstrap root file system. One builder at a time
 * across processes; the others wait and then reuse its result.
 */
export async function ensureSandboxImage(options: EnsureImageOptions): Promise<ImageResult> {
  const started = Date.now();
  const { docker, log } = options;
  const inputs = options.inputs ?? (await readImageInputs());
  const reuse = async (): Promise<ImageResult | undefined> => {
    if (options.force) return undefined;
    const found = await findSandboxImage(docker, inputs);
    if (!found) return undefined;
    const base = found.Labels?.[LABEL_BASE] === "rootfs" ? "rootfs" : "registry";
    return {
      tag: inputs.tag,
      id: found.Id,
      inputsHash: inputs.hash,
      reused: true,
      base,
      baseImage: found.Labels?.["openwork.image.base-ref"] ?? "",
      durationMs: Date.now() - started,
    };
  };
  const existing = await reuse();
  if (existing) return existing;
  return withLock(
    path.join(options.lockDir, `image-${inputs.hash.slice(0, 16)}`),
    async () => {
      const again = await reuse();
      if (again) return again;
      log.info({ tag: inputs.tag }, "building the sandbox image (first use, or its definition changed)");
      const { base, baseImage, note } = await prepareBase(options, inputs);
      await buildFromContext(docker, inputs, baseImage, base, (line) => log.info(`image build: ${line}`));
      const image = await docker.getImage(inputs.tag).inspect();
      log.info(
        { tag: inputs.tag, seconds: ((Date.now() - started) / 1000).toFixed(1) },
        "sandbox image built",
      );
      return {
        tag: inputs.tag,
        id: image.Id,
        inputsHash: inputs.hash,
        reused: false,
        base,
        baseImage,
        note,
        durationMs: Date.now() - started,
      };
    },
    { onWait: () => log.info("another openwork process is building the sandbox image; waiting for it") },
  );
}

async function prepareBase(
  options: EnsureImageOptions,
  inputs: ImageInputs,
): Promise<{ base: "registry" | "rootfs"; baseImage: string; note?: string }> {
  const { docker, log } = options;
  const mode = options.base ?? "auto";
  if (mode !== "rootfs") {
    const pulled = await ensurePublicBase(docker, log, options.pullTimeoutMs ?? 60_000);
    if (pulled.ok) return { base: "registry", baseImage: PUBLIC_BASE };
    if (mode === "registry") {
      throw new OpenworkError(`cannot get the public base image ${PUBLIC_BASE}: ${pulled.reason}`, {
        code: "image_build",
        hint: "build offline instead: openwork image build --offline",
      });
    }
    log.warn(
      `no registry answers for ${PUBLIC_BASE} (${pulled.reason}); building the base from debootstrap instead`,
    );
    const baseImage = await ensureRootfs(options, inputs);
    return { base: "rootfs", baseImage, note: `registry unreachable: ${pulled.reason}` };
  }
  return { base: "rootfs", baseImage: await ensureRootfs(options, inputs), note: "offline build requested" };
}

async function ensureRootfs(options: EnsureImageOptions, inputs: ImageInputs): Promise<string> {
  const images = await options.docker.listImages({
    filters: { label: [`${LABEL_INPUTS}=${inputs.rootfsHash}`] },
  });
  if (images.length > 0 && !options.force) {
    options.log.info(`reusing the root file system image ${inputs.rootfsTag}`);
    return inputs.rootfsTag;
  }
  return buildRootfsImage({
    docker: options.docker,
    inputs,
    workDir: options.workDir,
    onProgress: (line) => options.log.info(line),
  });
}

async function ensurePublicBase(
  docker: Docker,
  log: Logger,
  timeoutMs: number,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    await docker.getImage(PUBLIC_BASE).inspect();
    return { ok: true };
  } catch {
    // not present locally: try the registry
  }
  log.info(`pulling ${PUBLIC_BASE}`);
  try {
    const stream = await withTimeout(docker.pull(PUBLIC_BASE), timeoutMs, `no answer within ${timeoutMs} ms`);
    await withTimeout(
      followProgress(docker, stream),
      timeoutMs,
      `pull did not finish within ${timeoutMs} ms`,
    );
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: errorMessage(error).split("\n")[0] ?? "unknown error" };
  }
}

async function buildFromContext(
  docker: Docker,
  inputs: ImageInputs,
  baseImage: string,
  base: "registry" | "rootfs",
  onLine: (line: string) => void,
): Promise<void> {
  const context = tarFs.pack(inputs.contextDir) as unknown as NodeJS.ReadableStream;
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(context, {
      t: [inputs.tag, "openwork-sandbox:latest"],
      buildargs: { BASE: baseImage },
      labels: {
        [LABEL_IMAGE]: "sandbox",
        [LABEL_INPUTS]: inputs.hash,
        [LABEL_BASE]: base,
        "openwork.image.base-ref": baseImage,
      },
      rm: true,
      forcerm: true,
      pull: false,
    } as unknown as Docker.ImageBuildOptions);
  } catch (error) {
    throw new OpenworkError(`the engine refused the image build: ${errorMessage(error)}`, {
      code: "image_build",
      cause: error,
    });
  }
  try {
    await followProgress(docker, stream, (event: DockerProgressEvent) => {
      const text = (event.stream ?? event.status ?? "").trim();
      if (text) onLine(text);
    });
  } catch (error) {
    throw new OpenworkError(`building ${inputs.tag} failed: ${errorMessage(error)}`, {
      code: "image_build",
      hint: "see the build output above",
      cause: error,
    });
  }
}
