import { rm } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../files/atomic.js";
import { readJsonFile } from "../files/json.js";
import { isAlive, type ProcessIdentity } from "../processes/identity.js";

export const WORKER_STATES = [
  /** a start is in progress */
  "starting",
  /** healthy at the last heartbeat */
  "running",
  /** its server answers but a component is not healthy (the server is restarting it) */
  "degraded",
  /** gone or failed to start; the next attempt is at nextAttemptAt */
  "backoff",
  /** kept failing: maxRestarts within the window; left alone until restarted by hand or the file changes */
  "failed",
  /** stopped by the supervisor (shutdown, removal, workers stop) */
  "stopped",
  /** enabled: false in workers.json */
  "disabled",
] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

/** One worker as the supervisor last saw it: its heartbeat. */
export const WorkerHeartbeatSchema = z.object({
  name: z.string(),
  state: z.enum(WORKER_STATES),
  runId: z.string().nullable(),
  sandbox: z.string().nullable(),
  /** where the run lives when not on this machine (a Swarm node, a remote engine) */
  node: z.string().nullable().default(null),
  url: z.string().nullable(),
  /** every component healthy at the last look */
  healthy: z.boolean(),
  versions: z
    .object({ opencode: z.string().nullable(), router: z.string().nullable(), server: z.string().nullable() })
    .nullable(),
  heartbeatAt: z.string(),
  lastHealthyAt: z.string().nullable(),
  /** when the current run became healthy (uptime counts from here) */
  upSince: z.string().nullable(),
  /** how long the last start took, ms */
  lastStartMs: z.number().nullable(),
  restarts: z.number().int(),
  restartsInWindow: z.number().int(),
  lastError: z.string().nullable(),
  nextAttemptAt: z.string().nullable(),
  memoryBytes: z.number().nullable(),
  /** share of one core since the previous heartbeat */
  cpu: z.number().nullable(),
  /** each component's status as the runtime's server reports it */
  components: z.record(z.string(), z.string()),
  /** upgrades of this worker's runtime seen finishing, by outcome */
  upgrades: z.record(z.string(), z.number().int()),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeatSchema>;

/** <state dir>/supervisor.json: who supervises this fleet, and every worker's heartbeat. */
export const SupervisorFileSchema = z.object({
  version: z.literal(1),
  pid: z.number().int(),
  startTime: z.string(),
  configFile: z.string(),
  startedAt: z.string(),
  updatedAt: z.string(),
  heartbeatIntervalMs: z.number().int(),
  metricsUrl: z.string().nullable(),
  /** the dashboard's origin on 127.0.0.1 (`workers dashboard` asks it for a login link); absent from older supervisors */
  dashboardUrl: z.string().nullable().optional(),
  /** why the last reload of workers.json was refused (the fleet kept its previous configuration) */
  configError: z.string().nullable(),
  /** set once it began stopping the fleet on SIGTERM/SIGINT */
  stopping: z.boolean(),
  workers: z.record(z.string(), WorkerHeartbeatSchema),
});
export type SupervisorFile = z.infer<typeof SupervisorFileSchema>;

export function supervisorFile(stateDir: string): string {
  return path.join(stateDir, "supervisor.json");
}

/** The secret (0600) `workers dashboard` presents to the supervisor to get a one-time login code. */
export function dashboardSecretFile(stateDir: string): string {
  return path.join(stateDir, "dashboard.secret");
}

export function supervisorLog(stateDir: string): string {
  return path.join(stateDir, "supervisor.log");
}

/** Missing, torn or foreign content reads as no supervisor (readJsonFile's rule). */
export function readSupervisorFile(stateDir: string): SupervisorFile | undefined {
  return readJsonFile(supervisorFile(stateDir), SupervisorFileSchema);
}

export async function writeSupervisorFile(stateDir: string, file: SupervisorFile): Promise<void> {
  await writeFileAtomic(supervisorFile(stateDir), `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
}

export async function removeSupervisorFile(stateDir: string, owner: ProcessIdentity): Promise<void> {
  const current = readSupervisorFile(stateDir);
  // Only our own: a successor that already took over keeps its file.
  if (current && (current.pid !== owner.pid || current.startTime !== owner.startTime)) return;
  await rm(supervisorFile(stateDir), { force: true });
}

/** The supervisor recorded for a fleet, if that process is still the one running. */
export function liveSupervisor(file: SupervisorFile | undefined): SupervisorFile | undefined {
  return file && isAlive({ pid: file.pid, startTime: file.startTime }) ? file : undefined;
}

/** A heartbeat older than twice the interval means the supervisor is stuck or gone. */
export function heartbeatAgeMs(heartbeat: { heartbeatAt: string }, now = Date.now()): number {
  return Math.max(0, now - Date.parse(heartbeat.heartbeatAt));
}

export function isStale(ageMs: number, intervalMs: number): boolean {
  return ageMs > 2 * intervalMs;
}
