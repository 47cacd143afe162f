import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Counter, Gauge, Registry } from "prom-client";
import { nodeHttp } from "../net/http.js";
import { heartbeatAgeMs, WORKER_STATES, type WorkerHeartbeat } from "./state.js";

/**
 * The supervisor's Prometheus metrics. Gauges are read from the workers'
 * heartbeats when scraped (one source of truth); counters count events as
 * they happen. A private registry: nothing global, nothing shared with the
 * runtime server's own metrics.
 */
export class FleetMetrics {
  readonly registry = new Registry();
  private readonly restarts: Counter<"worker">;
  private readonly upgrades: Counter<"worker" | "outcome">;

  constructor(heartbeats: () => WorkerHeartbeat[]) {
    const registers = [this.registry];
    this.restarts = new Counter({
      name: "openwork_worker_restarts_total",
      help: "Restarts of a worker's runtime by the supervisor (gone, unhealthy, over maxMemory, or failed to start).",
      labelNames: ["worker"],
      registers,
    });
    this.upgrades = new Counter({
      name: "openwork_worker_upgrades_total",
      help: "Upgrades of a worker's runtime seen finishing, by outcome (succeeded, failed, interrupted).",
      labelNames: ["worker", "outcome"],
      registers,
    });
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      fill: (gauge: Gauge<L>, heartbeat: WorkerHeartbeat) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const heartbeat of heartbeats()) fill(this, heartbeat);
        },
      });
    gauge(
      "openwork_worker_up",
      "1 when the worker's runtime is running (healthy or degraded).",
      ["worker"],
      (g, h) => g.set({ worker: h.name }, h.state === "running" || h.state === "degraded" ? 1 : 0),
    );
    gauge(
      "openwork_worker_state",
      "1 for the worker's current supervisor state, 0 for the others.",
      ["worker", "state"],
      (g, h) => {
        for (const state of WORKER_STATES) g.set({ worker: h.name, state }, h.state === state ? 1 : 0);
      },
    );
    gauge(
      "openwork_worker_healthy",
      "1 when the component is healthy (or disabled) by the runtime server's last answer.",
      ["worker", "component"],
      (g, h) => {
        for (const [component, status] of Object.entries(h.components))
          g.set({ worker: h.name, component }, status === "healthy" || status === "disabled" ? 1 : 0);
      },
    );
    gauge(
      "openwork_worker_last_start_duration_seconds",
      "How long the worker's last start took, until healthy.",
      ["worker"],
      (g, h) => {
        if (h.lastStartMs !== null) g.set({ worker: h.name }, h.lastStartMs / 1000);
      },
    );
    gauge(
      "openwork_worker_memory_bytes",
      "Resident memory of the worker's runtime (all its processes).",
      ["worker"],
      (g, h) => {
        if (h.memoryBytes !== null) g.set({ worker: h.name }, h.memoryBytes);
      },
    );
    gauge(
      "openwork_worker_heartbeat_age_seconds",
      "Seconds since the worker was last checked.",
      ["worker"],
      (g, h) => g.set({ worker: h.name }, heartbeatAgeMs(h) / 1000),
    );
  }

  restarted(worker: string): void {
    this.restarts.inc({ worker });
  }

  upgraded(worker: string, outcome: string): void {
    this.upgrades.inc({ worker, outcome });
  }

  /** Declare a worker's counters at 0, so a scrape shows every worker before its first restart. */
  known(worker: string): void {
    this.restarts.inc({ worker }, 0);
  }

  /**
   * Serve GET /metrics on 127.0.0.1 only: the fleet's health is nobody else's
   * business. `other` may take every other request (the dashboard).
   */
  async serve(
    port: number,
    other?: (request: IncomingMessage, response: ServerResponse) => boolean,
  ): Promise<{ url: string; origin: string; close: () => Promise<void> }> {
    const server: Server = nodeHttp.createServer((request, response) => {
      const url = new URL(request.url ?? "/", "http://localhost");
      if (url.pathname !== "/metrics" && other?.(request, response)) return;
      if (request.method !== "GET" || url.pathname !== "/metrics") {
        response.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (error: unknown) =>
          response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    const address = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${address.port}/metrics`,
      origin: `http://127.0.0.1:${address.port}`,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          // The dashboard's event streams never end by themselves.
          server.closeAllConnections();
        }),
    };
  }
}
