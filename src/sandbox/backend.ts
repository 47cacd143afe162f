// src/sandbox/backend.ts
import type { ValidatedMount } from "../mounts/types.js";

export type SandboxKind = "none" | "docker" | "container";
export interface LaunchSpec {
  runId: string;
  image: string; // ignored by host
  workspace: string; // host real path, mounted at /workspace
  persistDir: string; // host dir, mounted at /persist
  mounts: ValidatedMount[]; // from src/mounts, mounted at /workspace/extra/<sub>
  command: string[]; // e.g. ["sh", "/persist/runtimes/<id>/entrypoint.sh"]
  env: Record<string, string>; // includes secrets: never log, never put on a command line
  ports: Array<{ container: number; host: number; hostIp: string }>; // hostIp "127.0.0.1" unless remote access asked
  labels: Record<string, string>; // openwork.run, openwork.workspace, openwork.runtime (+ test labels)
  user?: string; // "uid:gid"
  logFile?: string; // host backend: where stdout/stderr go
}
export interface SandboxHandle {
  kind: SandboxKind;
  id: string /* container id/name or pid */;
}
export interface SandboxStatus {
  state: "running" | "exited" | "missing";
  exitCode?: number;
  startedAt?: string;
}
export interface LogOptions {
  follow?: boolean;
  tail?: number;
  signal?: AbortSignal;
}
export interface SandboxBackend {
  readonly kind: SandboxKind;
  probe(): Promise<{ ok: true; version: string } | { ok: false; reason: string }>;
  launch(spec: LaunchSpec): Promise<SandboxHandle>; // create + start
  status(handle: SandboxHandle): Promise<SandboxStatus>;
  logs(
    handle: SandboxHandle,
    options: LogOptions,
    onLine: (stream: "stdout" | "stderr", line: string) => void,
  ): Promise<void>;
  stop(handle: SandboxHandle, graceMs: number): Promise<void>; // grace then kill; idempotent
  remove(handle: SandboxHandle): Promise<void>; // idempotent
  list(
    labels: Record<string, string>,
  ): Promise<Array<SandboxHandle & { labels: Record<string, string>; state: SandboxStatus["state"] }>>;
}
