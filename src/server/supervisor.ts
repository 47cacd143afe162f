import type { Logger } from "pino";
import type { COMPONENT_EVENTS, ComponentStatus, ComponentSummary } from "../contract/api.js";
import { errorMessage, StartFailedError } from "../errors/errors.js";
import { pidState } from "../processes/inspect.js";
import {
  backoffDelay,
  done,
  nextAttemptTimeout,
  notYet,
  pollUntil,
  WaitTimeoutError,
  type Wakeup,
} from "../retry/poll.js";
import { LogTail } from "./logtail.js";
import { countComponent, countRestart, observeProbe } from "./metrics.js";
import {
  type ExitInfo,
  exitOf,
  isRunning,
  type ProcHandle,
  type SpawnSpec,
  spawnComponent,
  terminate,
} from "./proc.js";

export type ComponentName = "opencode" | "opencode-router";
export type { ComponentStatus };

/** What one health probe of a component found. */
export interface HealthProbe {
  ok: boolean;
  version?: string | undefined;
  detail: string;
  /** the attempt ran out of time (as opposed to a refusal or a bad answer) */
  timedOut?: boolean | undefined;
}

/** What the supervisor needs to know about one component: how to start it and how to ask it whether it is well. */
export interface ComponentDefinition {
  name: ComponentName;
  runtimeId: string;
  /** the version runtime.json pins (a started process must report it) */
  pinnedVersion: string | undefined;
  /** the URL clients see in the summary (engine base URL, router health URL) */
  url: string;
  port: number;
  logFile: string;
  launch(): SpawnSpec;
  probe(timeoutMs: number): Promise<HealthProbe>;
}

export interface SupervisionPolicy {
  /** how often a pid is checked (cheap: one /proc read) */
  pidPollMs: number;
  /** how often the HTTP liveness probe runs */
  probeIntervalMs: number;
  probeTimeoutMs: number;
  /** consecutive failed probes before a running process is declared hung and restarted */
  failureThreshold: number;
  /** how long a (re)started process has to become healthy */
  startDeadlineMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** restarts allowed inside `windowMs`; past it the component cools down, then the budget is renewed */
  budget: number;
  windowMs: number;
  cooldownMs: number;
  stopGraceMs: number;
  /** a component's log file is rotated past this size */
  logMaxBytes: number;
}

export function defaultPolicy(startDeadlineMs: number, logMaxBytes = 10 * 1024 * 1024): SupervisionPolicy {
  return {
    pidPollMs: 200,
    probeIntervalMs: 2000,
    probeTimeoutMs: 2000,
    failureThreshold: 3,
    startDeadlineMs,
    backoffBaseMs: 200,
    backoffMaxMs: 15_000,
    budget: 5,
    windowMs: 5 * 60_000,
    cooldownMs: 60_000,
    stopGraceMs: 5000,
    logMaxBytes,
  };
}

export interface ComponentEvent {
  at: string;
  type: (typeof COMPONENT_EVENTS)[number];
  detail: string;
}

export interface LastExit extends ExitInfo {
  pid: number;
  reason: string;
}

/**
 * One supervised component. Liveness is the pid (alive and not a zombie) and
 * an HTTP probe on an interval; a dead or hung process is restarted with
 * exponential backoff and jitter inside a budget, and after the budget is
 * spent the component cools down and is tried again (never a permanent stop).
 * Everything it knows is read through getters: only its own code changes it.
 */
export class Supervised {
  #status: ComponentStatus = "starting";
  #version: string | undefined;
  #lastExit: LastExit | undefined;
  #lastProbe: { at: string; ok: boolean; detail: string } | undefined;
  #restartsTotal = 0;
  #cooldownUntil: number | undefined;
  #handle: ProcHandle;
  private restartTimes: number[] = [];
  private consecutiveFailures = 0;
  private readonly events: ComponentEvent[] = [];
  private pidTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private restarting = false;
  private watching = false;
  private probing = false;
  private deadSince: number | undefined;
  readonly tail: LogTail;

  constructor(
    readonly definition: ComponentDefinition,
    handle: ProcHandle,
    private readonly policy: SupervisionPolicy,
    private readonly log: Logger,
    tail?: LogTail,
  ) {
    this.#handle = handle;
    this.tail = tail ?? new LogTail(definition.logFile, { rotateBytes: policy.logMaxBytes }).start();
    this.event(handle.adopted ? "adopted" : "started", `pid ${handle.pid}`);
    countComponent(definition.name);
  }

  /** Spawn a new process for `definition` (not yet watched). */
  static spawn(
    definition: ComponentDefinition,
    policy: SupervisionPolicy,
    log: Logger,
    tail?: LogTail,
  ): Supervised {
    return new Supervised(definition, spawnComponent(definition.launch()), policy, log, tail);
  }

  get name(): ComponentName {
    return this.definition.name;
  }

  get status(): ComponentStatus {
    return this.#status;
  }

  /** what the running process reported in its last healthy answer; undefined until it has answered */
  get version(): string | undefined {
    return this.#version;
  }

  get handle(): ProcHandle {
    return this.#handle;
  }

  /**
   * Probe until the process answers healthy (and reports the pinned version),
   * it exits, or the deadline passes. Throws with the reason and its last output.
   */
  async waitHealthy(
    deadlineMs = this.policy.startDeadlineMs,
    /** between probes; a start that someone waits on (the runtime's first) asks more often */
    intervalMs = 100,
    /** events that bring the next probe forward (see pollUntil): `intervalMs` is then the fallback */
    wake?: Wakeup,
  ): Promise<HealthProbe> {
    let attemptMs: number | undefined;
    let timedOut = false;
    try {
      const healthy = await pollUntil<HealthProbe>(
        async ({ remainingMs }) => {
          if (!isRunning(this.#handle)) {
            const exit = await exitOf(this.#handle);
            await this.tail.poll();
            throw new StartFailedError(
              `${this.name} (pid ${this.#handle.pid}) exited before it was healthy${describeExit(exit, this.#handle.adopted)}`,
              this.name,
              this.tail.recent(10),
            );
          }
          attemptMs = nextAttemptTimeout(attemptMs, timedOut, this.policy.probeTimeoutMs);
          const probe = await this.probe(Math.min(attemptMs, Math.max(200, remainingMs)));
          this.recordProbe(probe);
          timedOut = probe.timedOut === true;
          return probe.ok ? done(probe) : notYet(probe.detail);
        },
        { what: `${this.name} to be healthy`, pace: { intervalMs }, deadlineMs, wake },
      );
      // What the process says about itself is its version, whether or not it matches the pin.
      if (healthy.version !== undefined) this.#version = healthy.version;
      const pinned = this.definition.pinnedVersion;
      if (pinned !== undefined && healthy.version !== undefined && healthy.version !== pinned) {
        throw new StartFailedError(
          `${this.name} reports version ${healthy.version}, runtime.json pins ${pinned}`,
          this.name,
          [],
          { code: "wrong_version" },
        );
      }
      this.#status = "healthy";
      this.event("healthy", healthy.version ? `version ${healthy.version}` : healthy.detail);
      return healthy;
    } catch (error) {
      if (!(error instanceof WaitTimeoutError)) throw error;
      await this.tail.poll();
      throw new StartFailedError(
        `${this.name} (pid ${this.#handle.pid}) was not healthy within ${deadlineMs} ms: ${error.lastReason ?? "no answer"}`,
        this.name,
        this.tail.recent(10),
        { code: "health_timeout" },
      );
    }
  }

  /** One health probe, timed (the probe duration histogram of /system/metrics); every probe goes through here. */
  async probe(timeoutMs: number): Promise<HealthProbe> {
    const started = performance.now();
    let ok = false;
    try {
      const result = await this.definition.probe(timeoutMs);
      ok = result.ok;
      return result;
    } finally {
      observeProbe(this.name, ok, (performance.now() - started) / 1000);
    }
  }

  /** Start watching: pid polling and the liveness probe. */
  watch(): void {
    if (this.watching) return;
    this.watching = true;
    this.pidTimer = setInterval(() => this.checkPid(), this.policy.pidPollMs);
    this.probeTimer = setInterval(() => void this.liveness(), this.policy.probeIntervalMs);
    this.pidTimer.unref();
    this.probeTimer.unref();
  }

  /** Stop watching without touching the process (it is handed to another supervisor or about to be retired). */
  unwatch(): void {
    this.watching = false;
    clearInterval(this.pidTimer);
    clearInterval(this.probeTimer);
    clearTimeout(this.restartTimer);
  }

  /** Stop watching and end the process: SIGTERM, deadline, SIGKILL. */
  async stop(reason: string): Promise<void> {
    this.unwatch();
    const how = await terminate(this.#handle, this.policy.stopGraceMs);
    this.#status = "stopped";
    this.event("stopped", `${reason} (${how})`);
    // The tail is not stopped here: after an upgrade the next process of this component shares it.
    await this.tail.poll();
  }

  private checkPid(): void {
    if (!this.watching || this.restarting) return;
    if (this.#handle.exited) {
      this.onDeath();
      return;
    }
    if (pidState(this.#handle.pid) === "alive") {
      this.deadSince = undefined;
      return;
    }
    // Our own child: its exit status is about to arrive; wait for it (briefly) so lastExit carries it.
    this.deadSince ??= Date.now();
    if (this.#handle.adopted || Date.now() - this.deadSince > 1000) this.onDeath();
  }

  private async liveness(): Promise<void> {
    if (!this.watching || this.restarting || this.probing) return;
    this.probing = true;
    try {
      const result = await this.probe(this.policy.probeTimeoutMs);
      if (!this.watching || this.restarting) return;
      this.recordProbe(result);
      if (result.ok) {
        this.consecutiveFailures = 0;
        if (result.version) this.#version = result.version;
        if (this.#status !== "healthy") this.event("healthy", result.detail);
        this.#status = "healthy";
        return;
      }
      this.consecutiveFailures++;
      this.#status = "unhealthy";
      if (this.consecutiveFailures >= this.policy.failureThreshold && isRunning(this.#handle)) {
        this.event("hung", `${this.consecutiveFailures} failed probes: ${result.detail}`);
        this.log.warn(
          { component: this.name, pid: this.#handle.pid },
          "liveness probe failed repeatedly; restarting",
        );
        this.scheduleRestart(`hung: ${result.detail}`, true);
      }
    } finally {
      this.probing = false;
    }
  }

  private onDeath(): void {
    this.deadSince = undefined;
    const exited = this.#handle.exited;
    this.#lastExit = {
      pid: this.#handle.pid,
      code: exited?.code ?? null,
      signal: exited?.signal ?? null,
      at: exited?.at ?? new Date().toISOString(),
      statusKnown: exited?.statusKnown ?? false,
      reason: `exited unexpectedly${describeExit(exited, this.#handle.adopted)}`,
    };
    this.event("exited", this.#lastExit.reason);
    this.log.warn({ component: this.name, pid: this.#handle.pid, exit: this.#lastExit }, "component exited");
    this.scheduleRestart(this.#lastExit.reason, false);
  }

  private scheduleRestart(reason: string, killFirst: boolean): void {
    this.restarting = true;
    this.#status = "restarting";
    const now = Date.now();
    this.restartTimes = this.restartTimes.filter((at) => now - at < this.policy.windowMs);
    let delay: number;
    if (this.restartTimes.length >= this.policy.budget) {
      delay = this.policy.cooldownMs;
      this.#status = "cooldown";
      this.#cooldownUntil = now + delay;
      this.restartTimes = [];
      this.event(
        "cooldown",
        `restart budget of ${this.policy.budget} per ${this.policy.windowMs} ms spent; next try in ${delay} ms`,
      );
    } else {
      delay = backoffDelay(this.restartTimes.length, {
        baseMs: this.policy.backoffBaseMs,
        maxMs: this.policy.backoffMaxMs,
      });
      this.event("restart-scheduled", `${reason}; restarting in ${delay} ms`);
    }
    this.restartTimer = setTimeout(() => void this.restart(killFirst), delay);
    this.restartTimer.unref();
  }

  private async restart(killFirst: boolean): Promise<void> {
    if (!this.watching) return;
    if (killFirst) await terminate(this.#handle, this.policy.stopGraceMs);
    // stop() may have run while the old process was being terminated: start nothing then.
    if (!this.watching) return;
    this.#cooldownUntil = undefined;
    this.restartTimes.push(Date.now());
    this.#restartsTotal++;
    countRestart(this.name);
    this.#status = "starting";
    try {
      this.#handle = spawnComponent(this.definition.launch());
      this.event("started", `pid ${this.#handle.pid} (restart ${this.#restartsTotal})`);
      this.log.info({ component: this.name, pid: this.#handle.pid }, "component restarted");
      await this.waitHealthy();
      this.consecutiveFailures = 0;
      this.restarting = false;
    } catch (error) {
      this.event("start-failed", errorMessage(error));
      this.log.error({ component: this.name, err: error }, "restart failed");
      if (!this.watching) return;
      await terminate(this.#handle, this.policy.stopGraceMs);
      this.scheduleRestart(errorMessage(error), false);
    }
  }

  private recordProbe(result: HealthProbe): void {
    this.#lastProbe = { at: new Date().toISOString(), ok: result.ok, detail: result.detail };
  }

  private event(type: ComponentEvent["type"], detail: string): void {
    this.events.push({ at: new Date().toISOString(), type, detail });
    if (this.events.length > 50) this.events.splice(0, this.events.length - 50);
  }

  summary(): ComponentSummary {
    return {
      status: this.#status,
      pid: this.#handle.pid,
      adopted: this.#handle.adopted,
      startedAt: this.#handle.startedAt,
      url: this.definition.url,
      runtimeId: this.definition.runtimeId,
      version: this.#version ?? null,
      pinnedVersion: this.definition.pinnedVersion ?? null,
      lastExit: this.#lastExit ?? null,
      lastProbe: this.#lastProbe ?? null,
      restarts: {
        total: this.#restartsTotal,
        inWindow: this.restartTimes.length,
        budget: this.policy.budget,
        windowMs: this.policy.windowMs,
        cooldownUntil: this.#cooldownUntil ? new Date(this.#cooldownUntil).toISOString() : null,
      },
      events: [...this.events],
      log: { file: this.definition.logFile, rotations: this.tail.rotations },
      recentOutput: this.tail.recent(50),
    };
  }
}

function describeExit(exit: ExitInfo | undefined, adopted = true): string {
  if (!exit) return adopted ? " (adopted, not our child: exit status unknown)" : " (exit status unknown)";
  if (!exit.statusKnown) return " (exit status unknown)";
  return exit.signal ? ` (signal ${exit.signal})` : ` (exit code ${exit.code})`;
}
