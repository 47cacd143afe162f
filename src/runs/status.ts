import type { RuntimeSummary } from "../contract/api.js";
import { ExitCode, type ExitCodeValue, errorMessage } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { describeExit, type ListedSandbox } from "../sandbox/backend.js";
import { RuntimeClient } from "./client.js";
import { componentsHealthy } from "./health.js";
import { backendOf, reconcileAll } from "./reconcile.js";
import { isLive, type RunRecord, runView } from "./record.js";
import type { CorruptRecord, RunRegistry } from "./registry.js";
import { type RunSelector, selectRuns } from "./select.js";

export interface RunStatus {
  runId: string;
  workspace: string;
  sandbox: RunRecord["sandbox"];
  state: RunRecord["state"];
  url: string | undefined;
  /** what the running processes report (from the server when it answers, else the record's last word) */
  versions: RunRecord["versions"];
  healthy: boolean;
  reason: string | undefined;
  local: { sandbox: string; id: string | undefined; where?: string | undefined };
  runtime: { reachable: boolean; error?: string; summary?: RuntimeSummary };
  createdAt: string;
  startedAt: string | undefined;
  /** what reached the runtime (names and sources, never values); absent for runs started before it was recorded */
  credentials?: CredentialsView | undefined;
  /** the Docker engine it lives on (Docker runs) */
  engine?: string | undefined;
  /** a shipped run: where its files are on its engine */
  shipped?: RunRecord["shipped"];
}

export interface CredentialsView {
  env: Array<{ name: string; source: string }>;
  hostConfig: { dir: string | null; files: number } | null;
  hostAuth: string[] | null;
  caCert: string[] | null;
  proxyRewrites: Array<{ name: string; to: string }>;
}

/** The record's credentials without the MACs (they mean nothing to a reader). */
export function credentialsView(credentials: RunRecord["credentials"]): CredentialsView | undefined {
  if (!credentials) return undefined;
  return {
    env: credentials.env.map(({ name, source }) => ({ name, source })),
    hostConfig: credentials.hostConfig,
    hostAuth: credentials.hostAuth,
    caCert: credentials.caCert,
    proxyRewrites: credentials.proxyRewrites,
  };
}

export interface OrphanInfo {
  kind: ListedSandbox["kind"];
  id: string;
  runId: string | undefined;
  state: ListedSandbox["state"];
}

export function describeOrphan(orphan: ListedSandbox): OrphanInfo {
  return { kind: orphan.kind, id: orphan.id, runId: orphan.labels["openwork.run"], state: orphan.state };
}

/** Local state (is the process or container there) and the runtime's own view (what its server says). */
export async function describeRun(registry: RunRegistry, record: RunRecord): Promise<RunStatus> {
  const base = {
    ...runView(record),
    reason: record.reason,
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    credentials: credentialsView(record.credentials),
    ...(record.shipped ? { shipped: record.shipped } : {}),
  };
  let local = "not running";
  let where: string | undefined;
  if (record.handle && record.state !== "stopped") {
    local = await backendOf(record)
      .status(record.handle)
      .then(
        (status) => {
          where = status.where;
          return status.state === "exited"
            ? `exited (${describeExit(status)})`
            : status.where
              ? `${status.state} on ${status.where}`
              : status.state;
        },
        (error: unknown) => `unknown (${errorMessage(error)})`,
      );
  }
  const placed = { sandbox: local, id: record.handle?.id, ...(where ? { where } : {}) };
  if (record.state !== "running" || !record.url)
    return { ...base, healthy: false, local: placed, runtime: { reachable: false } };
  const secrets = await registry.readSecrets(record.runId);
  const client = new RuntimeClient(record.url, { client: secrets?.clientToken });
  const health = await client.healthy(2000);
  if (!health.ok)
    return { ...base, healthy: false, local: placed, runtime: { reachable: false, error: health.reason } };
  try {
    const summary = await client.summary(3000);
    return {
      ...base,
      versions: {
        opencode: summary.components.opencode.version,
        router:
          "version" in summary.components["opencode-router"]
            ? summary.components["opencode-router"].version
            : null,
        server: summary.server.version,
      },
      healthy: componentsHealthy(summary),
      local: placed,
      runtime: { reachable: true, summary },
    };
  } catch (error) {
    return {
      ...base,
      healthy: false,
      local: placed,
      runtime: { reachable: true, error: errorMessage(error) },
    };
  }
}

/** Exit 0 when every live run is healthy, 1 when one is not, 3 when none is live. */
export function statusExitCode(statuses: readonly RunStatus[]): ExitCodeValue {
  const live = statuses.filter((status) => isLive(status.state));
  if (live.length === 0) return ExitCode.notRunning;
  return live.every((status) => status.healthy) ? ExitCode.ok : ExitCode.failure;
}

/** `openwork status`: reconcile, select, and describe each selected run. */
export async function statusOf(
  registry: RunRegistry,
  log: Logger,
  selector: RunSelector,
): Promise<{
  statuses: RunStatus[];
  orphans: OrphanInfo[];
  corrupt: CorruptRecord[];
  exitCode: ExitCodeValue;
}> {
  const { records, orphans, corrupt } = await reconcileAll(registry, log);
  const selected = await selectRuns(records, selector, corrupt);
  const statuses = await Promise.all(selected.map((record) => describeRun(registry, record)));
  return { statuses, orphans: orphans.map(describeOrphan), corrupt, exitCode: statusExitCode(statuses) };
}
