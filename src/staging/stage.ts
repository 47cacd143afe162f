import { mkdir, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import path from "node:path";
import { persistLayout } from "../contract/layout.js";
import { type RuntimeJson, runtimeJsonOf, serializeRuntimeJson } from "../contract/runtime.js";
import type { HttpOptions } from "../download/http.js";
import { errorMessage, systemErrorCode } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { withLock } from "../locks/lock.js";
import { type Logger, silentLogger } from "../logging/logger.js";
import { type Manifest, manifestEntry, sidecarsFor } from "../manifest/schema.js";
import { SIDECAR_NAMES, type SidecarName, STAGED_FILE } from "../sidecars/names.js";
import type { Target } from "../sidecars/platform.js";
import {
  type ResolvedSidecar,
  resolveSidecar,
  type SourcePolicy,
  type UsedSource,
} from "../sources/resolve.js";
import { linkOrCopy, syncDir, tempSibling } from "../store/link.js";
import { type BlobStore, openStore } from "../store/store.js";

export interface StageOptions {
  manifest: Manifest;
  target: Target;
  /**
   * The directory whose runtimes/ receives the runtime (<stagingRoot>/runtimes/<id>/): the
   * persisted directory on the host substrate; beside it for a sandbox, which sees it read-only.
   */
  stagingRoot: string;
  sources?: SourcePolicy | undefined;
  log?: Logger | undefined;
  store?: BlobStore | undefined;
  /** npm registry base URL (default: npm's configuration) */
  registry?: string | undefined;
  http?: HttpOptions | undefined;
  /** stage only these sidecars (default: every sidecar the manifest has for the target, plus overrides) */
  only?: readonly SidecarName[] | undefined;
  /** what resolveRuntime gave for these same options, when the caller resolved first (to know the id early) */
  resolved?: Awaited<ReturnType<typeof resolveRuntime>> | undefined;
}

export interface StagedSidecar {
  path: string;
  sha256: string;
  size: number;
  version: string;
  source: UsedSource;
}

export interface StageResult {
  runtimeId: string;
  dir: string;
  sidecars: Partial<Record<SidecarName, StagedSidecar>>;
  /** sidecar bytes written anywhere (downloads and copies into the store, copies into the runtime): 0 when all was there */
  bytesWritten: number;
  bytesDownloaded: number;
  /** how each file got into the runtime directory: already there, a hard link, or a copy */
  placed: Partial<Record<SidecarName, "kept" | "link" | "copy">>;
}

/**
 * Resolve every sidecar of `manifest` for `target` into the store (verified)
 * and say what runtime.json they make — its id included — without staging
 * anything (what a start compares with the runtime already running).
 */
export async function resolveRuntime(
  options: Omit<StageOptions, "stagingRoot">,
): Promise<{ runtimeJson: RuntimeJson; resolved: ResolvedSidecar[] }> {
  const log = options.log ?? silentLogger();
  const store = options.store ?? openStore({ log });
  const policy = options.sources ?? {};
  const names = sidecarNames(options.manifest, options.target, policy, options.only);
  // Independent of each other: resolved (verified, fetched if missing) at the same time.
  const resolved: ResolvedSidecar[] = await Promise.all(
    names.map((name) =>
      resolveSidecar(name, options.target, manifestEntry(options.manifest, name, options.target), policy, {
        ...options.http,
        store,
        log,
        registry: options.registry,
      }),
    ),
  );
  const runtimeJson: RuntimeJson = runtimeJsonOf({
    target: options.target,
    runtimeVersion: options.manifest.runtimeVersion,
    sidecars: Object.fromEntries(
      resolved.map((r) => [
        r.name,
        { file: STAGED_FILE[r.name], sha256: r.sha256, size: r.size, version: r.version },
      ]),
    ),
  });
  return { runtimeJson, resolved };
}

/**
 * Resolve every sidecar of `manifest` for `target` into the store (verified),
 * then stage them into `<stagingRoot>/runtimes/<runtime-id>/` by hard link (a
 * copy across devices, logged). A file already staged with the right bytes is
 * kept, so staging the same manifest again writes 0 bytes. runtime.json is
 * written last, atomically: a runtime without it is incomplete.
 */
export async function stageRuntime(options: StageOptions): Promise<StageResult> {
  const log = options.log ?? silentLogger();
  const store = options.store ?? openStore({ log });
  const { runtimeJson, resolved } = options.resolved ?? (await resolveRuntime({ ...options, store, log }));
  const runtimeId = runtimeJson.runtimeId;
  const layout = persistLayout(path.resolve(options.stagingRoot));
  const dir = layout.runtimeDir(runtimeId);
  await mkdir(layout.runtimesDir, { recursive: true });
  return withLock(layout.stagingLock(runtimeId), async () => {
    await mkdir(dir, { recursive: true });
    const result: StageResult = {
      runtimeId,
      dir,
      sidecars: {},
      bytesWritten: resolved.reduce((sum, r) => sum + r.bytesWritten, 0),
      bytesDownloaded: resolved.reduce((sum, r) => sum + r.bytesDownloaded, 0),
      placed: {},
    };
    // Each file is placed (and hashed in its place) at the same time: reading one overlaps hashing another.
    const placements = await Promise.all(
      resolved.map((sidecar) => place(sidecar, path.join(dir, STAGED_FILE[sidecar.name]), store, log)),
    );
    for (const [index, sidecar] of resolved.entries()) {
      const dest = path.join(dir, STAGED_FILE[sidecar.name]);
      const placed = placements[index] as "kept" | "link" | "copy";
      if (placed === "copy") result.bytesWritten += sidecar.size;
      result.placed[sidecar.name] = placed;
      result.sidecars[sidecar.name] = {
        path: dest,
        sha256: sidecar.sha256,
        size: sidecar.size,
        version: sidecar.version,
        source: sidecar.source,
      };
    }
    await writeRuntimeJson(dir, runtimeJson);
    log.info(
      { runtimeId, dir, bytesWritten: result.bytesWritten, placed: result.placed },
      `staged runtime ${runtimeId} (${Object.values(result.placed).join(", ")}; ${result.bytesWritten} bytes written)`,
    );
    return result;
  });
}

function sidecarNames(
  manifest: Manifest,
  target: Target,
  policy: SourcePolicy,
  only: readonly SidecarName[] | undefined,
): SidecarName[] {
  const wanted = new Set<SidecarName>([
    ...sidecarsFor(manifest, target),
    ...(Object.keys(policy.external ?? {}) as SidecarName[]),
  ]);
  return SIDECAR_NAMES.filter((name) => wanted.has(name) && (!only || only.includes(name)));
}

/** Make `dest` hold the blob: keep it when it already does, else link (or copy) it in atomically. */
async function place(
  sidecar: ResolvedSidecar,
  dest: string,
  store: BlobStore,
  log: Logger,
): Promise<"kept" | "link" | "copy"> {
  try {
    const [destStat, blobStat] = await Promise.all([stat(dest), stat(sidecar.path)]);
    // Already a hard link to the blob, which resolveSidecar has just verified.
    if (destStat.dev === blobStat.dev && destStat.ino === blobStat.ino) return "kept";
    const current = await store.statCache.hash(dest);
    if (current.sha256 === sidecar.sha256 && current.size === sidecar.size) return "kept";
    log.warn(
      { file: dest, expected: sidecar.sha256, actual: current.sha256 },
      `staged ${dest} does not match its blob; replacing it`,
    );
  } catch (error) {
    if (systemErrorCode(error) !== "ENOENT") throw error;
  }
  const temp = tempSibling(path.dirname(dest), path.basename(dest));
  try {
    // The blob as resolveSidecar verified it, looked at again just before it is linked (see below).
    const blobBefore = await stat(sidecar.path);
    const blobTrusted = (await store.statCache.trusted(blobBefore)) === sidecar.sha256;
    const mode = await linkOrCopy(sidecar.path, temp);
    if (mode === "copy") {
      log.info(
        { blob: sidecar.path, file: dest },
        `${sidecar.name}: the runtime directory is on another device than the store; copied instead of hard-linked`,
      );
    }
    await rename(temp, dest);
    await syncDir(path.dirname(dest));
    // A hard link and its rename move the inode's ctime, which keys the stat cache, so the blob's trust
    // has to be carried over or the ~300 MB would be read again in every new workspace. It is carried
    // only when the blob was trusted just before the link and nothing but ctime moved since (same
    // inode, size and mtime): bytes changed in between would need a write plus a utimes reset within
    // these few milliseconds, by someone who can write the store, and so the stat cache beside it.
    // A copy, or anything else, is hashed in its final place; trust is recorded only for bytes read
    // then (nothing is recorded when the file changes while it is read). A file left wrong here is
    // replaced by the next staging and refused by verification meanwhile.
    if (mode === "link" && blobTrusted) {
      const placed = await stat(dest);
      if (
        placed.dev === blobBefore.dev &&
        placed.ino === blobBefore.ino &&
        placed.size === sidecar.size &&
        placed.mtimeMs === blobBefore.mtimeMs
      ) {
        await store.statCache.record(placed, sidecar.sha256);
        return mode;
      }
    }
    const placed = await store.statCache.hash(dest);
    if (placed.sha256 !== sidecar.sha256 || placed.size !== sidecar.size) {
      await store.statCache.forget(await stat(dest));
      throw new Error(
        `${dest} changed while it was staged (or was copied wrong): sha256 ${placed.sha256} (${placed.size} bytes), expected ${sidecar.sha256} (${sidecar.size} bytes)`,
      );
    }
    return mode;
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function writeRuntimeJson(dir: string, runtime: RuntimeJson): Promise<void> {
  const file = path.join(dir, "runtime.json");
  const text = serializeRuntimeJson(runtime);
  try {
    if ((await readFile(file, "utf8")) === text) {
      // unchanged: only mark it as the most recently staged (gcRuntimes keeps the most recent)
      const now = new Date();
      await utimes(file, now, now);
      return;
    }
  } catch (error) {
    if (systemErrorCode(error) !== "ENOENT") throw new Error(`cannot read ${file}: ${errorMessage(error)}`);
  }
  await writeFileAtomic(file, text, { mode: 0o644 });
  await syncDir(dir);
}
