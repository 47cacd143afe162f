import { removeImportDir } from "../credentials/import-dir.js";
import { resolveDockerEndpoint } from "../docker/client.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { isAlive } from "../processes/identity.js";
import type { SandboxBackend } from "../sandbox/backend.js";
import {
  describeExit,
  LABEL_HOME,
  LABEL_MANAGED,
  LABEL_RUN,
  type ListedSandbox,
} from "../sandbox/backend.js";
import { backendFor, registeredBackends } from "../sandbox/select.js";
import { engineOf, isLive, type RunRecord } from "./record.js";
import type { CorruptRecord, RunRegistry } from "./registry.js";

export const STOP_GRACE_MS = 10_000;

/** The engine the default Docker backend drives (undefined when it cannot be told: a broken docker context). */
function defaultEngineHost(): string | undefined {
  try {
    return resolveDockerEndpoint().host;
  } catch {
    return undefined;
  }
}

/** The backend a record's sandbox lives on: its kind, on its engine (one instance per engine and process). */
export function backendOf(record: RunRecord): SandboxBackend {
  return backendFor(record.sandbox, engineOf(record));
}

/**
 * Record what reality already is. Best effort: on a full or read-only disk the
 * record stays stale (the next command reconciles it again), and what could
 * not be written is logged and returned, never thrown — so status, stop and
 * the orphan sweep still do their work.
 */
export async function recordBestEffort(
  registry: RunRegistry,
  record: RunRecord,
  patch: Partial<RunRecord>,
  log: Logger,
): Promise<{ record: RunRecord; notRecorded?: string }> {
  const next = { ...record, ...patch };
  try {
    await registry.write(next);
    return { record: next };
  } catch (error) {
    const reason = `could not record run ${record.runId} as ${next.state}: ${errorMessage(error)}`;
    log.warn(reason);
    return { record: next, notRecorded: reason };
  }
}

function ownerAlive(record: RunRecord): boolean {
  return record.owner !== undefined && isAlive(record.owner);
}

/** Stop and remove a run's sandbox: by its handle, and by its run label (a launch may have been cut off before the handle was recorded). */
export async function teardown(record: RunRecord, graceMs = STOP_GRACE_MS): Promise<void> {
  if (record.tunnel) (await import("../shipping/tunnel.js")).closeTunnel(record.tunnel);
  const backend = backendOf(record);
  const seen = new Set<string>();
  if (record.handle) {
    seen.add(record.handle.id);
    await backend.stop(record.handle, graceMs);
    await backend.remove(record.handle);
  }
  for (const found of await backend.list({ [LABEL_RUN]: record.runId })) {
    if (seen.has(found.id)) continue;
    await backend.stop(found, graceMs);
    await backend.remove(found);
  }
}

/**
 * Bring one record in line with reality: a start whose process died is torn
 * down and marked failed; a running run whose sandbox is gone is marked
 * failed; a retiring run is finished. Returns the record as it now stands.
 */
export async function reconcileRecord(
  registry: RunRegistry,
  record: RunRecord,
  log: Logger,
): Promise<RunRecord> {
  if (!isLive(record.state)) return record;
  const mark = async (patch: Partial<RunRecord>) =>
    (await recordBestEffort(registry, record, patch, log)).record;
  try {
    if (record.state === "starting") {
      if (ownerAlive(record)) return record;
      log.warn(
        { runId: record.runId },
        "the openwork process that was starting this run died; removing what it left",
      );
      await teardown(record, 2000);
      // The copies of the user's config and logins it had written for the entrypoint.
      await removeImportDir(registry.importDir(record.workspaceId, record.sandbox, record.runId));
      return await mark({
        state: "failed",
        reason: "the openwork process that was starting this run died before the runtime was healthy",
        stoppedAt: new Date().toISOString(),
        owner: undefined,
      });
    }
    if (record.state === "retiring") {
      log.info({ runId: record.runId }, "finishing the retirement of a replaced run");
      await teardown(record);
      return await mark({ state: "stopped", stoppedAt: new Date().toISOString() });
    }
    if (!record.handle) {
      return await mark({ state: "failed", reason: "recorded as running without a sandbox handle" });
    }
    const status = await backendOf(record).status(record.handle);
    if (status.state === "running") return record.tunnel ? await keepTunnel(record, mark, log) : record;
    return await mark({
      state: "failed",
      reason:
        status.state === "missing"
          ? "its sandbox disappeared (removed outside openwork)"
          : `its sandbox exited unexpectedly (${describeExit(status)})`,
      stoppedAt: new Date().toISOString(),
    });
  } catch (error) {
    log.warn({ runId: record.runId }, `could not check the run: ${errorMessage(error)}`);
    return record;
  }
}

/**
 * A running run's SSH tunnel (an ssh:// engine) is reopened when it died — a
 * dropped connection, a reboot here — on the same local port, so its URL holds.
 */
async function keepTunnel(
  record: RunRecord,
  mark: (patch: Partial<RunRecord>) => Promise<RunRecord>,
  log: Logger,
): Promise<RunRecord> {
  const { openTunnel, tunnelAlive } = await import("../shipping/tunnel.js");
  const tunnel = record.tunnel;
  if (!tunnel || tunnelAlive(tunnel)) return record;
  log.info({ runId: record.runId, via: tunnel.target }, "the run's SSH tunnel had ended; reopening it");
  try {
    return await mark({ tunnel: await openTunnel(tunnel) });
  } catch (error) {
    log.warn({ runId: record.runId }, `could not reopen the SSH tunnel: ${errorMessage(error)}`);
    return record;
  }
}

/**
 * Reconcile every live run of one workspace. If two live runs are found, the
 * newest wins and the others are retired.
 */
export async function reconcileWorkspace(
  registry: RunRegistry,
  workspaceId: string,
  log: Logger,
): Promise<{ live: RunRecord[] }> {
  const { records } = await registry.list();
  // By id: one directory uploaded to two engines is two workspaces (src/shipping/target.ts).
  const mine = records.filter((record) => record.workspaceId === workspaceId && isLive(record.state));
  const live: RunRecord[] = [];
  for (const record of mine) {
    const now = await reconcileRecord(registry, record, log);
    if (isLive(now.state)) live.push(now);
  }
  const running = live.filter((record) => record.state === "running");
  for (const extra of running.slice(1)) {
    log.warn(
      { runId: extra.runId, kept: running[0]?.runId },
      "two runs for one workspace: the newest wins, retiring the other",
    );
    await retireRun(registry, extra, log);
    live.splice(live.indexOf(extra), 1);
  }
  return { live };
}

/** Retire a run: recorded `retiring` first, so that a failure part-way is finished by the next command. */
export async function retireRun(
  registry: RunRegistry,
  record: RunRecord,
  log: Logger,
  options: { failAfterMarking?: boolean } = {},
): Promise<void> {
  await registry.update(record.runId, { state: "retiring", reason: "replaced by a newer run" });
  if (options.failAfterMarking) {
    throw new OpenworkError(
      `retiring run ${record.runId} failed (injected fault); it stays "retiring" and the next start or stop finishes it`,
      {
        code: "retire_failed",
      },
    );
  }
  await teardown(record);
  await recordBestEffort(
    registry,
    { ...record, state: "retiring" },
    { state: "stopped", stoppedAt: new Date().toISOString() },
    log,
  );
  log.info({ runId: record.runId }, "old run retired");
}

/** Reconcile every run, then find sandboxes that carry our labels but have no live record. */
export async function reconcileAll(
  registry: RunRegistry,
  log: Logger,
  options: { orphans?: boolean } = {},
): Promise<{ records: RunRecord[]; orphans: ListedSandbox[]; corrupt: CorruptRecord[] }> {
  const { records, corrupt } = await registry.list();
  const now = await Promise.all(records.map((record) => reconcileRecord(registry, record, log)));
  // Two live runs of one workspace: the newest wins.
  const byWorkspace = new Map<string, RunRecord>();
  for (const record of now) {
    if (record.state !== "running") continue;
    const kept = byWorkspace.get(record.workspaceId);
    if (!kept) byWorkspace.set(record.workspaceId, record);
    else {
      await retireRun(registry, record, log).catch((error: unknown) =>
        log.warn(`retiring ${record.runId}: ${errorMessage(error)}`),
      );
      record.state = "stopped";
    }
  }
  const orphans: ListedSandbox[] = [];
  if (options.orphans !== false) {
    const known = new Map(now.map((record) => [record.runId, record]));
    // Each substrate is asked at the same time: one that is slow to answer does not delay the others.
    // Every engine a record names is swept too (a run on a remote engine or a swarm leaves its sandboxes there).
    const defaultHost = defaultEngineHost();
    const named = new Map<string, SandboxBackend>();
    for (const record of now) {
      const engine = engineOf(record);
      if ((record.sandbox !== "docker" && record.sandbox !== "swarm") || !engine) continue;
      if (engine === defaultHost) continue;
      named.set(`${record.sandbox}|${engine}`, backendFor(record.sandbox, engine));
    }
    const backends: SandboxBackend[] = [
      ...registeredBackends().map((kind) => backendFor(kind)),
      ...named.values(),
    ];
    const found = await Promise.all(
      backends.map(async (backend) => {
        const kind = backend.kind;
        if (kind !== "none") {
          const probe = await backend.probe();
          if (!probe.ok) return [];
        }
        const ours = { [LABEL_MANAGED]: "1", [LABEL_HOME]: registry.homeId() };
        return backend.list(ours).catch(() => []);
      }),
    );
    for (const sandbox of found.flat()) {
      const runId = sandbox.labels[LABEL_RUN];
      const record = runId ? known.get(runId) : undefined;
      // A failed run keeps its stopped sandbox (its logs) until `stop`; anything else without a live record is an orphan.
      if (
        !record ||
        record.state === "stopped" ||
        (record.state === "failed" && sandbox.state === "running")
      ) {
        orphans.push(sandbox);
      }
    }
  }
  return { records: now, orphans, corrupt };
}

/**
 * Stop a run (grace, then kill) and remove its sandbox, then record it. The
 * kill comes first: a record that cannot be written (a full or read-only
 * disk) is said in `notRecorded`, and the run is stopped all the same.
 * Idempotent: a stopped run stays stopped.
 */
export async function stopRun(
  registry: RunRegistry,
  record: RunRecord,
  log: Logger,
  graceMs = STOP_GRACE_MS,
): Promise<{ record: RunRecord; notRecorded?: string }> {
  if (record.state === "stopped") return { record };
  await teardown(record, graceMs);
  log.info({ runId: record.runId }, "run stopped");
  return recordBestEffort(
    registry,
    record,
    {
      state: record.state === "failed" ? "failed" : "stopped",
      stoppedAt: record.stoppedAt ?? new Date().toISOString(),
      owner: undefined,
    },
    log,
  );
}
