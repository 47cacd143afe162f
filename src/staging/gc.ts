import { existsSync } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { persistLayout } from "../contract/layout.js";
import { RUNTIME_ID_PATTERN } from "../contract/runtime.js";
import { type Logger, silentLogger } from "../logging/logger.js";

export interface GcOptions {
  /** how many of the most recently staged runtimes to keep besides `keep` (current + previous: 2) */
  keepRecent?: number | undefined;
  log?: Logger | undefined;
}

export interface GcResult {
  kept: string[];
  removed: string[];
}

/**
 * Remove staged runtimes that are neither in `keep` (the ones in use: the
 * current one, the previous one for rollback, any a running process uses) nor
 * among the `keepRecent` most recently staged. Incomplete ones (no
 * runtime.json) count as oldest. Only directories named like runtime ids are
 * touched; blobs stay in the store (they are hard links).
 */
export async function gcRuntimes(
  stagingRoot: string,
  keep: readonly string[],
  options: GcOptions = {},
): Promise<GcResult> {
  const log = options.log ?? silentLogger();
  const layout = persistLayout(path.resolve(stagingRoot));
  const runtimesDir = layout.runtimesDir;
  let names: string[];
  try {
    names = (await readdir(runtimesDir)).filter((name) => RUNTIME_ID_PATTERN.test(name));
  } catch {
    return { kept: [], removed: [] };
  }
  const dated = await Promise.all(
    names.map(async (name) => {
      // runtime.json's mtime is refreshed by every staging of that runtime
      const mtime = await stat(layout.runtimeJson(name)).then(
        (st) => st.mtimeMs,
        () => 0,
      );
      return { name, mtime };
    }),
  );
  dated.sort((a, b) => b.mtime - a.mtime);
  const keepRecent = options.keepRecent ?? 2;
  const keepSet = new Set(keep);
  for (const d of dated.filter((d) => d.mtime > 0).slice(0, keepRecent)) keepSet.add(d.name);
  const result: GcResult = { kept: [], removed: [] };
  for (const { name } of dated) {
    // a runtime being staged right now holds its lock and has no runtime.json yet
    if (keepSet.has(name) || existsSync(`${layout.stagingLock(name)}.lock`)) {
      result.kept.push(name);
      continue;
    }
    await rm(layout.runtimeDir(name), { recursive: true, force: true });
    result.removed.push(name);
    log.info({ runtimeId: name }, `removed the old staged runtime ${name}`);
  }
  return result;
}
