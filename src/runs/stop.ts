import type { Logger } from "../logging/logger.js";
import type { ListedSandbox } from "../sandbox/backend.js";
import { backendOfHandle } from "../sandbox/select.js";
import { reconcileAll, stopRun } from "./reconcile.js";
import type { RunRegistry } from "./registry.js";
import { type RunSelector, selectRuns } from "./select.js";
import { describeOrphan, type OrphanInfo } from "./status.js";

export interface StopReport {
  stopped: Array<{ runId: string; state: string; wasAlready: boolean; notRecorded?: string }>;
  /** null when orphans were not asked about */
  orphansRemoved: OrphanInfo[] | null;
  /** nothing was selected and no orphans were asked about */
  nothingSelected: boolean;
}

/** Stop and remove sandboxes that carry our labels but belong to no live run. */
export async function removeOrphans(
  orphans: readonly ListedSandbox[],
  graceMs: number,
): Promise<OrphanInfo[]> {
  const removed: OrphanInfo[] = [];
  for (const orphan of orphans) {
    const backend = backendOfHandle(orphan);
    await backend.stop(orphan, graceMs);
    await backend.remove(orphan);
    removed.push(describeOrphan(orphan));
  }
  return removed;
}

/**
 * `openwork stop`: the selected runs (idempotent: a stopped run stays
 * stopped), then, when asked, the orphans. With only `orphans` asked for, no
 * run is selected. A signal ends the loop between runs.
 */
export async function stopRuns(options: {
  registry: RunRegistry;
  log: Logger;
  selector: RunSelector;
  orphans: boolean;
  graceMs: number;
  signal?: AbortSignal | undefined;
}): Promise<StopReport> {
  const { registry, log, selector } = options;
  const { records, orphans } = await reconcileAll(registry, log);
  const onlyOrphans =
    options.orphans && selector.run === undefined && selector.workspace === undefined && !selector.all;
  const selected = onlyOrphans ? [] : await selectRuns(records, selector);
  const stopped: StopReport["stopped"] = [];
  for (const record of selected) {
    if (options.signal?.aborted) break;
    const wasAlready = record.state === "stopped" || record.state === "failed";
    const after = await stopRun(registry, record, log, options.graceMs);
    stopped.push({
      runId: record.runId,
      state: after.record.state,
      wasAlready,
      ...(after.notRecorded ? { notRecorded: after.notRecorded } : {}),
    });
  }
  return {
    stopped,
    orphansRemoved: options.orphans ? await removeOrphans(orphans, options.graceMs) : null,
    nothingSelected: selected.length === 0 && !options.orphans,
  };
}
