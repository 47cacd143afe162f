import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { packageRoot } from "../config/package-root.js";

export const IMAGE_REPO = "openwork-sandbox";
export const ROOTFS_REPO = "openwork-rootfs";
export const PUBLIC_BASE = "debian:bookworm-slim";
export const DEBIAN_SUITE = "bookworm";

export const LABEL_IMAGE = "openwork.image";
export const LABEL_INPUTS = "openwork.image.inputs";
export const LABEL_BASE = "openwork.image.base";

export interface ImageInputs {
  /** directory of the image definition (the build context) */
  contextDir: string;
  /** sha256 over every file of the context: equal hash, equal image */
  hash: string;
  /** sha256 over what the debootstrap root file system depends on */
  rootfsHash: string;
  packages: string[];
  tag: string;
  rootfsTag: string;
}

export function sandboxContextDir(): string {
  return path.join(packageRoot(), "images", "sandbox");
}

export async function readImageInputs(
  contextDir = sandboxContextDir(),
  arch = process.arch,
): Promise<ImageInputs> {
  const files = (await readdir(contextDir)).sort();
  const hash = createHash("sha256").update(`suite=${DEBIAN_SUITE}\narch=${arch}\n`);
  for (const file of files) {
    hash.update(`file=${file}\n`).update(await readFile(path.join(contextDir, file)));
  }
  const packages = (await readFile(path.join(contextDir, "packages.txt"), "utf8"))
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith("#"));
  const rootfsHash = createHash("sha256")
    .update(`suite=${DEBIAN_SUITE}\narch=${arch}\nvariant=minbase\npackages=${packages.join(",")}\n`)
    .digest("hex");
  const digest = hash.digest("hex");
  return {
    contextDir,
    hash: digest,
    rootfsHash,
    packages,
    tag: `${IMAGE_REPO}:${digest.slice(0, 16)}`,
    rootfsTag: `${ROOTFS_REPO}:${rootfsHash.slice(0, 16)}`,
  };
}

/** The sandbox image with the current inputs, if the engine already has one. */
export async function findSandboxImage(
  docker: Docker,
  inputs: ImageInputs,
): Promise<Docker.ImageInfo | undefined> {
  const images = await docker.listImages({ filters: { label: [`${LABEL_INPUTS}=${inputs.hash}`] } });
  return images.find((image) => image.Labels?.[LABEL_IMAGE] === "sandbox");
}
