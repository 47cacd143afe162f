import type { WorkerStatus } from "./status.js";

/*
 * How a worker's values read in a fleet table: one wording for the terminal
 * (`workers status`) and the dashboard, so the two never drift apart.
 */

export function formatAge(ms: number | null): string {
  if (ms === null) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** Each component's state, the engine and the router by those names. */
export function healthCell(worker: WorkerStatus): string {
  const entries = Object.entries(worker.components);
  if (entries.length === 0) return "-";
  const short: Record<string, string> = { opencode: "engine", "opencode-router": "router" };
  return entries.map(([name, status]) => `${short[name] ?? name}:${status}`).join(" ");
}

export function versionsCell(worker: WorkerStatus): string {
  const v = worker.versions;
  if (!v || (!v.opencode && !v.server)) return "-";
  return [v.opencode && `oc ${v.opencode}`, v.router && `rt ${v.router}`, v.server && `srv ${v.server}`]
    .filter(Boolean)
    .join(" ");
}
