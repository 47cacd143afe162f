import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";

/**
 * The runtime server's Prometheus metrics (GET /system/metrics, host token).
 *
 * A private registry, never prom-client's global one. It lives on globalThis
 * under a registered symbol because a server upgrade loads a second copy of
 * this module (the new bundle, with its own copy of prom-client) into the same
 * process and swaps request handlers: the new copy must find the registry and
 * the counters the old one made (a counter survives the swap, and no metric is
 * registered twice). The objects are used only through the methods below, which
 * every prom-client 15 copy has. A change of what the slot holds takes a new
 * key (…v2), never a different shape under this one.
 */
export const METRICS_SLOT = Symbol.for("openwork.server.metrics.v1");

export const METRICS_PREFIX = "openwork_server_";

/** outcome of one health probe */
export type ProbeOutcome = "ok" | "fail";
/**
 * How an upgrade operation ended, in the operation's own words: `succeeded`
 * (state succeeded), `rolled_back` (state failed, rolledBack true: the old
 * runtime serves as before), `failed` (state failed, rolledBack false: a
 * rollback step failed too).
 */
export type UpgradeOutcome = "succeeded" | "rolled_back" | "failed";
/** what a proxied request went to: the engine (the router is not proxied) */
/** opencode: /opencode/* (tokens); web: the web UI's requests (the session cookie, docs/web-ui.md) */
export type ProxyTarget = "opencode" | "web";
/** a supervised component's name (supervisor.ts's ComponentName: opencode, opencode-router) */
type Component = string;

export interface ServerMetrics {
  registry: Registry;
  componentRestarts: Counter<"component">;
  healthProbeDuration: Histogram<"component" | "outcome">;
  proxiedRequests: Counter<"target" | "code">;
  upgradeDuration: Histogram<"outcome">;
}

function createMetrics(): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  return {
    registry,
    componentRestarts: new Counter({
      name: `${METRICS_PREFIX}component_restarts_total`,
      help: "Restarts of a component by the supervisor (after it exited or hung)",
      labelNames: ["component"],
      registers: [registry],
    }),
    healthProbeDuration: new Histogram({
      name: `${METRICS_PREFIX}health_probe_duration_seconds`,
      help: "Duration of one health probe of a supervised component, by outcome (ok, fail)",
      labelNames: ["component", "outcome"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    proxiedRequests: new Counter({
      name: `${METRICS_PREFIX}proxied_requests_total`,
      help: "Answers to proxied requests by target and exact HTTP status (the proxy's own 502/503 included)",
      labelNames: ["target", "code"],
      registers: [registry],
    }),
    upgradeDuration: new Histogram({
      name: `${METRICS_PREFIX}upgrade_duration_seconds`,
      help: "Duration of finished upgrade operations, by outcome (succeeded, rolled_back, failed)",
      labelNames: ["outcome"],
      buckets: [0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
  };
}

/** This process's metrics: made by the first copy of this module that asks, shared by every later one. */
export function serverMetrics(): ServerMetrics {
  const slots = globalThis as Record<symbol, ServerMetrics | undefined>;
  let metrics = slots[METRICS_SLOT];
  if (!metrics) {
    metrics = createMetrics();
    slots[METRICS_SLOT] = metrics;
  }
  return metrics;
}

/** A component is supervised: its restart counter exists from now on (0 until the first restart). */
export function countComponent(component: Component): void {
  serverMetrics().componentRestarts.inc({ component }, 0);
}

export function countRestart(component: Component): void {
  serverMetrics().componentRestarts.inc({ component });
}

export function observeProbe(component: Component, ok: boolean, seconds: number): void {
  const outcome: ProbeOutcome = ok ? "ok" : "fail";
  serverMetrics().healthProbeDuration.observe({ component, outcome }, seconds);
}

export function countProxied(target: ProxyTarget, status: number): void {
  serverMetrics().proxiedRequests.inc({ target, code: String(status) });
}

export function observeUpgrade(outcome: UpgradeOutcome, seconds: number): void {
  serverMetrics().upgradeDuration.observe({ outcome }, seconds);
}
