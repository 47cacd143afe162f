import { randomBytes } from "node:crypto";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { errorMessage, isOpenworkError, OpenworkError, oneLine } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { withLock } from "../locks/lock.js";
import type { Logger } from "../logging/logger.js";
import { identityOf, type ProcessIdentity } from "../processes/identity.js";
import { readRunLogs } from "../runs/logs.js";
import type { RunRegistry } from "../runs/registry.js";
import { loadWorkersConfig, sameWorker, type WorkerSpec, type WorkersConfig } from "./config.js";
import { DashboardAuth } from "./dashboard/codes.js";
import { Dashboard, type DashboardAction } from "./dashboard/server.js";
import { startWorkers, stopWorkers } from "./fleet.js";
import { readHolds, setHolds } from "./holds.js";
import { FleetMetrics } from "./metrics.js";
import { runsOfWorkers } from "./runs-of.js";
import {
  dashboardSecretFile,
  liveSupervisor,
  readSupervisorFile,
  removeSupervisorFile,
  type SupervisorFile,
  writeSupervisorFile,
} from "./state.js";
import { fromHeartbeat, type WorkerStatus } from "./status.js";
import { WorkerSlot } from "./worker-slot.js";

export interface SupervisorOptions {
  config: WorkersConfig;
  stateDir: string;
  registry: RunRegistry;
  log: Logger;
  /** 127.0.0.1 port for /metrics and the dashboard (0: any free one; null: neither) */
  metricsPort: number | null;
  /** SIGTERM/SIGINT: stop every worker within the file's stopTimeout, then return */
  signal: AbortSignal;
  extraLabels?: Record<string, string>;
}

/** A second supervisor for the same file. */
export class SupervisorRunningError extends OpenworkError {
  constructor(readonly existing: SupervisorFile) {
    super(`a supervisor (pid ${existing.pid}) already runs the workers of ${existing.configFile}`, {
      code: "supervisor_running",
      hint: "see it with `openwork workers status`; stop it with `openwork workers stop`",
    });
    this.name = "SupervisorRunningError";
  }
}

/**
 * `openwork workers run`: keep every worker of one workers.json healthy until
 * a signal. One per config file (the supervisor file, written under a lock,
 * names the live one); workers keep running when it dies, and the next one
 * adopts them. Resolves once every worker was stopped after the signal.
 */
export class Supervisor {
  private readonly slots = new Map<string, WorkerSlot>();
  private readonly metrics: FleetMetrics;
  private readonly stopping = new AbortController();
  private config: WorkersConfig;
  private configError: string | null = null;
  private identity: ProcessIdentity | undefined;
  private startedAt = new Date().toISOString();
  private metricsUrl: string | null = null;
  private dashboardUrl: string | null = null;
  /** workers with a dashboard action under way */
  private readonly acting = new Map<string, DashboardAction>();
  private reloading: Promise<void> = Promise.resolve();

  constructor(private readonly options: SupervisorOptions) {
    this.config = options.config;
    this.metrics = new FleetMetrics(() => [...this.slots.values()].map((slot) => slot.heartbeat()));
  }

  async run(): Promise<void> {
    const { stateDir, log } = this.options;
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    this.identity = identityOf(process.pid);
    if (!this.identity) throw new Error("cannot read this process's own identity");
    await this.claim();
    const closers: Array<() => Promise<void> | void> = [];
    try {
      if (this.options.metricsPort !== null) {
        const secret = randomBytes(32).toString("base64url");
        const secretFile = dashboardSecretFile(stateDir);
        await writeFileAtomic(secretFile, `${secret}\n`, { mode: 0o600 });
        closers.push(async () => {
          // Only our own: a successor may have written its own already.
          const current = (() => {
            try {
              return readFileSync(secretFile, "utf8").trim();
            } catch {
              return undefined;
            }
          })();
          if (current === secret) await rm(secretFile, { force: true });
        });
        const dashboard = new Dashboard(this.dashboardHost(), new DashboardAuth(), secret);
        const served = await this.metrics.serve(this.options.metricsPort, (request, response) =>
          dashboard.handle(request, response),
        );
        this.metricsUrl = served.url;
        this.dashboardUrl = served.origin;
        closers.push(served.close);
        log.info(
          { url: served.url, dashboard: served.origin },
          "serving Prometheus metrics and the dashboard",
        );
      }
      for (const spec of this.config.workers) this.add(spec);
      await this.writeHeartbeats();
      const beat = setInterval(() => {
        this.writeHeartbeats().catch((error: unknown) =>
          log.warn(`could not write the heartbeats: ${errorMessage(error)}`),
        );
      }, this.config.heartbeatIntervalMs);
      closers.push(() => clearInterval(beat));
      const watcher = this.watchConfig();
      if (watcher) closers.push(() => watcher.close());
      log.info(
        { config: this.config.file, workers: this.config.workers.length, pid: process.pid },
        "supervising the workers",
      );
      await new Promise<void>((resolve) => {
        if (this.options.signal.aborted) resolve();
        this.options.signal.addEventListener("abort", () => resolve(), { once: true });
      });
      await this.reloading;
      await this.shutdown();
    } finally {
      for (const close of closers.reverse()) await close();
      await removeSupervisorFile(stateDir, this.identity);
    }
  }

  /** Re-read workers.json (on change or SIGHUP): add, remove and replace what changed, nothing else. */
  reload(reason: string): Promise<void> {
    this.reloading = this.reloading.then(() => this.reloadNow(reason));
    return this.reloading;
  }

  private async reloadNow(reason: string): Promise<void> {
    if (this.options.signal.aborted) return;
    const { log } = this.options;
    let next: WorkersConfig;
    try {
      next = await loadWorkersConfig(this.config.file);
    } catch (error) {
      this.configError = isOpenworkError(error) ? error.message : errorMessage(error);
      log.error(
        `workers.json was not reloaded (${reason}); the workers keep their previous configuration: ${
          isOpenworkError(error) ? oneLine(error) : this.configError
        }`,
      );
      await this.writeHeartbeats();
      return;
    }
    this.configError = null;
    const wanted = new Map(next.workers.map((spec) => [spec.name, spec]));
    const removed = [...this.slots.values()].filter((slot) => !wanted.has(slot.name));
    const changed = next.workers.filter((spec) => {
      const slot = this.slots.get(spec.name);
      return slot !== undefined && !sameWorker(slot.spec, spec);
    });
    const added = next.workers.filter((spec) => !this.slots.has(spec.name));
    this.config = { ...next };
    for (const slot of removed) {
      await slot.end();
      await slot
        .stopRuntime(this.config.stopTimeoutMs)
        .catch((error: unknown) =>
          log.warn({ worker: slot.name }, `could not stop a removed worker: ${errorMessage(error)}`),
        );
      this.slots.delete(slot.name);
    }
    for (const spec of changed) {
      const slot = this.slots.get(spec.name);
      if (!slot) continue;
      await slot.end();
      // Another workspace, or disabled now: the old runtime goes; otherwise the new slot replaces it rolling.
      // A fixed port cannot be held by the old and the new runtime at once: that one is stopped first too.
      const fixedPort = slot.spec.start.port !== undefined || spec.start.port !== undefined;
      if (path.resolve(slot.spec.workspace) !== path.resolve(spec.workspace) || !spec.enabled || fixedPort)
        await slot.stopRuntime(this.config.stopTimeoutMs).catch(() => {});
      this.slots.delete(spec.name);
      this.add(spec);
    }
    for (const spec of added) this.add(spec);
    log.info(
      {
        added: added.map((spec) => spec.name),
        removed: removed.map((slot) => slot.name),
        changed: changed.map((spec) => spec.name),
      },
      `workers.json reloaded (${reason})`,
    );
    await this.writeHeartbeats();
  }

  private add(spec: WorkerSpec): void {
    const slot = new WorkerSlot(
      spec,
      {
        registry: this.options.registry,
        log: this.options.log,
        heartbeatIntervalMs: this.config.heartbeatIntervalMs,
        // Read at each look: `workers stop NAME` must win over a restart the next heartbeat would make.
        held: (name) => readHolds(this.options.stateDir).has(name),
        onRestart: (name) => this.metrics.restarted(name),
        onUpgrade: (name, outcome) => this.metrics.upgraded(name, outcome),
        ...(this.options.extraLabels ? { extraLabels: this.options.extraLabels } : {}),
      },
      this.stopping.signal,
    );
    this.metrics.known(spec.name);
    this.slots.set(spec.name, slot);
    slot.begin();
  }

  /** The fleet table's rows from this supervisor's own heartbeats. */
  rows(): WorkerStatus[] {
    const holds = readHolds(this.options.stateDir);
    return [...this.slots.values()].map((slot) =>
      fromHeartbeat(slot.spec, slot.heartbeat(), holds.has(slot.name)),
    );
  }

  private dashboardHost() {
    const { stateDir, registry, log } = this.options;
    return {
      rows: () => this.rows(),
      context: () => ({
        configFile: this.config.file,
        host: os.hostname(),
        node: process.version,
        pid: process.pid,
      }),
      heartbeatIntervalMs: () => this.config.heartbeatIntervalMs,
      act: async (name: string, action: DashboardAction) => {
        const slot = this.slots.get(name);
        if (!slot) return undefined;
        const busy = this.acting.get(name);
        if (busy) return { ok: false, message: `${name}: a ${busy} is already under way` };
        if (this.stopping.signal.aborted)
          return { ok: false, message: "the supervisor is stopping the fleet" };
        // What `workers stop NAME`, `start NAME` and `restart NAME` do, in this process.
        await setHolds(stateDir, [name], action === "stop");
        const work =
          action === "stop"
            ? stopWorkers({ workers: [slot.spec], registry, log, graceMs: 10_000 }).then(() => "stopped")
            : startWorkers({
                workers: [slot.spec],
                parallel: 1,
                registry,
                log,
                signal: this.stopping.signal,
                replace: action === "restart",
                ...(this.options.extraLabels ? { extraLabels: this.options.extraLabels } : {}),
              }).then(([result]) => {
                if (result?.outcome === "failed") throw new Error(result.reason ?? "failed");
                return `${result?.outcome ?? "done"} (run ${result?.runId ?? "-"})`;
              });
        this.acting.set(name, action);
        log.info({ worker: name, action }, "dashboard action");
        void work
          .then(
            (outcome) => log.info({ worker: name, action }, `dashboard ${action}: ${outcome}`),
            (error: unknown) =>
              log.warn({ worker: name, action }, `dashboard ${action} failed: ${errorMessage(error)}`),
          )
          .finally(() => this.acting.delete(name));
        return { ok: true, message: `${name}: ${action} begun` };
      },
      open: async (name: string) => {
        const slot = this.slots.get(name);
        if (!slot) return undefined;
        const runId = slot.currentRunId;
        if (!runId) return { ok: false as const, message: `${name} has no running runtime to open` };
        try {
          // The same link `openwork open RUN` prints: minted by the runtime's server with its host token.
          const { loginLink } = await import("../runs/open.js");
          const link = await loginLink(registry, log, { run: runId });
          return { ok: true as const, url: link.url, expiresAt: link.expiresAt };
        } catch (error) {
          return {
            ok: false as const,
            message: isOpenworkError(error) ? oneLine(error) : errorMessage(error),
          };
        }
      },
      logs: async (name: string, tail: number) => {
        const slot = this.slots.get(name);
        if (!slot) return undefined;
        const record = (await runsOfWorkers(registry, [slot.spec])).get(name);
        if (!record) return { lines: [], error: `${name} has never run` };
        const lines: string[] = [];
        try {
          await readRunLogs(record, { source: "runtime", tail }, (line) => lines.push(line));
          return { lines: lines.slice(-tail), error: null };
        } catch (error) {
          return { lines: [], error: isOpenworkError(error) ? oneLine(error) : errorMessage(error) };
        }
      },
    };
  }

  /** Stop every worker at once, each with what is left of the file's stopTimeout. */
  private async shutdown(): Promise<void> {
    const { log } = this.options;
    const deadline = Date.now() + this.config.stopTimeoutMs;
    log.info({ workers: this.slots.size }, "stopping every worker");
    this.stopping.abort();
    await this.writeHeartbeats(true);
    await Promise.all([...this.slots.values()].map((slot) => slot.end()));
    await Promise.all(
      [...this.slots.values()].map((slot) =>
        slot
          .stopRuntime(Math.max(1000, deadline - Date.now() - 2000))
          .catch((error: unknown) =>
            log.warn({ worker: slot.name }, `could not stop the worker: ${errorMessage(error)}`),
          ),
      ),
    );
    await this.writeHeartbeats(true);
    log.info("every worker stopped");
  }

  /** Take this fleet's supervisor file, unless a live supervisor holds it. */
  private async claim(): Promise<void> {
    const { stateDir } = this.options;
    await withLock(
      path.join(stateDir, "supervisor"),
      async () => {
        const existing = liveSupervisor(readSupervisorFile(stateDir));
        if (existing && existing.pid !== process.pid) throw new SupervisorRunningError(existing);
        await this.writeHeartbeats();
      },
      { waitMs: 30_000 },
    );
  }

  private async writeHeartbeats(stopping = this.stopping.signal.aborted): Promise<void> {
    if (!this.identity) return;
    await writeSupervisorFile(this.options.stateDir, {
      version: 1,
      pid: this.identity.pid,
      startTime: this.identity.startTime,
      configFile: this.config.file,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      metricsUrl: this.metricsUrl,
      dashboardUrl: this.dashboardUrl,
      configError: this.configError,
      stopping,
      workers: Object.fromEntries([...this.slots.values()].map((slot) => [slot.name, slot.heartbeat()])),
    });
  }

  /**
   * Editors replace files rather than write them in place, so the directory
   * is watched and events are matched by name; a burst becomes one reload.
   */
  private watchConfig(): FSWatcher | undefined {
    const file = this.config.file;
    let timer: NodeJS.Timeout | undefined;
    try {
      return watch(path.dirname(file), (_event, name) => {
        if (name !== null && name !== path.basename(file)) return;
        clearTimeout(timer);
        timer = setTimeout(() => void this.reload("the file changed"), 300);
      });
    } catch (error) {
      this.options.log.warn(
        `cannot watch ${file} for changes (${errorMessage(error)}); send SIGHUP to reload it`,
      );
      return undefined;
    }
  }
}
