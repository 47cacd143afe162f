import { constants, type Stats } from "node:fs";
import { chmod, copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { openworkPaths } from "../config/paths.js";
import { OpenworkError, systemErrorCode } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { withLock } from "../locks/lock.js";
import { type Logger, silentLogger } from "../logging/logger.js";
import { pidState } from "../processes/inspect.js";
import { syncDir, tempSibling } from "./link.js";
import { StatCache } from "./stat-cache.js";
import { VersionCache } from "./version-cache.js";

export interface StoreOptions {
  /** the store's root (default: openworkPaths().store) */
  dir?: string | undefined;
  /** where cross-process locks live (default: openworkPaths().locks) */
  locksDir?: string | undefined;
  log?: Logger | undefined;
}

export interface Expected {
  sha256?: string | null | undefined;
  size?: number | null | undefined;
}

export interface StoredBlob {
  path: string;
  sha256: string;
  size: number;
}

export interface IngestResult extends StoredBlob {
  /** bytes written to disk (0 when the blob was already in the store) */
  bytesWritten: number;
}

const SHA256 = /^[0-9a-f]{64}$/;

/**
 * Content-addressed blob store: `blobs/sha256/<hex>`, written only by rename
 * from `tmp/` after the bytes were checked, so a blob at its final path is
 * always complete. A blob is trusted while its stat is unchanged (StatCache),
 * else re-hashed; one that fails is moved to `quarantine/` and reported gone.
 */
export class BlobStore {
  readonly dir: string;
  readonly locksDir: string;
  readonly statCache: StatCache;
  readonly versions: VersionCache;
  private readonly log: Logger;

  constructor(options: StoreOptions = {}) {
    const paths = openworkPaths();
    this.dir = path.resolve(options.dir ?? paths.store);
    this.locksDir = path.resolve(options.locksDir ?? paths.locks);
    this.statCache = new StatCache(path.join(this.dir, "statcache"));
    this.versions = new VersionCache(path.join(this.dir, "versions"));
    this.log = options.log ?? silentLogger();
  }

  get tmpDir(): string {
    return path.join(this.dir, "tmp");
  }

  blobPath(sha256: string): string {
    if (!SHA256.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return path.join(this.dir, "blobs", "sha256", sha256);
  }

  /** A fresh temporary path inside the store (same device as the blobs, so the final rename is atomic). */
  async tempPath(label: string): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    this.swept ??= this.sweepTemp();
    await this.swept;
    return tempSibling(this.tmpDir, label.replace(/[^A-Za-z0-9._-]/g, "_"));
  }

  private swept: Promise<void> | undefined;

  /**
   * Remove temporary files left by processes that died mid-download (killed,
   * crashed): their names carry the writer's pid. Files of live processes stay.
   */
  private async sweepTemp(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(/\.(\d+)\.[0-9a-z]+\.tmp$/.exec(name)?.[1]);
      if (!pid || pid === process.pid || pidState(pid) === "alive") continue;
      await rm(path.join(this.tmpDir, name), { force: true });
      this.log.info({ file: name, pid }, `removed a temporary file left by the dead process ${pid}`);
    }
  }

  /**
   * The blob if it is present and still has the bytes its name promises.
   * A blob that fails is quarantined (and logged) so that it is fetched again.
   */
  async get(sha256: string, size?: number | null): Promise<StoredBlob | undefined> {
    const file = this.blobPath(sha256);
    let st: Stats;
    try {
      st = await stat(file);
    } catch (error) {
      if (systemErrorCode(error) === "ENOENT") return undefined;
      throw error;
    }
    const actual = await this.statCache.hash(file);
    if (actual.sha256 === sha256 && (size == null || actual.size === size)) {
      return { path: file, sha256, size: actual.size };
    }
    await this.quarantine(file, st, `its sha256 is ${actual.sha256} (${actual.size} bytes), not ${sha256}`);
    return undefined;
  }

  /** Move a failing blob aside, keep it for inspection, and say so. */
  async quarantine(file: string, st: Stats, reason: string): Promise<void> {
    const dir = path.join(this.dir, "quarantine");
    await mkdir(dir, { recursive: true });
    const dest = path.join(dir, `${path.basename(file)}.${Date.now()}`);
    await rename(file, dest).catch(async (error: unknown) => {
      if (systemErrorCode(error) !== "ENOENT") throw error;
    });
    await this.statCache.forget(st);
    this.log.warn(
      { blob: file, quarantinedAs: dest },
      `store blob failed verification and was quarantined: ${reason}; it will be fetched again`,
    );
  }

  /**
   * Move a checked temporary file into the store as the blob `sha256`:
   * mode 0755, renamed atomically, the directory synced, the stat recorded.
   * The caller has already fsynced the file's data.
   */
  async commit(temp: string, sha256: string): Promise<StoredBlob> {
    const dest = this.blobPath(sha256);
    await mkdir(path.dirname(dest), { recursive: true });
    await chmod(temp, 0o755);
    await rename(temp, dest);
    await syncDir(path.dirname(dest));
    const st = await stat(dest);
    await this.statCache.record(st, sha256);
    return { path: dest, sha256, size: st.size };
  }

  /**
   * Add a local file (a bundled package's binary, an external path) to the
   * store: copied (a reflink where the file system can), hashed, and checked
   * against `expected` before it gets its final name. Never hard-linked: the
   * store must own its inodes, because staged runtimes hard-link them into a
   * volume a sandbox can write, and a write there must not reach node_modules
   * or the user's file.
   */
  async ingestFile(src: string, expected: Expected, what: string): Promise<IngestResult> {
    const source = await this.statCache.hash(src);
    checkExpected(what, src, expected, source);
    const existing = await this.get(source.sha256, source.size);
    if (existing) return { ...existing, bytesWritten: 0 };
    return this.withBlobLock(source.sha256, async () => {
      const again = await this.get(source.sha256, source.size);
      if (again) return { ...again, bytesWritten: 0 };
      const temp = await this.tempPath(source.sha256);
      try {
        await copyFile(src, temp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
        await fsyncFile(temp);
        // Hash what landed in the store, not what we were told: the source could change in between.
        const landed = await this.statCache.hash(temp);
        checkExpected(what, src, { sha256: source.sha256, size: source.size }, landed);
        const blob = await this.commit(temp, landed.sha256);
        this.log.info({ src, blob: blob.path }, `${what}: copied into the store`);
        return { ...blob, bytesWritten: blob.size };
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
    });
  }

  /** One holder at a time per key across processes; a crashed holder's lock goes stale. */
  withBlobLock<T>(key: string, fn: () => Promise<T>, onWait?: () => void): Promise<T> {
    const safe = key.replace(/[^A-Za-z0-9._@-]/g, "_");
    return withLock(path.join(this.locksDir, "blobs", safe), fn, onWait ? { onWait } : {});
  }

  /**
   * A small index from a source key (e.g. an npm package, version, integrity
   * and path) to the blob it produced, for entries whose binary hash the
   * manifest does not pin: the second fetch then finds the blob without the network.
   */
  async indexLookup(key: string): Promise<(StoredBlob & { meta: Record<string, string> }) | undefined> {
    let entry: { sha256: string; size: number; meta?: Record<string, string> };
    try {
      entry = JSON.parse(await readFile(this.indexPath(key), "utf8")) as typeof entry;
    } catch {
      return undefined;
    }
    if (!SHA256.test(entry.sha256)) return undefined;
    const blob = await this.get(entry.sha256, entry.size);
    return blob ? { ...blob, meta: entry.meta ?? {} } : undefined;
  }

  async indexRecord(key: string, blob: StoredBlob, meta: Record<string, string> = {}): Promise<void> {
    const file = this.indexPath(key);
    await writeFileAtomic(file, JSON.stringify({ key, sha256: blob.sha256, size: blob.size, meta }));
  }

  private indexPath(key: string): string {
    return path.join(this.dir, "index", `${key.replace(/[^A-Za-z0-9._@-]/g, "_")}.json`);
  }
}

export function checkExpected(
  what: string,
  file: string,
  expected: Expected,
  actual: { sha256: string; size: number },
): void {
  if (expected.size != null && expected.size !== actual.size) {
    throw new OpenworkError(`${what}: ${file} has ${actual.size} bytes, the manifest says ${expected.size}`, {
      code: "size_mismatch",
      hint: "the file is not the one the manifest pins",
    });
  }
  if (expected.sha256 && expected.sha256 !== actual.sha256) {
    throw new OpenworkError(
      `${what}: ${file} has sha256 ${actual.sha256}, the manifest pins ${expected.sha256}`,
      {
        code: "sha256_mismatch",
        hint: "the file is not the one the manifest pins",
      },
    );
  }
}

export function openStore(options: StoreOptions = {}): BlobStore {
  return new BlobStore(options);
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
