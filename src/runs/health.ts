import type { RuntimeSummary } from "../contract/api.js";

/**
 * What "healthy" means for a run: its server answers, and every component it
 * supervises is healthy (a disabled router counts as well).
 */
export function componentsHealthy(summary: RuntimeSummary): boolean {
  return Object.values(summary.components).every(
    (component) => component.status === "healthy" || component.status === "disabled",
  );
}
