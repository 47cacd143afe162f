import { persistLayout, SANDBOX_PATHS } from "../contract/layout.js";
import { OpenworkError } from "../errors/errors.js";
import { DockerBackend } from "../sandbox/docker/docker-backend.js";
import { eachLine, followFile, tailFile } from "../sandbox/host/log-file.js";
import type { LogSource } from "./log-sources.js";
import { backendOf } from "./reconcile.js";
import type { RunRecord } from "./record.js";

/**
 * A run's log lines, from wherever they are: the engine's and router's own
 * files in the persisted directory; the runtime's output (entrypoint and
 * server) in the run's log file on the host, or through the sandbox's backend.
 */
export async function readRunLogs(
  record: RunRecord,
  options: {
    source: LogSource;
    follow?: boolean;
    tail?: number | undefined;
    signal?: AbortSignal | undefined;
  },
  emit: (line: string) => void,
): Promise<void> {
  const { follow, tail, signal } = options;
  // The engine's and router's logs are in the persisted directory, which a sandbox writes: no link is followed there.
  const fromFile = async (file: string, root?: string) => {
    if (follow) await followFile(file, { tail, signal, root }, emit);
    else if (tail === undefined) await eachLine(file, emit, root);
    else for (const line of await tailFile(file, tail, root)) emit(line);
  };
  if (options.source !== "runtime" && record.shipped)
    return shippedLog(record, options.source, options, emit);
  if (options.source !== "runtime")
    return fromFile(persistLayout(record.persistDir).logFile(options.source), record.persistDir);
  if (record.sandbox === "none" || !record.handle) return fromFile(record.logFile);
  const backend = backendOf(record);
  const status = await backend.status(record.handle);
  if (status.state === "missing") {
    throw new OpenworkError(`the sandbox of run ${record.runId} is gone, and its output with it`, {
      code: "logs_unavailable",
      hint: "the engine's and router's own logs remain: --component engine|router",
    });
  }
  await backend.logs(record.handle, { follow, tail, signal }, (_stream, line) => emit(line));
}

/**
 * The engine's or router's log of a shipped run: in its persisted volume on its engine, read
 * with `tail` inside the running sandbox (as the sandbox's user: it reads only what it could).
 */
async function shippedLog(
  record: RunRecord,
  component: Exclude<LogSource, "runtime">,
  options: { follow?: boolean | undefined; tail?: number | undefined; signal?: AbortSignal | undefined },
  emit: (line: string) => void,
): Promise<void> {
  const backend = backendOf(record);
  const running = record.handle && (await backend.status(record.handle)).state === "running";
  if (!(backend instanceof DockerBackend) || !record.handle || !running)
    throw new OpenworkError(
      `the ${component} log of run ${record.runId} is in its volume on ${record.engine?.host ?? "its engine"}, read through its sandbox, which is not running`,
      {
        code: "logs_unavailable",
        hint: `read it on that engine: docker run --rm -v ${record.shipped?.persistVolume}:/persist busybox cat /persist/logs/${component}.log`,
      },
    );
  const file = persistLayout(SANDBOX_PATHS.persist).logFile(component);
  const lines = options.tail === undefined ? "+1" : String(options.tail);
  await backend.exec(record.handle, ["tail", "-n", lines, ...(options.follow ? ["-F"] : []), file], {
    onLine: emit,
    signal: options.signal,
  });
}
