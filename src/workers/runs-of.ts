import { realpath } from "node:fs/promises";
import path from "node:path";
import { isLive, type RunRecord } from "../runs/record.js";
import type { RunRegistry } from "../runs/registry.js";
import type { WorkerSpec } from "./config.js";

/** The worker's workspace as run records name it (the real path, when it exists). */
export async function workspaceOf(worker: WorkerSpec): Promise<string> {
  return realpath(worker.workspace).catch(() => path.resolve(worker.workspace));
}

/** The run that stands for each worker: its live run, else its newest. */
export async function runsOfWorkers(
  registry: RunRegistry,
  workers: readonly WorkerSpec[],
): Promise<Map<string, RunRecord | undefined>> {
  const { records } = await registry.list();
  const result = new Map<string, RunRecord | undefined>();
  for (const worker of workers) {
    const workspace = await workspaceOf(worker);
    const mine = records
      .filter((record) => record.workspace === workspace)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    result.set(worker.name, mine.find((record) => isLive(record.state)) ?? mine[0]);
  }
  return result;
}
