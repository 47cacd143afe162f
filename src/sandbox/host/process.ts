import { readFileSync } from "node:fs";
import { execa } from "execa";

/**
 * Process identity that survives pid reuse: the pid plus the process's start
 * time (clock ticks since boot on Linux, the `lstart` text elsewhere). A
 * recorded handle whose start time differs names a different process.
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

/** Start time and state of a pid, or undefined when there is no such process. */
export async function readProcess(pid: number): Promise<{ startTime: string; zombie: boolean } | undefined> {
  if (process.platform === "linux") {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return { startTime: fields[19] ?? "", zombie: fields[0] === "Z" };
    } catch {
      return undefined;
    }
  }
  const result = await execa("ps", ["-o", "stat=,lstart=", "-p", String(pid)], { reject: false });
  const line = String(result.stdout).trim();
  if (result.exitCode !== 0 || !line) return undefined;
  const [state = "", ...rest] = line.split(/\s+/);
  return { startTime: rest.join(" "), zombie: state.startsWith("Z") };
}

/** Is the process with this identity still running (and not a zombie)? */
export async function isAlive(identity: ProcessIdentity): Promise<boolean> {
  const info = await readProcess(identity.pid);
  return info !== undefined && !info.zombie && info.startTime === identity.startTime;
}

/** Is any process of this process group still there? */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (error) {
    if ((error as { code?: string }).code !== "ESRCH") throw error;
  }
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

/** The process group of a pid (Linux), or undefined when there is no such process. */
export function processGroupOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return undefined;
  }
}
