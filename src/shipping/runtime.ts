import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import type Docker from "dockerode";
import tarFs from "tar-fs";
import tarStream from "tar-stream";
import { openworkPaths } from "../config/paths.js";
import { ENTRYPOINT_FILE, RUNTIME_JSON, SANDBOX_PATHS } from "../contract/layout.js";
import { createProgress } from "../download/progress.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { withLock } from "../locks/lock.js";
import type { Logger } from "../logging/logger.js";
import { pathExists, withArchiveHelper } from "./helper.js";

export interface ShippedRuntime {
  /** sidecar bytes sent this time (0 when the engine already had this runtime) */
  shippedBytes: number;
  /** the entrypoint as the sandbox sees it (/runtimes/<id>/entrypoints/<digest>.sh); none for an upgrade's runtime */
  entrypoint: string | undefined;
}

const digest = (data: Buffer | string) => createHash("sha256").update(data).digest("hex").slice(0, 16);

/** Where a shipped entrypoint lives in the runtimes volume: content-addressed, beside its runtime. */
function shippedEntrypointName(runtimeId: string, text: Buffer | string): string {
  return `${runtimeId}/entrypoints/${digest(text)}.sh`;
}

/** The entrypoint as the sandbox will see it, known before anything is shipped (the container is created meanwhile). */
export function shippedEntrypoint(runtimeId: string, text: Buffer | string): string {
  return `${SANDBOX_PATHS.runtimes}/${shippedEntrypointName(runtimeId, text)}`;
}

/**
 * Copy a staged, verified runtime into an engine's runtimes volume, at
 * <runtimeId>/ (where the server looks for it, as in /runtimes at home). The
 * volume is content-addressed: a runtime is sent only when the engine lacks it
 * — told by a marker written after its files, named by the digest of its
 * runtime.json (which holds every sidecar's sha256), so a half-sent copy is
 * never taken for a whole one. The entrypoint, which differs per start, goes
 * beside it under its own digest. One ship per engine and runtime at a time.
 */
export async function shipRuntime(options: {
  docker: Docker;
  engine: string;
  image: string;
  runtimesVolume: string;
  runtimeDir: string;
  runtimeId: string;
  labels: Record<string, string>;
  log: Logger;
}): Promise<ShippedRuntime> {
  const { docker, runtimeId, log } = options;
  const runtimeJson = await readFile(path.join(options.runtimeDir, RUNTIME_JSON));
  const marker = `${runtimeId}/.shipped-${digest(runtimeJson)}`;
  // A runtime staged for an upgrade has no entrypoint (the running server starts its components).
  const entrypointText = await readFile(path.join(options.runtimeDir, ENTRYPOINT_FILE)).catch(
    () => undefined,
  );
  const lockFile = path.join(openworkPaths().locks, "ship", `${digest(options.engine)}-${runtimeId}.lock`);
  return withLock(
    lockFile,
    () =>
      withArchiveHelper(
        docker,
        {
          image: options.image,
          labels: options.labels,
          mounts: [{ Type: "volume", Source: options.runtimesVolume, Target: "/v" }],
        },
        async (helper) => {
          let shippedBytes = 0;
          if (!(await pathExists(helper, `/v/${marker}`))) {
            shippedBytes = await sendRuntime(helper, options.runtimeDir, runtimeId, log);
            await helper.putArchive(asStream(single(marker, runtimeJson, 0o444)), {
              path: "/v",
            });
            log.info({ runtimeId, bytes: shippedBytes }, "runtime shipped to the engine");
          } else log.info({ runtimeId }, "the engine already has this runtime: nothing shipped");
          if (!entrypointText) return { shippedBytes, entrypoint: undefined };
          const entrypointName = shippedEntrypointName(runtimeId, entrypointText);
          if (!(await pathExists(helper, `/v/${entrypointName}`)))
            await helper.putArchive(asStream(single(entrypointName, entrypointText, 0o555)), { path: "/v" });
          return { shippedBytes, entrypoint: shippedEntrypoint(runtimeId, entrypointText) };
        },
      ),
    { staleMs: 60_000 },
  );
}

/** The runtime's files (not its per-start entrypoint), root's and read-only, under <runtimeId>/. */
async function sendRuntime(
  helper: Docker.Container,
  dir: string,
  runtimeId: string,
  log: Logger,
): Promise<number> {
  const json = JSON.parse(await readFile(path.join(dir, RUNTIME_JSON), "utf8")) as {
    sidecars?: Record<string, { size?: number }>;
  };
  const total = Object.values(json.sidecars ?? {}).reduce((sum, sidecar) => sum + (sidecar.size ?? 0), 0);
  const progress = createProgress({ label: `shipping runtime ${runtimeId}`, total, log });
  let bytes = 0;
  const pack = tarFs.pack(dir, {
    ignore: (name) => path.basename(name) === ENTRYPOINT_FILE || name.includes(`${path.sep}entrypoints`),
    map: (header) => {
      header.name = header.name === "." ? runtimeId : `${runtimeId}/${header.name}`;
      header.uid = 0;
      header.gid = 0;
      header.mode = header.type === "directory" ? 0o755 : (header.mode ?? 0o644) & 0o555;
      if (header.type === "file") bytes += header.size ?? 0;
      return header;
    },
  });
  try {
    await helper.putArchive(pack.pipe(counting(progress.advance)), { path: "/v" });
  } catch (error) {
    throw new OpenworkError(`shipping runtime ${runtimeId} to the engine failed: ${errorMessage(error)}`, {
      code: "ship_failed",
      cause: error,
    });
  } finally {
    progress.stop();
  }
  return bytes;
}

/** A pass-through that tells `advance` of every chunk (listening for `data` would drain the stream instead). */
export function counting(advance: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      advance(chunk.length);
      done(null, chunk);
    },
  });
}

/** A tar of one file (and the directories above it), root's. */
export function single(name: string, content: Buffer, mode: number): tarStream.Pack {
  const pack = tarStream.pack();
  const parts = name.split("/");
  for (let i = 1; i < parts.length; i++)
    pack.entry({ name: `${parts.slice(0, i).join("/")}/`, type: "directory", mode: 0o755, uid: 0, gid: 0 });
  pack.entry({ name, mode, uid: 0, gid: 0 }, content);
  pack.finalize();
  return pack;
}

/** tar-stream's packs are streamx streams: they pipe like Node's, which is all the archive API does with them. */
export function asStream(pack: tarStream.Pack): NodeJS.ReadableStream {
  return pack as unknown as NodeJS.ReadableStream;
}
