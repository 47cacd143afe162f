import { existsSync, statSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import tarFs from "tar-fs";
import { SANDBOX_PATHS } from "../contract/layout.js";
import { statusCode } from "../docker/client.js";
import { errorMessage, OpenworkError, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { DockerBackend } from "../sandbox/docker/docker-backend.js";
import { backendOf } from "./reconcile.js";
import type { RunRegistry } from "./registry.js";
import { findRun } from "./select.js";

/** One side of `openwork cp`: a local path, or RUN:/workspace/… in a run's sandbox. */
export type CopyEnd = { kind: "local"; path: string } | { kind: "run"; run: string; path: string };

/** `RUN:/workspace/PATH` (a run id or a unique prefix of one), else a local path — as `docker cp` reads them. */
export function parseCopyEnd(text: string): CopyEnd {
  const colon = text.indexOf(":");
  // A Windows drive (C:\…) or a path with a colon after a slash is local.
  if (colon > 1 && !text.slice(0, colon).includes("/") && !text.slice(0, colon).includes("\\")) {
    const inside = path.posix.normalize(text.slice(colon + 1));
    const root = SANDBOX_PATHS.workspace;
    if (inside !== root && !inside.startsWith(`${root}/`))
      throw new UsageError(
        `${text}: openwork cp moves files of the workspace, so the path in the run starts with ${root}/`,
        `e.g. ${text.slice(0, colon)}:${root}/src`,
      );
    return { kind: "run", run: text.slice(0, colon), path: inside };
  }
  return { kind: "local", path: path.resolve(text) };
}

export interface CopyReport {
  runId: string;
  direction: "from-run" | "to-run";
  files: number;
  bytes: number;
  /** links in the sandbox's copy that were not recreated here (a link could point anywhere on this machine) */
  skippedLinks: number;
}

/**
 * `openwork cp`: files in and out of a run's workspace through the Engine API
 * (`GET`/`PUT /containers/{id}/archive`), so it works on any engine, a remote
 * one included, like `docker cp`. What comes out of a sandbox is treated as
 * hostile: no entry may land outside the destination, and links are not
 * recreated (counted in `skippedLinks`) — a link followed by a later entry is
 * how a tar writes outside its directory. What goes in belongs to the
 * sandbox's user.
 */
export async function copyFiles(options: {
  registry: RunRegistry;
  log: Logger;
  from: CopyEnd;
  to: CopyEnd;
}): Promise<CopyReport> {
  const { from, to } = options;
  if ((from.kind === "run") === (to.kind === "run"))
    throw new UsageError(
      "openwork cp copies between a run and this machine: exactly one side is RUN:/workspace/…",
    );
  const inRun = (from.kind === "run" ? from : to) as Extract<CopyEnd, { kind: "run" }>;
  const record = await findRun(options.registry, options.log, { run: inRun.run });
  if (record.sandbox === "none")
    throw new UsageError(
      `run ${record.runId} runs on this machine: its workspace is ${record.workspace}; copy with cp`,
    );
  const backend = backendOf(record);
  if (!(backend instanceof DockerBackend) || !record.handle)
    throw new OpenworkError(
      `openwork cp reaches a sandbox through the Docker Engine API, and run ${record.runId} runs on ${record.sandbox}`,
      {
        code: "cp_unsupported",
        hint:
          record.sandbox === "swarm"
            ? "a Swarm task's container is on its node's engine: docker cp there, or use a workspace of the node's host (engine:/path)"
            : "use the workspace directory itself",
      },
    );
  const container = backend.docker.getContainer(record.handle.id);
  const info = await container.inspect().catch((error: unknown) => {
    throw new OpenworkError(`the sandbox of run ${record.runId} is gone: ${errorMessage(error)}`, {
      code: "cp_unavailable",
    });
  });
  if (from.kind === "run" && to.kind === "local") return fromRun(container, record.runId, from.path, to.path);
  const [uid, gid] = (info.Config.User || "1000:1000").split(":").map(Number) as [number, number];
  return toRun(container, record.runId, (from as { path: string }).path, inRun.path, {
    uid,
    gid: gid ?? uid,
  });
}

async function fromRun(
  container: import("dockerode").Container,
  runId: string,
  inside: string,
  local: string,
): Promise<CopyReport> {
  let archive: NodeJS.ReadableStream;
  try {
    archive = (await container.getArchive({ path: inside })) as NodeJS.ReadableStream;
  } catch (error) {
    const code = statusCode(error);
    throw new OpenworkError(
      code === 404
        ? `${runId}:${inside} does not exist`
        : `reading ${runId}:${inside} failed: ${errorMessage(error)}`,
      { code: code === 404 ? "cp_not_found" : "cp_failed", ...(code === 404 ? { exitCode: 1 } : {}) },
    );
  }
  // As docker cp: into an existing directory under its own name, else to that name.
  const intoDir = existsSync(local) && statSync(local).isDirectory();
  const base = path.posix.basename(inside);
  const target = intoDir ? local : path.dirname(local);
  const rename = intoDir ? base : path.basename(local);
  await mkdir(target, { recursive: true });
  const report: CopyReport = { runId, direction: "from-run", files: 0, bytes: 0, skippedLinks: 0 };
  const extract = tarFs.extract(target, {
    ignore: (_name, header) => {
      if (header?.type === "symlink" || header?.type === "link") {
        report.skippedLinks += 1;
        return true;
      }
      return header?.type !== "file" && header?.type !== "directory";
    },
    map: (header) => {
      const parts = header.name.split("/").filter((part) => part !== "" && part !== ".");
      if (parts.includes(".."))
        throw new OpenworkError(`the sandbox sent an entry outside ${inside}: ${header.name}`, {
          code: "cp_hostile",
        });
      parts[0] = rename;
      header.name = parts.join("/");
      if (header.type === "file") {
        report.files += 1;
        report.bytes += header.size ?? 0;
      }
      // Ours now: the sandbox's uid means nothing here, and no mode bit beyond rwx is kept.
      header.mode = (header.mode ?? 0o644) & 0o777;
      return header;
    },
    // Ours: the sandbox's uid means nothing on this machine (tar-fs would give root's copies to it;
    // `chown` is in tar-fs, not in its typings).
    ...({ chown: false } as object),
  });
  await pipeline(archive, extract);
  return report;
}

async function toRun(
  container: import("dockerode").Container,
  runId: string,
  local: string,
  inside: string,
  owner: { uid: number; gid: number },
): Promise<CopyReport> {
  if (!existsSync(local)) throw new UsageError(`${local} does not exist`);
  const isDir = statSync(local).isDirectory();
  // Into an existing directory of the run under the local name, else to the path named.
  const existing = await container.infoArchive({ path: inside }).then(
    (response: unknown) => response,
    () => undefined,
  );
  const stat = existing ? decodeStat(existing) : undefined;
  const intoDir = stat?.isDir === true;
  const parent = intoDir ? inside : path.posix.dirname(inside);
  const name = intoDir ? path.basename(local) : path.posix.basename(inside);
  const report: CopyReport = { runId, direction: "to-run", files: 0, bytes: 0, skippedLinks: 0 };
  const pack = tarFs.pack(isDir ? local : path.dirname(local), {
    ...(isDir ? {} : { entries: [path.basename(local)] }),
    map: (header) => {
      header.name = isDir ? (header.name === "." ? name : `${name}/${header.name}`) : name;
      header.uid = owner.uid;
      header.gid = owner.gid;
      if (header.type === "file") {
        report.files += 1;
        report.bytes += header.size ?? 0;
      }
      return header;
    },
  }) as unknown as NodeJS.ReadableStream;
  try {
    await container.putArchive(pack, { path: parent });
  } catch (error) {
    throw new OpenworkError(`writing ${runId}:${inside} failed: ${errorMessage(error)}`, {
      code: "cp_failed",
    });
  }
  return report;
}

/** The engine's X-Docker-Container-Path-Stat header (base64 JSON; mode with Go's directory bit). */
function decodeStat(response: unknown): { isDir: boolean } | undefined {
  const header = (response as { headers?: Record<string, string> }).headers?.["x-docker-container-path-stat"];
  if (!header) return undefined;
  const parsed = JSON.parse(Buffer.from(header, "base64").toString("utf8")) as { mode: number };
  return { isDir: (parsed.mode & 0x80000000) !== 0 };
}
