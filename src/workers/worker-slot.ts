import { realpath } from "node:fs/promises";
import path from "node:path";
import { errorMessage, isOpenworkError, oneLine } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { reconcileWorkspace, stopRun } from "../runs/reconcile.js";
import { placeOf, type RunRecord } from "../runs/record.js";
import { RunRegistry } from "../runs/registry.js";
import { startRun, workspaceIdOf } from "../runs/start.js";
import { describeRun } from "../runs/status.js";
import type { WorkerSpec } from "./config.js";
import { startOptionsFor } from "./options.js";
import { decideRestart, emptyLedger, memoryVerdict, type RestartLedger } from "./policy.js";
import type { WorkerHeartbeat, WorkerState } from "./state.js";
import { cpuShare, sampleUsage, type UsageSample } from "./usage.js";

export interface SlotContext {
  registry: RunRegistry;
  log: Logger;
  heartbeatIntervalMs: number;
  /** is the worker held stopped by `workers stop NAME` */
  held: (name: string) => boolean;
  extraLabels?: Record<string, string>;
  /** what happened, for the metrics */
  onRestart?: (name: string) => void;
  onUpgrade?: (name: string, outcome: string) => void;
  now?: () => number;
}

/** How long a server that answers may report an unhealthy component before the run is replaced. */
const DEGRADED_GRACE_MS = 90_000;
/** Heartbeats in a row without an answer from the server before the run counts as gone. */
const UNREACHABLE_LIMIT = 2;

/**
 * One worker under supervision: a loop that finds its run, checks it, and
 * starts it again when it is gone — with the restart policy's backoff, and
 * into `failed` when it keeps failing. Everything it knows is in `heartbeat()`.
 */
export class WorkerSlot {
  private state: WorkerState = "starting";
  private runId: string | null = null;
  private sandbox: string | null = null;
  private node: string | null = null;
  private url: string | null = null;
  private healthy = false;
  private versions: WorkerHeartbeat["versions"] = null;
  private lastHealthyAt: number | null = null;
  private upSince: number | null = null;
  private lastStartMs: number | null = null;
  private lastError: string | null = null;
  private nextAttemptAt: number | null = null;
  private heartbeatAt = Date.now();
  private memoryBytes: number | null = null;
  private cpu: number | null = null;
  private components: Record<string, string> = {};
  private upgrades: Record<string, number> = {};
  private lastUpgradeSeen: string | null | undefined = undefined;
  private ledger: RestartLedger = emptyLedger();
  private memoryAboveSince: number | null = null;
  private degradedSince: number | null = null;
  private unreachable = 0;
  private usage: UsageSample | null = null;
  private readonly controller = new AbortController();
  private loop: Promise<void> | undefined;
  /** set by wake(): the next sleep ends at once */
  private wakeUp: (() => void) | undefined;

  constructor(
    public spec: WorkerSpec,
    private readonly context: SlotContext,
    private readonly stopping: AbortSignal,
  ) {}

  private get now(): number {
    return (this.context.now ?? Date.now)();
  }

  private get log(): Logger {
    return this.context.log.child({ worker: this.spec.name });
  }

  get name(): string {
    return this.spec.name;
  }

  /** The run this worker has now, if any (for shutdown and metrics). */
  get currentRunId(): string | null {
    return this.runId;
  }

  begin(): void {
    this.loop ??= this.run().catch((error: unknown) => {
      this.lastError = `the supervisor's loop for this worker failed: ${errorMessage(error)}`;
      this.state = "failed";
      this.log.error(this.lastError);
    });
  }

  /** End the loop (a start in progress is interrupted and undone by startRun itself). */
  async end(): Promise<void> {
    this.controller.abort();
    this.wakeUp?.();
    await this.loop;
  }

  /** Check now instead of at the next heartbeat (a hold was lifted, SIGHUP). */
  wake(): void {
    this.wakeUp?.();
  }

  heartbeat(): WorkerHeartbeat {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      name: this.spec.name,
      state: this.spec.enabled ? this.state : "disabled",
      runId: this.runId,
      sandbox: this.sandbox ?? this.spec.start.sandbox ?? "none",
      node: this.runId === null ? null : this.node,
      url: this.runId === null ? null : this.url,
      healthy: this.runId !== null && this.healthy,
      versions: this.versions,
      // A start in progress is the loop at work, not a stuck one (the supervisor's own updatedAt says that).
      heartbeatAt: new Date(this.state === "starting" ? this.now : this.heartbeatAt).toISOString(),
      lastHealthyAt: iso(this.lastHealthyAt),
      upSince: iso(this.upSince),
      lastStartMs: this.lastStartMs,
      restarts: this.ledger.total,
      restartsInWindow: this.ledger.recent.filter((at) => this.now - at < this.spec.restart.windowMs).length,
      lastError: this.lastError,
      nextAttemptAt: iso(this.nextAttemptAt),
      memoryBytes: this.memoryBytes,
      cpu: this.cpu,
      components: this.components,
      upgrades: this.upgrades,
    };
  }

  private get signal(): AbortSignal {
    return AbortSignal.any([this.controller.signal, this.stopping]);
  }

  private async pause(ms: number): Promise<void> {
    if (this.signal.aborted) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      const onAbort = () => done();
      this.signal.addEventListener("abort", onAbort, { once: true });
      this.wakeUp = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    }).finally(() => {
      this.wakeUp = undefined;
    });
  }

  private async run(): Promise<void> {
    // The first look adopts a runtime already running (a previous supervisor's, or one started by hand).
    let first = true;
    while (!this.signal.aborted) {
      await this.check(first);
      first = false;
      this.heartbeatAt = this.now;
      const untilAttempt =
        this.nextAttemptAt === null ? Number.POSITIVE_INFINITY : this.nextAttemptAt - this.now;
      await this.pause(Math.max(0, Math.min(this.context.heartbeatIntervalMs, untilAttempt)));
    }
  }

  private async workspace(): Promise<string> {
    return realpath(this.spec.workspace).catch(() => path.resolve(this.spec.workspace));
  }

  private async liveRun(): Promise<RunRecord | undefined> {
    const id = await workspaceIdOf(startOptionsFor(this.spec, this.context)).catch(async () =>
      RunRegistry.workspaceId(await this.workspace()),
    );
    const { live } = await reconcileWorkspace(this.context.registry, id, this.log);
    return live.find((record) => record.state === "running") ?? live[0];
  }

  private async check(first: boolean): Promise<void> {
    if (!this.spec.enabled) return;
    if (this.context.held(this.spec.name)) {
      // Stopped by hand: nothing to count when it is released, just a start.
      this.state = "stopped";
      this.nextAttemptAt = null;
      this.runId = null;
      this.upSince = null;
      this.components = {};
      return;
    }
    const record = await this.liveRun();
    if (this.state === "failed" || this.state === "stopped") {
      // Left alone — unless someone started it again by hand (or the hold was lifted: below).
      if (record?.state === "running" && (await this.observe(record))) {
        this.log.info({ runId: record.runId }, "the worker's runtime runs again; supervising it");
        this.ledger = emptyLedger();
        this.lastError = null;
        return;
      }
      if (this.state === "failed") return;
    }
    if (record?.state === "starting") {
      this.state = "starting";
      return;
    }
    if (record?.state === "running") {
      if (first) {
        // Adopt it through start itself: it hands back a healthy run and says when the file asks for another.
        await this.start("adopt");
        return;
      }
      const healthy = await this.observe(record);
      if (healthy) return this.checkMemory(record);
      if (this.state === "degraded" && this.degradedSince !== null) {
        if (this.now - this.degradedSince < DEGRADED_GRACE_MS) return;
        this.lastError = `a component stayed unhealthy for ${DEGRADED_GRACE_MS / 1000}s: ${this.describeComponents()}`;
      } else if (this.unreachable < UNREACHABLE_LIMIT) {
        return;
      }
      this.log.warn(
        { runId: record.runId },
        `${this.lastError ?? "its runtime is not healthy"}; replacing it`,
      );
      await stopRun(this.context.registry, record, this.log, 10_000).catch(() => {});
      return this.afterLoss();
    }
    // No live run.
    if (this.runId !== null && this.state !== "backoff") {
      const gone = await this.context.registry.read(this.runId);
      this.lastError = gone?.reason ?? "its runtime is gone";
      this.log.warn({ runId: this.runId }, `the worker's runtime is gone: ${this.lastError}`);
      return this.afterLoss();
    }
    if (this.nextAttemptAt !== null && this.now < this.nextAttemptAt) return;
    await this.start(
      this.runId === null && this.ledger.total === 0 && this.lastError === null ? "first" : "restart",
    );
  }

  /** Look at a running run through its server; true when it and every component are healthy. */
  private async observe(record: RunRecord): Promise<boolean> {
    const status = await describeRun(this.context.registry, record);
    this.runId = record.runId;
    this.sandbox = record.sandbox;
    this.node = placeOf(record, status.local.where);
    this.url = record.url ?? null;
    this.healthy = status.healthy;
    this.versions = status.versions;
    const summary = status.runtime.summary;
    if (summary) {
      this.unreachable = 0;
      this.components = Object.fromEntries(
        Object.entries(summary.components).map(([name, component]) => [name, component.status]),
      );
      this.noteUpgrade(summary.upgrade.last);
    } else {
      this.unreachable++;
      this.components = {};
    }
    if (status.healthy) {
      this.state = "running";
      this.lastHealthyAt = this.now;
      this.upSince ??= record.startedAt ? Date.parse(record.startedAt) : this.now;
      this.degradedSince = null;
      this.nextAttemptAt = null;
      return true;
    }
    if (summary) {
      if (this.state !== "degraded") this.degradedSince = this.now;
      this.state = "degraded";
      this.lastError = `not healthy: ${this.describeComponents()}`;
    } else {
      this.lastError = `its server does not answer (${status.runtime.error ?? status.local.sandbox})`;
    }
    return false;
  }

  private noteUpgrade(last: { operationId: string; state: string } | null): void {
    const id = last && last.state !== "running" ? last.operationId : null;
    // The first look only learns what was there before this supervisor.
    if (this.lastUpgradeSeen !== undefined && id !== null && id !== this.lastUpgradeSeen && last) {
      this.upgrades[last.state] = (this.upgrades[last.state] ?? 0) + 1;
      this.context.onUpgrade?.(this.spec.name, last.state);
    }
    if (id !== null || this.lastUpgradeSeen === undefined) this.lastUpgradeSeen = id;
  }

  private describeComponents(): string {
    return Object.entries(this.components)
      .map(([name, status]) => `${name} ${status}`)
      .join(", ");
  }

  private async checkMemory(record: RunRecord): Promise<void> {
    const sample = await sampleUsage(record);
    this.cpu = cpuShare(this.usage, sample);
    this.usage = sample;
    this.memoryBytes = sample?.memoryBytes ?? null;
    const verdict = memoryVerdict(this.spec.restart, this.memoryBytes, this.memoryAboveSince, this.now);
    this.memoryAboveSince = verdict.aboveSince;
    if (!verdict.restart) return;
    this.lastError = `memory ${this.memoryBytes} bytes stayed above maxMemory ${this.spec.restart.maxMemoryBytes} for ${this.spec.restart.maxMemoryForMs / 1000}s`;
    this.log.warn({ runId: record.runId }, `${this.lastError}; restarting it`);
    this.memoryAboveSince = null;
    await stopRun(this.context.registry, record, this.log, 10_000).catch(() => {});
    await this.afterLoss();
  }

  /** The run ended or was replaced: count it, then wait out the backoff (or give up). */
  private async afterLoss(): Promise<void> {
    this.healthy = false;
    const upFor = this.upSince === null ? 0 : this.now - this.upSince;
    this.upSince = null;
    this.memoryBytes = null;
    this.cpu = null;
    this.usage = null;
    this.components = {};
    this.degradedSince = null;
    this.unreachable = 0;
    const decision = decideRestart(this.spec.restart, this.ledger, this.now, upFor);
    this.ledger = decision.ledger;
    if (decision.kind === "give-up") {
      this.state = "failed";
      this.nextAttemptAt = null;
      this.lastError = `${decision.reason}; last error: ${this.lastError ?? "unknown"}`;
      this.log.error(`worker failed: ${this.lastError}`);
      return;
    }
    this.context.onRestart?.(this.spec.name);
    this.state = "backoff";
    this.nextAttemptAt = this.now + decision.delayMs;
    this.log.info({ delayMs: decision.delayMs }, "starting the worker again after its backoff");
  }

  private async start(why: "first" | "adopt" | "restart" | "replace"): Promise<void> {
    this.state = "starting";
    this.nextAttemptAt = null;
    const began = this.now;
    try {
      const options = startOptionsFor(this.spec, {
        registry: this.context.registry,
        log: this.context.log,
        signal: this.signal,
        replace: why === "replace",
        ...(this.context.extraLabels ? { extraLabels: this.context.extraLabels } : {}),
      });
      const result = await startRun(options);
      this.runId = result.record.runId;
      if (!result.reused) this.lastStartMs = this.now - began;
      this.state = "running";
      this.lastHealthyAt = this.now;
      this.upSince =
        result.reused && result.record.startedAt ? Date.parse(result.record.startedAt) : this.now;
      if (!result.reused) this.lastError = null;
      this.log.info(
        { runId: this.runId, reused: result.reused },
        result.reused ? "adopted the running runtime" : "worker started",
      );
      if (await this.observe(result.record)) await this.checkMemory(result.record);
    } catch (error) {
      if (this.signal.aborted) return;
      if (isOpenworkError(error) && error.code === "options_differ" && why === "adopt") {
        this.log.info(
          "the running runtime was started with other options than workers.json says; replacing it",
        );
        if (this.spec.start.port !== undefined) {
          // A fixed port cannot be held by two runtimes: stop the old one, then start (not rolling).
          const current = await this.liveRun();
          if (current) await stopRun(this.context.registry, current, this.log).catch(() => {});
          return this.start("first");
        }
        return this.start("replace");
      }
      this.lastError = isOpenworkError(error) ? oneLine(error) : errorMessage(error);
      this.log.warn(`the worker did not start: ${this.lastError}`);
      this.runId = null;
      await this.afterLoss();
    }
  }

  /** Stop this worker's runtime (removal from the file, shutdown). */
  async stopRuntime(graceMs: number): Promise<void> {
    const record = (await this.liveRun().catch(() => undefined)) ?? undefined;
    this.state = "stopped";
    this.nextAttemptAt = null;
    if (!record) return;
    await stopRun(this.context.registry, record, this.log, graceMs);
  }
}
