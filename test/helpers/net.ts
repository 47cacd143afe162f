/** A free TCP port on 127.0.0.1 (asked of the kernel, then released): the product's own helper. */
export { freeLoopbackPort as freePort } from "../../src/runs/ports.js";

/** Poll `probe` until it returns a value or the deadline passes. */
export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  options: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
  throw new Error(
    `${options.what} did not happen within ${options.timeoutMs} ms${lastError ? `: ${String(lastError)}` : ""}`,
  );
}
