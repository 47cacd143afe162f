import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type Docker from "dockerode";
import tarFs from "tar-fs";
import { ENTRYPOINT_FILE, RUNTIME_JSON, SANDBOX_PATHS } from "../contract/layout.js";
import { type DockerProgressEvent, followProgress } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { BAKED_USER } from "../sandbox/user.js";
import {
  BAKE_FORMAT,
  BAKED_NODE,
  CHECKSUMS_FILE,
  LABEL_BAKE_FORMAT,
  LABEL_MANIFEST_DIGEST,
  LABEL_RUNTIME_ID,
  LABEL_SANDBOX_BASE,
  RUNTIME_REPO,
} from "./bake-names.js";
import { LABEL_IMAGE } from "./inputs.js";

export { BAKED_NODE, LABEL_MANIFEST_DIGEST, LABEL_RUNTIME_ID, RUNTIME_REPO };

export interface BakedImage {
  /** openwork-runtime:<runtimeId>-<entrypoint digest> */
  tag: string;
  id: string;
  runtimeId: string;
  manifestDigest: string;
  /** an image with these labels was there already */
  reused: boolean;
}

/**
 * The digest a baked image is labelled with: the manifest it was resolved from, as JSON, without
 * when it was generated (the bundled manifest is generated on each load; its content is what counts).
 */
export function manifestDigest(manifest: object): string {
  const { generatedAt: _when, ...content } = manifest as { generatedAt?: unknown };
  return `sha256:${createHash("sha256").update(JSON.stringify(content)).digest("hex")}`;
}

/**
 * The runtime image a cluster runs (Swarm here; Kubernetes on paper,
 * docs/kubernetes.md): the sandbox image with one verified runtime baked in at
 * /runtimes/<id>, its entrypoint, and a SHA256SUMS that the image's command
 * checks before it runs anything — a node cannot be handed files we did not
 * verify, and a tampered layer is refused at start. /persist and /workspace
 * belong to the runtime's user, so a new volume mounted there is theirs.
 * Labelled with the runtime id and the manifest digest; reused while both
 * (and the entrypoint) are unchanged.
 */
export async function bakeRuntimeImage(options: {
  docker: Docker;
  sandboxImage: string;
  runtimeDir: string;
  runtimeId: string;
  manifestDigest: string;
  entrypoint: string;
  log: Logger;
}): Promise<BakedImage> {
  const { docker, runtimeId, log } = options;
  const entrypointDigest = createHash("sha256").update(options.entrypoint).digest("hex").slice(0, 12);
  const tag = `${RUNTIME_REPO}:${runtimeId}-${entrypointDigest}`;
  const existing = await docker
    .getImage(tag)
    .inspect()
    .catch(() => undefined);
  const labels = existing?.Config?.Labels ?? {};
  if (
    existing &&
    labels[LABEL_BAKE_FORMAT] === BAKE_FORMAT &&
    labels[LABEL_RUNTIME_ID] === runtimeId &&
    labels[LABEL_MANIFEST_DIGEST] === options.manifestDigest
  )
    return { tag, id: existing.Id, runtimeId, manifestDigest: options.manifestDigest, reused: true };

  const runtimeJson = JSON.parse(await readFile(path.join(options.runtimeDir, RUNTIME_JSON), "utf8")) as {
    sidecars: Record<string, { file: string; sha256: string }>;
  };
  const sums = Object.values(runtimeJson.sidecars)
    .map((sidecar) => `${sidecar.sha256}  ${sidecar.file}\n`)
    .join("");
  const at = `${SANDBOX_PATHS.runtimes}/${runtimeId}`;
  const { uid, gid } = BAKED_USER;
  const dockerfile = [
    "ARG BASE",
    // A Dockerfile's own ${BASE}, not a template: the build argument names the sandbox image.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: Dockerfile syntax
    "FROM ${BASE}",
    `COPY runtime/ ${at}/`,
    // Checked once as built (what was copied is what was verified) and at every start (what runs is it).
    `RUN cd ${at} && sha256sum -c --quiet ${CHECKSUMS_FILE} && ln -s ${at}/node ${BAKED_NODE} && mkdir -p ${SANDBOX_PATHS.persist} ${SANDBOX_PATHS.workspace} && chown ${uid}:${gid} ${SANDBOX_PATHS.persist} ${SANDBOX_PATHS.workspace} && chmod 0700 ${SANDBOX_PATHS.persist}`,
    `USER ${uid}:${gid}`,
    `WORKDIR ${SANDBOX_PATHS.persist}`,
    `CMD ["sh", "-c", "cd ${at} && sha256sum -c --quiet ${CHECKSUMS_FILE} && exec sh ${at}/${ENTRYPOINT_FILE}"]`,
    "",
  ].join("\n");
  const context = await mkdtemp(path.join(os.tmpdir(), "openwork-bake-"));
  try {
    await writeFile(path.join(context, "Dockerfile"), dockerfile);
    log.info({ tag }, "baking the runtime into an image");
    const pack = tarFs.pack(context, {
      entries: ["Dockerfile"],
      finalize: false,
      finish: (pack) => {
        // The runtime directory goes in under runtime/, with the entrypoint and the checksums beside it.
        const runtime = tarFs.pack(options.runtimeDir, {
          pack,
          ignore: (name) =>
            path.basename(name) === ENTRYPOINT_FILE || name.includes(`${path.sep}entrypoints`),
          map: (header) => {
            header.name = header.name === "." ? "runtime" : `runtime/${header.name}`;
            // Root's and read-only, as in a runtimes volume (set here: a chmod layer would copy every file).
            header.uid = 0;
            header.gid = 0;
            header.mode = header.type === "directory" ? 0o755 : (header.mode ?? 0o644) & 0o555;
            return header;
          },
          finalize: false,
          finish: (all) => {
            all.entry({ name: `runtime/${ENTRYPOINT_FILE}`, mode: 0o555 }, options.entrypoint);
            all.entry({ name: `runtime/${CHECKSUMS_FILE}`, mode: 0o444 }, sums);
            all.finalize();
          },
        });
        void runtime;
      },
    }) as unknown as NodeJS.ReadableStream;
    const stream = await docker.buildImage(pack, {
      t: tag,
      buildargs: { BASE: options.sandboxImage },
      labels: {
        [LABEL_IMAGE]: "runtime",
        [LABEL_RUNTIME_ID]: runtimeId,
        [LABEL_MANIFEST_DIGEST]: options.manifestDigest,
        [LABEL_BAKE_FORMAT]: BAKE_FORMAT,
        [LABEL_SANDBOX_BASE]: options.sandboxImage,
      },
      rm: true,
      forcerm: true,
      pull: false,
    } as unknown as Docker.ImageBuildOptions);
    await followProgress(docker, stream, (event: DockerProgressEvent) => {
      const text = (event.stream ?? event.status ?? "").trim();
      if (text) log.debug(text);
    });
  } catch (error) {
    throw new OpenworkError(`baking runtime ${runtimeId} into ${tag} failed: ${errorMessage(error)}`, {
      code: "image_build",
      cause: error,
    });
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  const built = await docker.getImage(tag).inspect();
  log.info({ tag, id: built.Id }, "runtime image baked");
  return { tag, id: built.Id, runtimeId, manifestDigest: options.manifestDigest, reused: false };
}

/**
 * A baked image is what it says it is: labels naming the runtime id and manifest digest this
 * start resolved (a tag that moved, or an image made by hand, is refused before a node runs it).
 */
export function checkBakedLabels(
  labels: Record<string, string> | undefined,
  expected: { runtimeId: string; manifestDigest: string },
  ref: string,
): void {
  const runtime = labels?.[LABEL_RUNTIME_ID];
  const digest = labels?.[LABEL_MANIFEST_DIGEST];
  if (runtime !== expected.runtimeId || digest !== expected.manifestDigest)
    throw new OpenworkError(
      `the image ${ref} is labelled runtime ${runtime ?? "none"} from manifest ${digest ?? "none"}, not runtime ${expected.runtimeId} from ${expected.manifestDigest}`,
      { code: "image_mismatch", hint: "bake it again with `openwork image bake`" },
    );
}
