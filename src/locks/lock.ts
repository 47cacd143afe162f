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

/** The lock was taken over while held (this process was paused past the stale time, or its lock removed). */
export class LockLostError extends OpenworkError {
  constructor(readonly file: string) {
    super(
      `lost the lock ${file}.lock while holding it: another openwork process took it over (this one was paused or slowed past the lock's stale time)`,
      { code: "lock_lost", hint: "run the command again; what this one had started was undone" },
    );
    this.name = "LockLostError";
  }
}

/**
 * Run `fn` while holding a cross-process lock named by `file`. The lock is a
 * directory beside it, refreshed while held, so a crashed holder blocks others
 * only until it goes stale, never forever. Should the lock be lost while held,
 * `signal` aborts: fn undoes what it had not finished, and the error it ends
 * with is reported as the LockLostError it is (never a raw ECOMPROMISED).
 */
export async function withLock<T>(
  file: string,
  fn: (signal: AbortSignal) => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true });
  const staleMs = options.staleMs ?? 20_000;
  const waitMs = options.waitMs ?? 30 * 60_000;
  let announced = false;
  const lost = new AbortController();
  const release = await pollUntil(
    async () => {
      try {
        return done(
          await lockfile.lock(file, {
            realpath: false,
            stale: staleMs,
            update: Math.floor(staleMs / 4),
            // proper-lockfile's default throws from a timer, which would crash the process.
            onCompromised: () => lost.abort(new LockLostError(file)),
          }),
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
    // Finished work stands (a later reconcile settles any overlap); unfinished work reports the loss.
    return await fn(lost.signal);
  } catch (error) {
    throw lost.signal.aborted ? lost.signal.reason : error;
  } finally {
    if (!lost.signal.aborted) await release().catch(() => {});
  }
}
