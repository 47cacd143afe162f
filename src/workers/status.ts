import type { RuntimeSummary } from "../contract/api.js";
import { ExitCode, type ExitCodeValue, errorMessage } from "../errors/errors.js";
import { placeOf, type RunRecord } from "../runs/record.js";
import type { RunRegistry } from "../runs/registry.js";
import type { WorkerSpec, WorkersConfig } from "./config.js";
import { readHolds } from "./holds.js";
import { runsOfWorkers } from "./runs-of.js";
import {
  heartbeatAgeMs,
  isStale,
  liveSupervisor,
  readSupervisorFile,
  type WorkerHeartbeat,
  type WorkerState,
} from "./state.js";

export interface SupervisorView {
  state: "running" | "stale" | "not-running";
  pid: number | null;
  startedAt: string | null;
  metricsUrl: string | null;
  heartbeatAgeMs: number | null;
  /** the last reload of workers.json was refused for this reason; the fleet runs its previous configuration */
  configError: string | null;
}

export interface WorkerStatus {
  name: string;
  enabled: boolean;
  /** held stopped by `workers stop NAME` */
  held: boolean;
  sandbox: string;
  /** where the run lives when not on this machine (a Swarm node, a remote engine); null here */
  node: string | null;
  /** the supervisor's state when one watches the fleet, else what the run itself says */
  state: WorkerState | "unhealthy";
  healthy: boolean;
  components: Record<string, string>;
  runId: string | null;
  url: string | null;
  workspace: string;
  versions: RunRecord["versions"] | null;
  /** null without a supervisor (nobody counts restarts then) */
  restarts: number | null;
  uptimeMs: number | null;
  /** share of one core: since the previous heartbeat, or (without a supervisor) averaged since the start, like ps */
  cpu: number | null;
  memoryBytes: number | null;
  heartbeatAgeMs: number | null;
  /** no heartbeat for twice the interval */
  stale: boolean;
  lastError: string | null;
  nextAttemptAt: string | null;
}

export interface FleetStatus {
  config: string;
  supervisor: SupervisorView;
  workers: WorkerStatus[];
}

/**
 * `workers status`: every worker of the file, from three sources read at
 * once — the runs' records, each runtime's server, and the supervisor's
 * heartbeats — so a broken worker shows which of them disagrees.
 */
export async function fleetStatus(options: {
  config: WorkersConfig;
  stateDir: string;
  registry: RunRegistry;
}): Promise<FleetStatus> {
  const { config, stateDir, registry } = options;
  const file = readSupervisorFile(stateDir);
  const live = liveSupervisor(file);
  const interval = live?.heartbeatIntervalMs ?? config.heartbeatIntervalMs;
  const supervisorAge = live ? heartbeatAgeMs({ heartbeatAt: live.updatedAt }) : null;
  const supervisor: SupervisorView = {
    state: !live ? "not-running" : isStale(supervisorAge ?? 0, interval) ? "stale" : "running",
    pid: live?.pid ?? null,
    startedAt: live?.startedAt ?? null,
    metricsUrl: live?.metricsUrl ?? null,
    heartbeatAgeMs: supervisorAge,
    configError: live?.configError ?? null,
  };
  const holds = readHolds(stateDir);
  // A supervisor that is alive and on time has just looked at each worker: its heartbeat is the
  // answer, and nothing is asked of the runtimes again (what keeps a status of a big fleet fast).
  const heard = (worker: WorkerSpec) => {
    const heartbeat = supervisor.state === "running" ? live?.workers[worker.name] : undefined;
    return heartbeat && !isStale(heartbeatAgeMs(heartbeat), interval) ? heartbeat : undefined;
  };
  const unheard = config.workers.filter((worker) => !heard(worker));
  const runs =
    unheard.length > 0 ? await runsOfWorkers(registry, unheard) : new Map<string, RunRecord | undefined>();
  const workers = await Promise.all(
    config.workers.map((worker) => {
      const heartbeat = heard(worker);
      if (heartbeat) return fromHeartbeat(worker, heartbeat, holds.has(worker.name));
      return workerStatus(worker, runs.get(worker.name), live?.workers[worker.name], holds.has(worker.name), {
        registry,
        intervalMs: interval,
      });
    }),
  );
  return { config: config.file, supervisor, workers };
}

/** A worker's row from the supervisor's own heartbeat (also the dashboard's rows). */
export function fromHeartbeat(worker: WorkerSpec, heartbeat: WorkerHeartbeat, held: boolean): WorkerStatus {
  const age = heartbeatAgeMs(heartbeat);
  return {
    name: worker.name,
    enabled: worker.enabled,
    held,
    sandbox: heartbeat.sandbox ?? worker.start.sandbox ?? "none",
    node: heartbeat.node,
    state: !worker.enabled
      ? "disabled"
      : heartbeat.state === "running" && !heartbeat.healthy
        ? "unhealthy"
        : heartbeat.state,
    healthy: heartbeat.healthy,
    components: heartbeat.components,
    runId: heartbeat.runId,
    url: heartbeat.url,
    workspace: worker.workspace,
    versions: heartbeat.versions,
    restarts: heartbeat.restarts,
    uptimeMs: heartbeat.upSince === null ? null : Math.max(0, Date.now() - Date.parse(heartbeat.upSince)),
    cpu: heartbeat.cpu,
    memoryBytes: heartbeat.memoryBytes,
    heartbeatAgeMs: age,
    stale: false,
    lastError: heartbeat.lastError,
    nextAttemptAt: heartbeat.nextAttemptAt,
  };
}

/** A worker no fresh heartbeat speaks for: its run's record, its server, and its usage, asked now. */
async function workerStatus(
  worker: WorkerSpec,
  record: RunRecord | undefined,
  heartbeat: WorkerHeartbeat | undefined,
  held: boolean,
  context: { registry: RunRegistry; intervalMs: number },
): Promise<WorkerStatus> {
  const running = record?.state === "running" ? record : undefined;
  const age = heartbeat ? heartbeatAgeMs(heartbeat) : null;
  // A fresh heartbeat already measured this run: asking the engine again (docker stats) is the slow part of a status.
  const measured =
    heartbeat !== undefined &&
    heartbeat.runId === running?.runId &&
    heartbeat.memoryBytes !== null &&
    age !== null &&
    !isStale(age, context.intervalMs);
  const [run, usage] = await Promise.all([
    running ? probeRun(context.registry, running) : Promise.resolve(undefined),
    running && !measured
      ? import("./usage.js").then(({ sampleUsage }) => sampleUsage(running))
      : Promise.resolve(null),
  ]);
  const components = run?.summary
    ? Object.fromEntries(
        Object.entries(run.summary.components).map(([name, component]) => [name, component.status]),
      )
    : {};
  const startedAt = running?.startedAt ? Date.parse(running.startedAt) : null;
  const uptimeMs = startedAt === null ? null : Math.max(0, Date.now() - startedAt);
  const averageCpu = usage && uptimeMs !== null && uptimeMs > 0 ? usage.cpuSeconds / (uptimeMs / 1000) : null;
  return {
    name: worker.name,
    enabled: worker.enabled,
    held,
    sandbox: record?.sandbox ?? worker.start.sandbox ?? "none",
    node: running ? placeOf(running) : null,
    state: stateOf(worker, record, run, heartbeat, held),
    healthy: run?.healthy === true,
    components,
    runId: record?.runId ?? null,
    url: running?.url ?? null,
    workspace: worker.workspace,
    versions: run?.summary ? versionsOf(run.summary) : (record?.versions ?? null),
    restarts: heartbeat?.restarts ?? null,
    uptimeMs,
    cpu: heartbeat?.cpu ?? averageCpu,
    memoryBytes: usage?.memoryBytes ?? heartbeat?.memoryBytes ?? null,
    heartbeatAgeMs: age,
    stale: age !== null && isStale(age, context.intervalMs),
    lastError: heartbeat?.lastError ?? (running ? (run?.error ?? null) : (record?.reason ?? null)),
    nextAttemptAt: heartbeat?.nextAttemptAt ?? null,
  };
}

function stateOf(
  worker: WorkerSpec,
  record: RunRecord | undefined,
  run: RunProbe | undefined,
  heartbeat: WorkerHeartbeat | undefined,
  held: boolean,
): WorkerStatus["state"] {
  if (!worker.enabled) return "disabled";
  // The supervisor's word when it has one: it knows about backoff and giving up.
  if (heartbeat && heartbeat.state !== "running") return heartbeat.state;
  if (run) return run.healthy ? "running" : "unhealthy";
  if (record?.state === "starting") return "starting";
  if (held || !record || record.state === "stopped") return "stopped";
  return record.state === "failed" ? "failed" : "stopped";
}

/** 0: every enabled, unheld worker is healthy; 1: one is not; 3: none of them runs. */
export function fleetExitCode(status: FleetStatus): ExitCodeValue {
  const wanted = status.workers.filter((worker) => worker.enabled && !worker.held);
  if (
    !status.workers.some(
      (worker) => worker.runId !== null && worker.state !== "stopped" && worker.url !== null,
    )
  )
    return ExitCode.notRunning;
  return wanted.every((worker) => worker.healthy) ? ExitCode.ok : ExitCode.failure;
}

interface RunProbe {
  healthy: boolean;
  summary?: RuntimeSummary;
  error?: string;
}

/**
 * The run as its server sees it, in one request: the summary answers only
 * when the server is up, and says how each component is. (`openwork status`
 * asks the sandbox backend too; a fleet table does not need to, and skipping
 * it keeps the Docker client out of the common path.)
 */
async function probeRun(registry: RunRegistry, record: RunRecord): Promise<RunProbe> {
  if (!record.url) return { healthy: false, error: "no URL recorded" };
  const secrets = await registry.readSecrets(record.runId);
  const { RuntimeClient } = await import("../runs/client.js");
  const { componentsHealthy } = await import("../runs/health.js");
  try {
    const summary = await new RuntimeClient(record.url, { client: secrets?.clientToken }).summary(3000);
    return { healthy: componentsHealthy(summary), summary };
  } catch (error) {
    return { healthy: false, error: `its server does not answer: ${errorMessage(error)}` };
  }
}

function versionsOf(summary: RuntimeSummary): RunRecord["versions"] {
  const router = summary.components["opencode-router"];
  return {
    opencode: summary.components.opencode.version,
    router: "version" in router ? router.version : null,
    server: summary.server.version,
  };
}
