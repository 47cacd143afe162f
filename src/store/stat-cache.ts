import type { Stats } from "node:fs";
import { mkdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../files/atomic.js";
import { sha256File } from "../sidecars/hash.js";

/**
 * What a verified file looked like when it was hashed. ctime is part of the key
 * because a tamperer can put mtime back (utimes) but cannot set ctime.
 */
export interface StatCacheEntry {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  sha256: string;
  verifiedAt: string;
}

export interface HashResult {
  sha256: string;
  size: number;
  /** true when the answer came from the stat cache (the file was not read) */
  cached: boolean;
}

/**
 * A stat cache keyed by (device, inode): it serves the store's blobs, their
 * hard links in staged runtimes and copies on other devices alike. One small
 * file per inode, written by rename, so concurrent processes never merge.
 * It lives in OPENWORK_HOME, never in a persisted volume a sandbox can write.
 */
export class StatCache {
  constructor(readonly dir: string) {}

  private entryPath(st: Pick<Stats, "dev" | "ino">): string {
    return path.join(this.dir, `${st.dev}-${st.ino}.json`);
  }

  /** The sha256 recorded for this exact file state, or undefined when the file changed since. */
  async trusted(st: Stats): Promise<string | undefined> {
    let entry: StatCacheEntry;
    try {
      entry = JSON.parse(await readFile(this.entryPath(st), "utf8")) as StatCacheEntry;
    } catch {
      return undefined;
    }
    const same =
      entry.dev === st.dev &&
      entry.ino === st.ino &&
      entry.size === st.size &&
      entry.mtimeMs === st.mtimeMs &&
      entry.ctimeMs === st.ctimeMs;
    return same && /^[0-9a-f]{64}$/.test(entry.sha256) ? entry.sha256 : undefined;
  }

  async record(st: Stats, sha256: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const entry: StatCacheEntry = {
      dev: st.dev,
      ino: st.ino,
      size: st.size,
      mtimeMs: st.mtimeMs,
      ctimeMs: st.ctimeMs,
      sha256,
      verifiedAt: new Date().toISOString(),
    };
    const target = this.entryPath(st);
    await writeFileAtomic(target, JSON.stringify(entry));
  }

  async forget(st: Stats): Promise<void> {
    await rm(this.entryPath(st), { force: true });
  }

  /**
   * sha256 and size of `file`: from the cache while the file is unchanged,
   * else hashed (streamed) and recorded. A file that changes while it is being
   * hashed is not recorded: the hash would describe neither state.
   */
  async hash(file: string): Promise<HashResult> {
    const before = await stat(file);
    const known = await this.trusted(before);
    if (known) return { sha256: known, size: before.size, cached: true };
    const hashed = await sha256File(file);
    const after = await stat(file);
    if (
      after.ino === before.ino &&
      after.size === hashed.size &&
      after.mtimeMs === before.mtimeMs &&
      after.ctimeMs === before.ctimeMs
    ) {
      await this.record(after, hashed.sha256);
    }
    return { ...hashed, cached: false };
  }
}
