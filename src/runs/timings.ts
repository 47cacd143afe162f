import type { Logger } from "../logging/logger.js";

/**
 * The phases of a start, in the order they begin. Some overlap on purpose:
 * the image check and the sandbox's creation run while the sidecars are
 * staged, and the server boots while the engine does; each phase is timed on
 * its own, so their sum can exceed the total.
 */
export const START_PHASES = [
  /** the process started → the start command runs (Node, loading the CLI, parsing) */
  "cliReady",
  /** checking the request: workspace, substrate, mounts, credentials */
  "validate",
  /** the workspace lock and reconciling its recorded runs */
  "reconcile",
  /** manifest and sources → the runtime's sidecars, verified (the runtime id) */
  "resolve",
  /** hard links into the workspace's runtimes, verified again, versions checked */
  "stage",
  /** the sandbox image found (or built) */
  "image",
  /** the sandbox created (for Docker: while staging runs) */
  "create",
  /** a remote engine's volumes made and the workspace uploaded to them (while staging runs) */
  "volumes",
  /** the staged runtime, entrypoint and imports copied to a remote engine (src/shipping) */
  "ship",
  /** the sandbox started, or the host processes spawned */
  "launch",
  /** Swarm: the service's task placed on a node and running (its address is the URL's) */
  "place",
  /** an ssh:// engine: the SSH tunnel to the published port open */
  "tunnel",
  /** launched → the runtime server answers and proves it is this run's */
  "serverHealthy",
  /** launched → the engine answers healthy (as the runtime server saw it) */
  "engineHealthy",
  /** launched → the runtime is ready (engine, router, server) as this process learned it */
  "ready",
  /** owner token, versions and the run record written */
  "recorded",
] as const;
export type StartPhase = (typeof START_PHASES)[number];

/** ms per phase, and in all (process start → recorded); a phase a start did not need is absent. */
export type StartTimings = Partial<Record<StartPhase, number>> & { total: number };

/**
 * Times a start's phases against the process's own clock (performance.now()
 * is ms since the process started), logging each at debug level as it ends.
 */
export class PhaseTimer {
  private readonly phases = new Map<StartPhase, number>();

  constructor(private readonly log?: Logger) {
    // The CLI is ready when the first phase is timed: everything before was Node and our own loading.
    this.phases.set("cliReady", round(performance.now()));
  }

  /** Time `work` as `phase` (its duration, whether it succeeds or throws). */
  async time<T>(phase: StartPhase, work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.record(phase, performance.now() - started);
    }
  }

  /** A phase measured elsewhere (e.g. from another process's timestamp). */
  record(phase: StartPhase, ms: number): void {
    const value = round(Math.max(0, ms));
    this.phases.set(phase, value);
    this.log?.debug({ phase, ms: value, at: round(performance.now()) }, `start phase ${phase}: ${value} ms`);
  }

  toJSON(): StartTimings {
    const out: Partial<Record<StartPhase, number>> = {};
    for (const phase of START_PHASES) {
      const value = this.phases.get(phase);
      if (value !== undefined) out[phase] = value;
    }
    return { ...out, total: round(performance.now()) };
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
