import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { execa } from "execa";
import tarFs from "tar-fs";
import { followProgress } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { lineRelay } from "../logging/logger.js";
import { DEBIAN_SUITE, type ImageInputs, LABEL_IMAGE, LABEL_INPUTS } from "./inputs.js";

const DEBIAN_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };

/**
 * The Debian mirror this host already uses (apt's own sources, deb822 or
 * one-line form), so the root file system comes from where packages already
 * come from. OPENWORK_DEBIAN_MIRROR overrides; with none found, debootstrap
 * uses its built-in default.
 */
export function hostDebianMirror(
  env: NodeJS.ProcessEnv = process.env,
  aptDir = "/etc/apt",
): string | undefined {
  if (env.OPENWORK_DEBIAN_MIRROR) return env.OPENWORK_DEBIAN_MIRROR;
  const files: string[] = [];
  if (existsSync(path.join(aptDir, "sources.list"))) files.push(path.join(aptDir, "sources.list"));
  const dir = path.join(aptDir, "sources.list.d");
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith(".list") || name.endsWith(".sources")) files.push(path.join(dir, name));
    }
  }
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const uri of mirrorCandidates(text)) {
      if (!/security/.test(uri) && /\/debian\/?$/.test(uri)) return uri.replace(/\/$/, "");
    }
  }
  return undefined;
}

function mirrorCandidates(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line.startsWith("#")) continue;
    const deb822 = /^URIs:\s*(.+)$/i.exec(line);
    if (deb822?.[1]) out.push(...deb822[1].split(/\s+/));
    const oneLine = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
    if (oneLine?.[1]) out.push(oneLine[1]);
  }
  return out;
}

export interface RootfsOptions {
  docker: Docker;
  inputs: ImageInputs;
  workDir: string;
  onProgress: (line: string) => void;
  arch?: string;
}

/**
 * Build a minimal Debian root file system with debootstrap and import it into
 * the engine as an image: the way to a base image where no registry answers.
 */
export async function buildRootfsImage(options: RootfsOptions): Promise<string> {
  const { docker, inputs, onProgress } = options;
  const arch = DEBIAN_ARCH[options.arch ?? process.arch];
  if (!arch)
    throw new OpenworkError(`no Debian architecture for ${options.arch ?? process.arch}`, {
      code: "image_build",
    });
  if (process.platform !== "linux") {
    throw new OpenworkError("an offline image build needs debootstrap, which runs only on Linux", {
      code: "image_build",
      hint: "build where a registry answers (without --offline), or on a Linux host",
    });
  }
  if (process.getuid?.() !== 0) {
    throw new OpenworkError("debootstrap must run as root to build the offline root file system", {
      code: "image_build",
      hint: "run `sudo openwork image build --offline` once; later starts reuse the image",
    });
  }
  const which = await execa(
    "sh",
    ["-c", "command -v debootstrap || test -x /usr/sbin/debootstrap && echo /usr/sbin/debootstrap"],
    {
      reject: false,
    },
  );
  const debootstrap = String(which.stdout).trim().split("\n")[0];
  if (!debootstrap) {
    throw new OpenworkError(
      "debootstrap is not installed, and no registry answers for the public base image",
      {
        code: "image_build",
        hint: "install it (apt-get install debootstrap) and run `openwork image build --offline` again",
      },
    );
  }
  const target = path.join(options.workDir, `rootfs-${inputs.rootfsHash.slice(0, 16)}-${process.pid}`);
  await rm(target, { recursive: true, force: true });
  await mkdir(options.workDir, { recursive: true });
  const mirror = hostDebianMirror();
  const args = [
    "--variant=minbase",
    `--arch=${arch}`,
    `--include=${inputs.packages.join(",")}`,
    DEBIAN_SUITE,
    target,
    ...(mirror ? [mirror] : []),
  ];
  onProgress(`debootstrap ${args.join(" ")}`);
  try {
    const child = execa(debootstrap, args, { all: true, reject: false, stdin: "ignore" });
    child.all?.pipe(lineRelay((line) => onProgress(`debootstrap: ${line}`)));
    const result = await child;
    if (result.exitCode !== 0) {
      const tail = String(result.all ?? "")
        .split("\n")
        .slice(-5)
        .join(" | ");
      throw new OpenworkError(`debootstrap failed with exit code ${result.exitCode}: ${tail}`, {
        code: "image_build",
        hint: mirror
          ? `check that ${mirror} answers, or set OPENWORK_DEBIAN_MIRROR`
          : "set OPENWORK_DEBIAN_MIRROR to a Debian mirror",
      });
    }
    // The engine provides /dev, /proc and /sys at run time; device nodes cannot be archived anyway.
    for (const dir of ["dev", "proc", "sys"]) {
      await rm(path.join(target, dir), { recursive: true, force: true });
      await mkdir(path.join(target, dir));
    }
    await rm(path.join(target, "var", "cache", "apt", "archives"), { recursive: true, force: true });
    await rm(path.join(target, "var", "lib", "apt", "lists"), { recursive: true, force: true });
    onProgress(`importing the root file system as ${inputs.rootfsTag}`);
    const [repo, tag] = inputs.rootfsTag.split(":") as [string, string];
    const archive = tarFs.pack(target) as unknown as NodeJS.ReadableStream;
    const stream = (await docker.importImage(archive, {
      repo,
      tag,
      changes: [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        `LABEL ${LABEL_IMAGE}=rootfs ${LABEL_INPUTS}=${inputs.rootfsHash}`,
        'CMD ["sh"]',
      ],
    } as unknown as Parameters<Docker["importImage"]>[1])) as unknown as NodeJS.ReadableStream;
    await followProgress(docker, stream);
    return inputs.rootfsTag;
  } catch (error) {
    if (error instanceof OpenworkError) throw error;
    throw new OpenworkError(`importing the root file system failed: ${errorMessage(error)}`, {
      code: "image_build",
      cause: error,
    });
  } finally {
    await rm(target, { recursive: true, force: true });
  }
}
