import { readProcess } from "./inspect.js";

/**
 * Process identity that survives pid reuse: the pid plus the process's start
 * time. A recorded identity whose start time differs names another process.
 * Written as `<pid>@<start time>` into run records and sandbox handles.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

export function formatProcessId(identity: ProcessIdentity): string {
  return `${identity.pid}@${identity.startTime}`;
}

export function parseProcessId(id: string): ProcessIdentity | undefined {
  const match = /^(\d+)@(.+)$/.exec(id);
  if (!match?.[1] || !match[2]) return undefined;
  return { pid: Number(match[1]), startTime: match[2] };
}

/** The identity of a running pid, or undefined when it is gone. */
export function identityOf(pid: number): ProcessIdentity | undefined {
  const info = readProcess(pid);
  return info ? { pid, startTime: info.startTime } : undefined;
}

/** Is the process with this identity still running (and not a zombie)? */
export function isAlive(identity: ProcessIdentity): boolean {
  const info = readProcess(identity.pid);
  return info !== undefined && !info.zombie && info.startTime === identity.startTime;
}
