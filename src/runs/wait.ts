import type { RuntimeReady } from "../contract/api.js";
import { OpenworkError, StartFailedError } from "../errors/errors.js";
import { done, notYet, pollUntil, WaitAbortedError, WaitTimeoutError } from "../retry/poll.js";
import { describeExit, type SandboxBackend, type SandboxHandle } from "../sandbox/backend.js";
import { ApiCallError, type RuntimeClient } from "./client.js";

export interface WaitOptions {
  client: RuntimeClient;
  backend: SandboxBackend;
  handle: SandboxHandle;
  deadlineMs: number;
  signal?: AbortSignal | undefined;
  onWaiting?: (elapsedMs: number) => void;
}

/**
 * Wait until the runtime server answers its health check. Fail fast: when
 * the sandbox's main process ends first (a component died before it was
 * healthy), stop waiting at once and say which component and what it printed.
 */
export async function waitHealthy(options: WaitOptions): Promise<void> {
  let ended: string | undefined;
  options.handle.exited?.then((code) => {
    ended = `code ${code}`;
  });
  let lastReport = 0;
  try {
    await pollUntil(
      async ({ attempt }) => {
        const health = await options.client.identify(2000);
        if (health.answers && health.ours) return done(true);
        if (health.answers) {
          // Something else answers on our port: it gets none of this run's tokens.
          throw new OpenworkError(
            `another server answers on ${options.client.baseUrl}, not the runtime this start launched; refusing to send it this run's tokens`,
            { code: "foreign_server", hint: "choose another port, or stop what listens there" },
          );
        }
        // Without an in-process exit promise (another process launched it), ask the backend now and then (~1.5 s).
        // (Asked even when the exit is known in-process: only the backend can say it was an OOM kill.)
        if (ended !== undefined || attempt % 30 === 0) {
          const status = await options.backend.status(options.handle);
          if (status.state !== "running") ended = describeExit(status);
        }
        if (ended !== undefined) throw await startFailure(options, `exited (${ended}) before it was healthy`);
        return notYet(health.answers ? "answered" : health.reason);
      },
      {
        what: "the runtime server to answer",
        // The server answers within a second of the launch (it boots beside the engine): ask often.
        pace: { intervalMs: 50 },
        deadlineMs: options.deadlineMs,
        signal: options.signal,
        onNotYet: ({ elapsedMs }) => {
          if (elapsedMs - lastReport > 5000) {
            lastReport = elapsedMs;
            options.onWaiting?.(elapsedMs);
          }
        },
      },
    );
  } catch (error) {
    if (error instanceof WaitAbortedError) throw interrupted();
    if (error instanceof WaitTimeoutError)
      throw await startFailure(
        options,
        `was not healthy within ${Math.round(options.deadlineMs / 1000)} s (${error.lastReason ?? "no answer"})`,
      );
    throw error;
  }
}

/**
 * Once the server answers: wait until the runtime is ready. The server may
 * answer while the engine still boots; it says when the engine is healthy
 * through a long-poll (GET /system/ready), so this learns it the moment it
 * happens rather than at the next tick of an interval. A start that fails
 * (the engine dies or misses its deadline; the server reports it and exits)
 * becomes the same StartFailedError as a failure the entrypoint reports.
 */
export async function waitReady(options: WaitOptions): Promise<RuntimeReady> {
  const deadline = Date.now() + options.deadlineMs;
  const started = Date.now();
  let lastReport = 0;
  for (;;) {
    if (options.signal?.aborted) throw interrupted();
    const remaining = deadline - Date.now();
    if (remaining <= 0)
      throw await startFailure(options, `was not ready within ${Math.round(options.deadlineMs / 1000)} s`);
    try {
      const ready = await abortable(options.client.ready(Math.min(remaining, 5000)), options.signal);
      if (ready) return ready;
    } catch (error) {
      if (options.signal?.aborted) continue;
      if (error instanceof ApiCallError && error.apiCode === "start_failed") {
        // The server reports the failure, stops the engine and exits: its output is complete then.
        await sandboxEnded(options, 10_000);
        throw await startFailure(options, "failed before it was ready");
      }
      // The server went away mid-poll: say how the sandbox ended, if it did.
      const status = await options.backend.status(options.handle);
      if (status.state !== "running")
        throw await startFailure(options, `exited (${describeExit(status)}) before it was ready`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const elapsed = Date.now() - started;
    if (elapsed - lastReport > 5000) {
      lastReport = elapsed;
      options.onWaiting?.(elapsed);
    }
  }
}

async function sandboxEnded(options: WaitOptions, withinMs: number): Promise<void> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if ((await options.backend.status(options.handle)).state !== "running") return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(interrupted());
    if (signal.aborted) onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function interrupted(): OpenworkError {
  return new OpenworkError("start interrupted", { code: "interrupted", exitCode: 1 });
}

/** The failed component named from the entrypoint's (or the server's) own report, plus the last lines of output. */
async function startFailure(options: WaitOptions, what: string): Promise<StartFailedError> {
  const lines: string[] = [];
  try {
    await options.backend.logs(options.handle, { tail: 40 }, (_stream, line) => lines.push(line));
  } catch {
    // the sandbox may be gone already; say what we know
  }
  const component = failedComponent(lines) ?? "the runtime";
  const tail = lines.slice(-20);
  return new StartFailedError(
    `${component} failed to start: ${componentReason(lines) ?? `the runtime ${what}`}`,
    component,
    tail,
    { hint: tail.length > 0 ? undefined : "no output was captured" },
  );
}

// The entrypoint reports a component that failed to start; so does a server that waited for a booting engine.
const ENTRYPOINT_REPORT =
  /openwork-(?:entrypoint|server): (engine|router) (exited with code \d+ before it was healthy|was not healthy within \S+.*?)(?:; its last output:)?$/;

export function failedComponent(lines: string[]): string | undefined {
  for (const line of [...lines].reverse()) {
    const match = ENTRYPOINT_REPORT.exec(line);
    if (match?.[1]) return match[1];
    if (/openwork-server: /.test(line) || /starting the runtime server/.test(line)) return "server";
  }
  return undefined;
}

function componentReason(lines: string[]): string | undefined {
  for (const line of [...lines].reverse()) {
    const match = ENTRYPOINT_REPORT.exec(line);
    if (match?.[2]) return match[2];
  }
  return undefined;
}
