import { formatBytes } from "../text/units.js";
import { formatAge, healthCell, versionsCell } from "../workers/cells.js";
import type { WorkerStartResult } from "../workers/fleet.js";
import type { FleetStatus, WorkerStatus } from "../workers/status.js";
import { renderTable } from "./table.js";

/** `workers start`/`restart`: one row per worker, then why each failed one failed. */
export function renderStartResults(results: readonly WorkerStartResult[]): string {
  const table = renderTable(
    ["WORKER", "RESULT", "SANDBOX", "RUN", "TIME", "URL"],
    results.map((r) => [
      r.name,
      r.outcome === "running" ? "already running" : r.outcome,
      r.sandbox ?? "-",
      r.runId ?? "-",
      `${(r.ms / 1000).toFixed(1)}s`,
      r.url ?? "-",
    ]),
  );
  const reasons = results.filter((r) => r.reason).map((r) => `${r.name}: ${r.reason}`);
  return [table, ...reasons].join("\n");
}

/** `workers status`: the fleet table, the supervisor line, then what is wrong with each broken worker. */
export function renderFleet(status: FleetStatus): string {
  // Runs elsewhere (Swarm nodes, remote engines): a NODE column, and the rows grouped by it.
  const placed = status.workers.some((w) => w.node !== null);
  const rows = placed
    ? [...status.workers].sort((a, b) => (a.node ?? "").localeCompare(b.node ?? ""))
    : status.workers;
  const table = renderTable(
    [
      ...(placed ? ["NODE"] : []),
      "WORKER",
      "SANDBOX",
      "STATE",
      "HEALTH",
      "RESTARTS",
      "UPTIME",
      "CPU",
      "MEM",
      "HEARTBEAT",
      "VERSIONS",
      "URL",
    ],
    rows.map((w) => [
      ...(placed ? [w.node ?? "this machine"] : []),
      w.name,
      w.sandbox,
      w.held && w.state === "stopped" ? "stopped (held)" : w.state,
      healthCell(w),
      w.restarts === null ? "-" : String(w.restarts),
      formatAge(w.uptimeMs),
      w.cpu === null ? "-" : `${Math.round(w.cpu * 100)}%`,
      w.memoryBytes === null ? "-" : formatBytes(w.memoryBytes),
      w.heartbeatAgeMs === null ? "-" : `${formatAge(w.heartbeatAgeMs)}${w.stale ? " STALE" : ""}`,
      versionsCell(w),
      w.url ?? "-",
    ]),
  );
  const s = status.supervisor;
  const supervisor =
    s.state === "not-running"
      ? "supervisor: not running (start it with `openwork workers start --supervise`)"
      : `supervisor: ${s.state === "stale" ? "STALE (no heartbeat for " + formatAge(s.heartbeatAgeMs) + ")" : "running"}, pid ${s.pid}, since ${s.startedAt}${s.metricsUrl ? `, metrics ${s.metricsUrl}` : ""}`;
  const lines = [table, supervisor];
  if (s.configError)
    lines.push(`workers.json was not reloaded, the fleet runs its previous configuration: ${s.configError}`);
  for (const w of status.workers) {
    if (!w.enabled || w.state === "running" || (w.state === "stopped" && !w.lastError)) continue;
    if (w.lastError)
      lines.push(`${w.name}: ${w.lastError}${w.nextAttemptAt ? ` (next attempt ${w.nextAttemptAt})` : ""}`);
  }
  return lines.join("\n");
}
