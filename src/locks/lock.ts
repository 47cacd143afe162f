import { mkdir } from "node:fs/promises";
import path from "node:path";
import lockfile from "proper-lockfile";
import { OpenworkError } from "../errors/errors.js";
import { done, notYet, pollUntil, WaitTimeoutError } from "../retry/poll.js";

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
  let announced = false;
  const release = await pollUntil(
    async () => {
      try {
        return done(
          await lockfile.lock(file, { realpath: false, stale: staleMs, update: Math.floor(staleMs / 4) }),
        );
      } catch (error) {
        if ((error as { code?: string }).code !== "ELOCKED") throw error;
        if (!announced) {
          options.onWait?.();
          announced = true;
        }
        return notYet("another process holds it");
      }
    },
    { what: `the lock ${file}.lock`, pace: { intervalMs: 100, jitterMs: 150 }, deadlineMs: waitMs },
  ).catch((error: unknown) => {
    if (!(error instanceof WaitTimeoutError)) throw error;
    throw new OpenworkError(`gave up waiting for the lock ${file}.lock after ${waitMs} ms`, {
      code: "lock_timeout",
      hint: "another openwork process holds it; if none is running, remove that directory",
    });
  });
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
