import { OpenworkError, StartFailedError } from "../errors/errors.js";
import { done, notYet, pollUntil, WaitAbortedError, WaitTimeoutError } from "../retry/poll.js";
import { describeExit, type SandboxBackend, type SandboxHandle } from "../sandbox/backend.js";
import type { RuntimeClient } from "./client.js";

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
        // Without an in-process exit promise (another process launched it), ask the backend now and then.
        // (Asked even when the exit is known in-process: only the backend can say it was an OOM kill.)
        if (ended !== undefined || !options.handle.exited || attempt % 10 === 0) {
          const status = await options.backend.status(options.handle);
          if (status.state !== "running") ended = describeExit(status);
        }
        if (ended !== undefined) throw await startFailure(options, `exited (${ended}) before it was healthy`);
        return notYet(health.answers ? "answered" : health.reason);
      },
      {
        what: "the runtime server to answer",
        pace: { intervalMs: 150 },
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
    if (error instanceof WaitAbortedError)
      throw new OpenworkError("start interrupted", { code: "interrupted", exitCode: 1 });
    if (error instanceof WaitTimeoutError)
      throw await startFailure(
        options,
        `was not healthy within ${Math.round(options.deadlineMs / 1000)} s (${error.lastReason ?? "no answer"})`,
      );
    throw error;
  }
}

/** The failed component named from the entrypoint's own report, plus the last lines of output. */
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

const ENTRYPOINT_REPORT =
  /openwork-entrypoint: (engine|router) (exited with code \d+ before it was healthy|was not healthy within \S+.*?)(?:; its last output:)?$/;

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
