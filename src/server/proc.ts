import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import path from "node:path";

export type PidState = "alive" | "zombie" | "gone";

/**
 * Whether a process is alive. Adopted processes are not our children in
 * libuv's sense (they were children of the shell that exec'd into node), so
 * their exit is never reported to us: we read their state instead. A zombie
 * has exited; it only waits for a parent that may never reap it.
 */
export function pidState(pid: number): PidState {
  if (process.platform === "linux") {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return "gone";
    }
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X" ? "zombie" : "alive";
  }
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as { code?: string }).code === "EPERM" ? "alive" : "gone";
  }
  try {
    const stat = execFileSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" }).trim();
    if (stat.length === 0) return "gone";
    return stat.startsWith("Z") ? "zombie" : "alive";
  } catch {
    return "gone";
  }
}

/** The process group of `pid` (Linux: from /proc; elsewhere `ps`), or undefined when it is gone. */
export function processGroupOf(pid: number): number | undefined {
  try {
    if (process.platform === "linux") {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return Number(fields[2]);
    }
    const out = execFileSync("ps", ["-o", "pgid=", "-p", String(pid)], { encoding: "utf8" }).trim();
    return out ? Number(out) : undefined;
  } catch {
    return undefined;
  }
}

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  at: string;
  /** false for adopted processes: nobody told us how they ended */
  statusKnown: boolean;
}

/** A running component process: one we adopted (pid only) or one we spawned (a real child). */
export interface ProcHandle {
  pid: number;
  /** spawned by us into its own process group: signals go to the whole group */
  ownGroup: boolean;
  adopted: boolean;
  startedAt: string;
  child?: ChildProcess | undefined;
  /** set when a spawned child exits (adopted processes are watched through pidState) */
  exited?: ExitInfo | undefined;
}

export function adopt(pid: number): ProcHandle {
  return { pid, ownGroup: false, adopted: true, startedAt: new Date().toISOString() };
}

export interface LaunchSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** stdout and stderr are appended here (the same file the entrypoint used), so the tail sees one history */
  logFile: string;
}

/** Spawn a component in its own process group, its output appended to its log file. */
export function spawnComponent(spec: LaunchSpec): ProcHandle {
  mkdirSync(path.dirname(spec.logFile), { recursive: true });
  const fd = openSync(spec.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ["ignore", fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  const handle: ProcHandle = {
    pid: child.pid ?? -1,
    ownGroup: true,
    adopted: false,
    startedAt: new Date().toISOString(),
    child,
  };
  child.on("error", () => {
    handle.exited ??= { code: null, signal: null, at: new Date().toISOString(), statusKnown: false };
  });
  child.on("exit", (code, signal) => {
    handle.exited = { code, signal, at: new Date().toISOString(), statusKnown: true };
  });
  if (handle.pid === -1)
    handle.exited = { code: null, signal: null, at: handle.startedAt, statusKnown: false };
  return handle;
}

export function isRunning(handle: ProcHandle): boolean {
  if (handle.exited) return false;
  return pidState(handle.pid) === "alive";
}

function signal(handle: ProcHandle, sig: NodeJS.Signals): void {
  // An adopted process shares the process group of the shell that started it,
  // which is ours: signalling that group would signal the server itself.
  const group = handle.ownGroup ? handle.pid : processGroupOf(handle.pid);
  const target =
    group !== undefined && group !== process.pid && group !== getOwnGroup() ? -group : handle.pid;
  try {
    process.kill(target, sig);
  } catch {
    // already gone
  }
}

let ownGroup: number | undefined;
function getOwnGroup(): number | undefined {
  ownGroup ??= processGroupOf(process.pid);
  return ownGroup;
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL (on the process group when the process has its own). */
export async function terminate(handle: ProcHandle, graceMs: number): Promise<"exited" | "killed"> {
  if (!isRunning(handle)) return "exited";
  signal(handle, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    await sleep(50);
    if (!isRunning(handle)) {
      // The leader is gone; make sure nothing it started lives on in its group.
      if (handle.ownGroup) signal(handle, "SIGKILL");
      return "exited";
    }
  }
  signal(handle, "SIGKILL");
  const killDeadline = Date.now() + 5000;
  while (Date.now() < killDeadline && isRunning(handle)) await sleep(50);
  return "killed";
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
