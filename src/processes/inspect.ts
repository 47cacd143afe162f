import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/**
 * What the kernel says about one pid. Linux: /proc/<pid>/stat; elsewhere one
 * `ps` call. Synchronous on purpose: callers poll it in loops and from a
 * signal-safe shutdown path, and it costs one small read.
 */
export interface ProcessInfo {
  /** exited but not yet reaped by its parent */
  zombie: boolean;
  /** process group id */
  pgid: number;
  /**
   * what tells this process from a later one that reused its pid: clock ticks
   * since boot (Linux, field 22) or the `lstart` text (elsewhere)
   */
  startTime: string;
}

export type PidState = "alive" | "zombie" | "gone";

export function readProcess(pid: number): ProcessInfo | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (process.platform === "linux") {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return undefined;
    }
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0] ?? "";
    return { zombie: state === "Z" || state === "X", pgid: Number(fields[2]), startTime: fields[19] ?? "" };
  }
  let line: string;
  try {
    line = execFileSync("ps", ["-o", "stat=,pgid=,lstart=", "-p", String(pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return undefined; // ps exits 1 when there is no such process
  }
  if (!line) return undefined;
  const [state = "", pgid = "", ...start] = line.split(/\s+/);
  return { zombie: state.startsWith("Z"), pgid: Number(pgid), startTime: start.join(" ") };
}

/**
 * Whether a process is alive. Adopted processes are not our children in
 * libuv's sense (they were children of a shell that exec'd into node), so
 * their exit is never reported to us: we read their state instead. A zombie
 * has exited; it only waits for a parent that may never reap it.
 */
export function pidState(pid: number): PidState {
  const info = readProcess(pid);
  if (!info) return "gone";
  return info.zombie ? "zombie" : "alive";
}

/** The process group of `pid`, or undefined when it is gone. */
export function processGroupOf(pid: number): number | undefined {
  return readProcess(pid)?.pgid;
}

/** Environment of a process (Linux: /proc/<pid>/environ), to find our own processes by their labels. */
export function readEnviron(pid: number): Record<string, string> | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/environ`, "utf8");
    const env: Record<string, string> = {};
    for (const entry of raw.split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  } catch {
    return undefined;
  }
}
