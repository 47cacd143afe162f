import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { done, notYet, pollUntil, WaitAbortedError } from "../retry/poll.js";
import { readRunLogs } from "./logs.js";
import { backendOf, recordBestEffort, stopRun } from "./reconcile.js";
import type { RunRecord } from "./record.js";
import type { RunRegistry } from "./registry.js";

/**
 * A run in the foreground: stream its output until `signal` aborts (Ctrl-C),
 * then stop it gracefully — unless it was running before this command, which
 * then leaves it running. If the runtime ends by itself first, the run is
 * recorded as failed and the command fails saying so.
 */
export async function followInForeground(options: {
  registry: RunRegistry;
  record: RunRecord;
  log: Logger;
  signal: AbortSignal;
  stopOnExit: boolean;
  print: (line: string) => void;
}): Promise<void> {
  const { registry, record, log, signal } = options;
  if (!record.handle) return;
  const backend = backendOf(record);
  const handle = record.handle;
  const stopFollowing = new AbortController();
  signal.addEventListener("abort", () => stopFollowing.abort(), { once: true });
  const following = readRunLogs(
    record,
    { source: "runtime", follow: true, tail: 0, signal: stopFollowing.signal },
    options.print,
  ).catch((error: unknown) => log.warn(`log stream ended: ${errorMessage(error)}`));
  // Watch the sandbox: if it ends by itself, so does the foreground command.
  const ended = await pollUntil(
    async () => {
      const status = await backend.status(handle).catch(() => undefined);
      return status && status.state !== "running" ? done(status) : notYet("running");
    },
    { what: "the runtime to end", pace: { intervalMs: 1000 }, signal },
  ).catch((error: unknown) => {
    if (error instanceof WaitAbortedError) return undefined;
    throw error;
  });
  stopFollowing.abort();
  await following;
  if (ended) {
    await recordBestEffort(
      registry,
      record,
      {
        state: "failed",
        reason: `the runtime exited (code ${ended.exitCode ?? "unknown"})`,
        stoppedAt: new Date().toISOString(),
      },
      log,
    );
    throw new OpenworkError(`the runtime exited on its own (code ${ended.exitCode ?? "unknown"})`, {
      code: "runtime_exited",
      hint: `see openwork logs ${record.runId}`,
    });
  }
  if (options.stopOnExit) {
    log.info("stopping the runtime");
    await stopRun(registry, record, log);
  } else {
    log.info(`leaving run ${record.runId} running: it was already running before this command`);
  }
}
