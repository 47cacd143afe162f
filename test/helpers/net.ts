import { done, notYet, pollUntil } from "../../src/retry/poll.js";

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released): the product's own helper. */
export { freeLoopbackPort as freePort } from "../../src/net/ports.js";

/**
 * Poll `probe` until it returns a value or the deadline passes: the product's
 * own wait primitive, with a thrown error counting as "not yet" (its message
 * is the reason the timeout names).
 */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  return pollUntil(
    async () => {
      try {
        const value = await probe();
        return value === undefined ? notYet("not yet") : done(value);
      } catch (error) {
        return notYet(String(error));
      }
    },
    { what: options.what, pace: { intervalMs: options.intervalMs ?? 200 }, deadlineMs: options.timeoutMs },
  );
}
