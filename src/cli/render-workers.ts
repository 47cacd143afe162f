import type { WorkerStartResult } from "../workers/fleet.js";
import type { FleetStatus, WorkerStatus } from "../workers/status.js";
import { formatBytes, renderTable } from "./table.js";

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

export function formatDuration(ms: number | null): string {
  if (ms === null) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function health(worker: WorkerStatus): string {
  const entries = Object.entries(worker.components);
  if (entries.length === 0) return "-";
  const short: Record<string, string> = { opencode: "engine", "opencode-router": "router" };
  return entries.map(([name, status]) => `${short[name] ?? name}:${status}`).join(" ");
}

function versions(worker: WorkerStatus): string {
  const v = worker.versions;
  if (!v || (!v.opencode && !v.server)) return "-";
  return [v.opencode && `oc ${v.opencode}`, v.router && `rt ${v.router}`, v.server && `srv ${v.server}`]
    .filter(Boolean)
    .join(" ");
}

/** `workers status`: the fleet table, the supervisor line, then what is wrong with each broken worker. */
export function renderFleet(status: FleetStatus): string {
  const table = renderTable(
    [
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
    status.workers.map((w) => [
      w.name,
      w.sandbox,
      w.held && w.state === "stopped" ? "stopped (held)" : w.state,
      health(w),
      w.restarts === null ? "-" : String(w.restarts),
      formatDuration(w.uptimeMs),
      w.cpu === null ? "-" : `${Math.round(w.cpu * 100)}%`,
      w.memoryBytes === null ? "-" : formatBytes(w.memoryBytes),
      w.heartbeatAgeMs === null ? "-" : `${formatDuration(w.heartbeatAgeMs)}${w.stale ? " STALE" : ""}`,
      versions(w),
      w.url ?? "-",
    ]),
  );
  const s = status.supervisor;
  const supervisor =
    s.state === "not-running"
      ? "supervisor: not running (start it with `openwork workers start --supervise`)"
      : `supervisor: ${s.state === "stale" ? "STALE (no heartbeat for " + formatDuration(s.heartbeatAgeMs) + ")" : "running"}, pid ${s.pid}, since ${s.startedAt}${s.metricsUrl ? `, metrics ${s.metricsUrl}` : ""}`;
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
