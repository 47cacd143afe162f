import { OpenworkError } from "../errors/errors.js";
import type { SandboxBackend, SandboxHandle } from "../sandbox/backend.js";
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
  const started = Date.now();
  let exitCode: number | undefined;
  options.handle.exited?.then((code) => {
    exitCode = code;
  });
  let lastReason = "no answer yet";
  let polls = 0;
  let lastReport = started;
  while (Date.now() - started < options.deadlineMs) {
    if (options.signal?.aborted)
      throw new OpenworkError("start interrupted", { code: "interrupted", exitCode: 1 });
    const health = await options.client.healthy(2000);
    if (health.ok) return;
    lastReason = health.reason ?? lastReason;
    polls++;
    // Without an in-process exit promise (another process launched it), ask the backend now and then.
    if (exitCode === undefined && (!options.handle.exited || polls % 10 === 0)) {
      const status = await options.backend.status(options.handle);
      if (status.state !== "running") exitCode = status.exitCode ?? -1;
    }
    if (exitCode !== undefined)
      throw await startFailure(options, `exited with code ${exitCode} before it was healthy`);
    if (Date.now() - lastReport > 5000) {
      lastReport = Date.now();
      options.onWaiting?.(Date.now() - started);
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  throw await startFailure(
    options,
    `was not healthy within ${Math.round(options.deadlineMs / 1000)} s (${lastReason})`,
  );
}

/** The failed component named from the entrypoint's own report, plus the last lines of output. */
async function startFailure(options: WaitOptions, what: string): Promise<OpenworkError> {
  const lines: string[] = [];
  try {
    await options.backend.logs(options.handle, { tail: 40 }, (_stream, line) => lines.push(line));
  } catch {
    // the sandbox may be gone already; say what we know
  }
  const component = failedComponent(lines) ?? "the runtime";
  const tail = lines.slice(-20);
  return new OpenworkError(
    `${component} failed to start: ${componentReason(lines) ?? `the runtime ${what}`}`,
    {
      code: "start_failed",
      hint: tail.length > 0 ? undefined : "no output was captured",
      details: { component, lastLines: tail },
    },
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
