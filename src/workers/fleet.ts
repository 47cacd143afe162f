import { errorMessage, isOpenworkError, oneLine, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { stopRun } from "../runs/reconcile.js";
import { isLive, type RunRecord } from "../runs/record.js";
import type { RunRegistry } from "../runs/registry.js";
import { startRun } from "../runs/start.js";
import type { WorkerSpec, WorkersConfig } from "./config.js";
import { startOptionsFor } from "./options.js";
import { runsOfWorkers } from "./runs-of.js";

/** Which workers a command acts on: the named ones (each must exist), else every enabled one. */
export function selectWorkers(config: WorkersConfig, names: readonly string[]): WorkerSpec[] {
  if (names.length === 0) return config.workers.filter((worker) => worker.enabled);
  const unknown = names.filter((name) => !config.workers.some((worker) => worker.name === name));
  if (unknown.length > 0)
    throw new UsageError(
      `no worker named ${unknown.join(", ")} in ${config.file}`,
      `its workers are: ${config.workers.map((worker) => worker.name).join(", ") || "(none)"}`,
    );
  return names.map((name) => config.workers.find((worker) => worker.name === name) as WorkerSpec);
}

export interface WorkerStartResult {
  name: string;
  outcome: "started" | "running" | "failed";
  runId: string | null;
  sandbox: string | null;
  url: string | null;
  /** how long its start took, ms */
  ms: number;
  reason: string | null;
}

/**
 * `workers start`: each worker exactly as `openwork start --detach`, at most
 * `parallel` at a time; one failure does not stop the others. A signal stops
 * the starts in progress (each undoes what it made) and starts no more.
 */
export async function startWorkers(options: {
  workers: readonly WorkerSpec[];
  parallel: number;
  registry: RunRegistry;
  log: Logger;
  signal?: AbortSignal | undefined;
  extraLabels?: Record<string, string>;
  replace?: boolean;
  onResult?: (result: WorkerStartResult) => void;
}): Promise<WorkerStartResult[]> {
  const queue = [...options.workers];
  const results: WorkerStartResult[] = [];
  const next = async (): Promise<void> => {
    for (let worker = queue.shift(); worker; worker = queue.shift()) {
      if (options.signal?.aborted) {
        results.push(failed(worker, 0, "not started: interrupted by a signal"));
        continue;
      }
      const began = performance.now();
      let result: WorkerStartResult;
      try {
        if (options.replace && worker.start.port !== undefined) {
          // Its fixed port cannot be held by the old and the new runtime at once: not rolling, then.
          const current = (await runsOfWorkers(options.registry, [worker])).get(worker.name);
          if (current && isLive(current.state)) await stopRun(options.registry, current, options.log);
        }
        const started = await startRun(
          startOptionsFor(worker, {
            registry: options.registry,
            log: options.log,
            signal: options.signal,
            replace: options.replace === true,
            ...(options.extraLabels ? { extraLabels: options.extraLabels } : {}),
          }),
        );
        result = {
          name: worker.name,
          outcome: started.reused ? "running" : "started",
          runId: started.record.runId,
          sandbox: started.record.sandbox,
          url: started.record.url ?? null,
          ms: Math.round(performance.now() - began),
          reason: null,
        };
      } catch (error) {
        result = failed(
          worker,
          performance.now() - began,
          isOpenworkError(error) ? oneLine(error) : errorMessage(error),
        );
      }
      results.push(result);
      options.onResult?.(result);
    }
  };
  const lanes = Math.max(1, Math.min(options.parallel, queue.length));
  await Promise.all(Array.from({ length: lanes }, next));
  const order = new Map(options.workers.map((worker, index) => [worker.name, index]));
  return results.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
}

function failed(worker: WorkerSpec, ms: number, reason: string): WorkerStartResult {
  return {
    name: worker.name,
    outcome: "failed",
    runId: null,
    sandbox: worker.start.sandbox ?? "none",
    url: null,
    ms: Math.round(ms),
    reason,
  };
}

export interface WorkerStopResult {
  name: string;
  runId: string | null;
  outcome: "stopped" | "not-running";
  notRecorded?: string;
}

/** `workers stop`: stop each worker's live run (all at once); a worker with none is already stopped. */
export async function stopWorkers(options: {
  workers: readonly WorkerSpec[];
  registry: RunRegistry;
  log: Logger;
  graceMs: number;
}): Promise<WorkerStopResult[]> {
  const runs = await runsOfWorkers(options.registry, options.workers);
  return Promise.all(
    options.workers.map(async (worker): Promise<WorkerStopResult> => {
      const record = runs.get(worker.name);
      if (!record || !isLive(record.state)) return { name: worker.name, runId: null, outcome: "not-running" };
      const after = await stopRun(options.registry, record, options.log, options.graceMs);
      return {
        name: worker.name,
        runId: record.runId,
        outcome: "stopped",
        ...(after.notRecorded ? { notRecorded: after.notRecorded } : {}),
      };
    }),
  );
}
