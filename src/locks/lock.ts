import { mkdir } from "node:fs/promises";
import path from "node:path";
import lockfile from "proper-lockfile";
import { OpenworkError } from "../errors/errors.js";

export interface LockOptions {
  /** how long to wait for another holder before giving up */
  waitMs?: number;
  /** a holder that has not refreshed the lock for this long is presumed dead (crashed) */
  staleMs?: number;
  onWait?: () => void;
}

/**
 * Run `fn` while holding a cross-process lock named by `file`. The lock is a
 * directory beside it, refreshed while held, so a crashed holder blocks others
 * only until it goes stale, never forever.
 */
export async function withLock<T>(file: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true });
  const staleMs = options.staleMs ?? 20_000;
  const waitMs = options.waitMs ?? 30 * 60_000;
  const deadline = Date.now() + waitMs;
  let release: (() => Promise<void>) | undefined;
  let announced = false;
  while (!release) {
    try {
      release = await lockfile.lock(file, {
        realpath: false,
        stale: staleMs,
        update: Math.floor(staleMs / 4),
      });
    } catch (error) {
      if ((error as { code?: string }).code !== "ELOCKED") throw error;
      if (Date.now() > deadline) {
        throw new OpenworkError(`gave up waiting for the lock ${file}.lock after ${waitMs} ms`, {
          code: "lock_timeout",
          hint: "another openwork process holds it; if none is running, remove that directory",
        });
      }
      if (!announced) {
        options.onWait?.();
        announced = true;
      }
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.random() * 150));
    }
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
