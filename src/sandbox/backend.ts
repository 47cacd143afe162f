/**
 * The one interface every substrate implements (host process group, Docker
 * container, Apple container VM): small on purpose, like testcontainers'
 * container-runtime client. Plain data in, plain data out; no backend keeps
 * state between calls, so any process (a later `status` or `stop`) can drive
 * a sandbox that another process launched.
 */
import { UsageError } from "../errors/errors.js";
import type { ValidatedMount } from "../mounts/types.js";
import type { SandboxLimits } from "./limits.js";

export type { ValidatedMount };
export type SandboxKind = "none" | "docker" | "container" | "swarm";

export interface LaunchSpec {
  runId: string;
  /** ignored by the host backend */
  image: string;
  /** host real path, mounted at /workspace */
  workspace: string;
  /** host directory, mounted at /persist (read-write: the sandbox's own state) */
  persistDir: string;
  /** host directory of staged runtimes, mounted read-only at /runtimes (ignored by the host backend) */
  runtimesDir: string;
  /** this start's imports (the user's opencode config, logins, CA bundle), read-only at /import in a sandbox */
  imports?: string | undefined;
  /** validated by src/mounts, mounted at /workspace/extra/<sub> */
  mounts: ValidatedMount[];
  /** e.g. ["sh", "/runtimes/<id>/entrypoint.sh"] */
  command: string[];
  /** includes secrets: never logged, never put on a command line */
  env: Record<string, string>;
  /** hostIp is "127.0.0.1" unless remote access was asked for */
  ports: Array<{ container: number; host: number; hostIp: string }>;
  /** openwork.run, openwork.workspace, openwork.runtime (+ test labels) */
  labels: Record<string, string>;
  /** "uid:gid" (never root in a sandbox: src/sandbox/user.ts) */
  user?: string;
  /** CPU, memory and process limits (default: defaultLimits()); ignored by the host backend */
  limits?: SandboxLimits;
  /** host backend: where stdout/stderr go */
  logFile?: string;
  /**
   * The Docker backend on an engine that does not share this machine's files: named volumes stand
   * in for `persistDir`, `runtimesDir` and the workspace (src/shipping fills them through the API);
   * no path of this machine is bound, and `imports` and `mounts` must be empty.
   */
  storage?: ShippedStorage | undefined;
  /** the Swarm backend's service settings (the runtime is baked into `image`) */
  swarm?: SwarmLaunch | undefined;
}

/** What a Swarm service needs beyond a Docker container's settings. */
export interface SwarmLaunch {
  /** Swarm's own placement constraints (e.g. node.hostname==owsw2) */
  constraints: string[];
  /** the runtime's Node inside the image, which runs the health check */
  nodeBinary: string;
  /** the run's imports, as Swarm secrets mounted at their targets */
  secrets: Array<{ id: string; name: string; target: string }>;
  uid: number;
  gid: number;
}

/** Where a shipped run's files live on its engine. */
export interface ShippedStorage {
  /** the workspace's state, read-write at /persist */
  persistVolume: string;
  /** this engine's staged runtimes (content-addressed), read-only at /runtimes; none on Swarm (baked in) */
  runtimesVolume?: string | undefined;
  /** a volume seeded from a local directory, or a directory on the engine's host */
  workspace: { type: "volume" | "bind"; source: string };
}

export interface SandboxHandle {
  kind: SandboxKind;
  /** container id/name, or the host process group's pid */
  id: string;
  /** the Docker endpoint it lives on (absent: the one DOCKER_HOST or the docker context names) */
  engine?: string | undefined;
  /** resolves with the exit code when the sandbox's main process ends (only in the launching process) */
  exited?: Promise<number>;
}

/** A sandbox that exists but has not started (SandboxBackend.create); starting it gives the handle. */
export interface CreatedSandbox {
  kind: SandboxKind;
  id: string;
  start(): Promise<SandboxHandle>;
}

export interface SandboxStatus {
  state: "running" | "exited" | "missing";
  exitCode?: number;
  /** the kernel killed it for going over its memory limit */
  oomKilled?: boolean;
  startedAt?: string;
  /** where it runs, when the substrate places it (a Swarm task's node) */
  where?: string;
}

/** How a sandbox that is no longer running ended, in words: the exit code, and an OOM kill said as such. */
export function describeExit(status: SandboxStatus): string {
  const code = `code ${status.exitCode ?? "unknown"}`;
  return status.oomKilled
    ? `OOM-killed: it went over its memory limit (${code}; raise it with --memory)`
    : code;
}

export interface LogOptions {
  follow?: boolean;
  tail?: number;
  signal?: AbortSignal;
}

export type BackendProbe = { ok: true; version: string } | { ok: false; reason: string };

export interface ListedSandbox extends SandboxHandle {
  labels: Record<string, string>;
  state: SandboxStatus["state"];
}

export interface SandboxBackend {
  readonly kind: SandboxKind;
  probe(): Promise<BackendProbe>;
  /** create + start */
  launch(spec: LaunchSpec): Promise<SandboxHandle>;
  /**
   * Create without starting, where the substrate has that step (Docker): a start creates the
   * sandbox while the runtime is still being staged, and starts it once the files it runs are
   * there. A failed start removes what it created.
   */
  create?(spec: LaunchSpec): Promise<CreatedSandbox>;
  status(handle: SandboxHandle): Promise<SandboxStatus>;
  logs(
    handle: SandboxHandle,
    options: LogOptions,
    onLine: (stream: "stdout" | "stderr", line: string) => void,
  ): Promise<void>;
  /** grace then kill; idempotent */
  stop(handle: SandboxHandle, graceMs: number): Promise<void>;
  /** idempotent */
  remove(handle: SandboxHandle): Promise<void>;
  list(labels: Record<string, string>): Promise<ListedSandbox[]>;
}

/** Labels every sandbox carries. */
export const LABEL_RUN = "openwork.run";
export const LABEL_WORKSPACE = "openwork.workspace";
export const LABEL_RUNTIME = "openwork.runtime";
export const LABEL_MANAGED = "openwork.managed";
/** Which OPENWORK_HOME made the sandbox: another home's sandboxes are never this one's orphans. */
export const LABEL_HOME = "openwork.home";

/**
 * Extra labels given as `k=v,k=v` (OPENWORK_LABELS: tests mark their
 * sandboxes with it; users may tag theirs). A pair without `=` is refused.
 */
export function parseLabels(value: string | undefined, what = "OPENWORK_LABELS"): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (value ?? "").split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new UsageError(`${what} must be k=v pairs separated by commas, not "${value}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}
