import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, constants, mkdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { ExitInfo } from "../contract/api.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { writeFileAtomicSync } from "../files/atomic.js";
import { openNoFollow } from "../files/inside.js";
import { pidState, processGroupOf, readProcess } from "../processes/inspect.js";
import { within } from "../retry/poll.js";

export type { ExitInfo };

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

/** What makes a pid this process and not a later one that reused the number (its start time). */
/** The process runs as this server's user (where that can be told: Linux's /proc). */
function ownedByUs(pid: number): boolean {
  if (process.platform !== "linux" || !process.getuid) return true;
  try {
    return statSync(`/proc/${pid}`).uid === process.getuid();
  } catch {
    return false;
  }
}

function processIdentity(pid: number): string | undefined {
  return readProcess(pid)?.startTime;
}

interface LedgerEntry {
  pid: number;
  identity: string;
  command: string;
  startedAt: string;
}

// The ledger of processes the server spawned (own process groups): a server that dies hard
// (SIGKILL, OOM) cannot stop them, so the next server start does. Kept on globalThis so that
// every server generation in this process writes the same file.
const LEDGER = Symbol.for("openwork.server.child-ledger");

export function useChildLedger(file: string): void {
  (globalThis as Record<symbol, unknown>)[LEDGER] = file;
}

function ledgerFile(): string | undefined {
  return (globalThis as Record<symbol, string | undefined>)[LEDGER];
}

const ledgerSchema = z.array(
  z
    .object({
      pid: z.number().int().min(2),
      identity: z.string().min(1),
      command: z.string(),
      startedAt: z.string(),
    })
    .strict(),
);

/** The ledger as written by a previous server; anything malformed is read as empty, never acted on. */
function readLedger(file: string): LedgerEntry[] {
  try {
    const parsed = ledgerSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

function writeLedger(file: string, entries: LedgerEntry[]): void {
  writeFileAtomicSync(file, JSON.stringify(entries));
}

function ledgerAdd(pid: number, command: string): void {
  const file = ledgerFile();
  const identity = processIdentity(pid);
  if (!file || identity === undefined) return;
  writeLedger(file, [
    ...readLedger(file).filter((e) => e.pid !== pid),
    { pid, identity, command, startedAt: new Date().toISOString() },
  ]);
}

/**
 * Forget a process that has exited. Best effort: an entry left behind names a
 * pid and start time that no later process has, so a later start skips it.
 */
function ledgerRemove(pid: number): void {
  const file = ledgerFile();
  if (!file) return;
  try {
    const entries = readLedger(file);
    if (entries.some((e) => e.pid === pid))
      writeLedger(
        file,
        entries.filter((e) => e.pid !== pid),
      );
  } catch {
    // a full or read-only disk: see above
  }
}

/**
 * At a cold start: SIGKILL the process group of every process a previous
 * server spawned that still runs (same pid and same start time), then forget them.
 */
export function reapStaleChildren(file: string): LedgerEntry[] {
  const reaped: LedgerEntry[] = [];
  for (const entry of readLedger(file)) {
    // Hostile input until proven otherwise (DESIGN.md §4a): only a process that is still exactly the
    // one recorded (pid and start time), leads its own group as every spawned component does, and
    // belongs to this server's user is stopped — never a group picked by a planted entry.
    const info = readProcess(entry.pid);
    if (!info || info.startTime !== entry.identity || info.pgid !== entry.pid) continue;
    if (!ownedByUs(entry.pid)) continue;
    try {
      process.kill(-entry.pid, "SIGKILL");
      reaped.push(entry);
    } catch {
      // gone meanwhile
    }
  }
  try {
    writeLedger(file, []);
  } catch {
    // The entries name exact processes (pid and start time): ones reaped now will not match again.
  }
  return reaped;
}

export function adopt(pid: number): ProcHandle {
  return { pid, ownGroup: false, adopted: true, startedAt: new Date().toISOString() };
}

/** How to spawn one component (not to be confused with a sandbox's LaunchSpec). */
export interface SpawnSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** stdout and stderr are appended here (the same file the entrypoint used), so the tail sees one history */
  logFile: string;
}

/** Spawn a component in its own process group, its output appended to its log file. */
export function spawnComponent(spec: SpawnSpec): ProcHandle {
  mkdirSync(path.dirname(spec.logFile), { recursive: true });
  // Appended to, never through a link (the engine can write the logs directory).
  const fd = openNoFollow(spec.logFile, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
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
    ledgerRemove(handle.pid);
  });
  if (child.pid !== undefined) {
    try {
      ledgerAdd(child.pid, spec.command);
    } catch (error) {
      // No child may outlive a ledger write that failed: nobody could stop it after a hard crash.
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
      throw new OpenworkError(
        `could not record ${path.basename(spec.command)} (pid ${child.pid}) in ${ledgerFile()}: ${errorMessage(error)}; stopped it again`,
        { code: "ledger_write_failed", hint: "free space on the disk that holds the persisted directory" },
      );
    }
  }
  if (handle.pid === -1)
    handle.exited = { code: null, signal: null, at: handle.startedAt, statusKnown: false };
  return handle;
}

/**
 * How a process ended. For a child of ours, the kernel may say it is gone a
 * moment before Node reports its exit status: wait for that report (briefly)
 * rather than call it a process that is not our child.
 */
export async function exitOf(handle: ProcHandle, waitMs = 1000): Promise<ExitInfo | undefined> {
  const child = handle.child;
  if (handle.exited || !child || handle.adopted) return handle.exited;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs);
    child.once("exit", () => {
      clearTimeout(timer);
      // The handle's own exit listener was registered first and has run.
      resolve();
    });
  });
  return handle.exited;
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
  const gone = (after: string, deadlineMs: number) =>
    within(() => !isRunning(handle), {
      what: `pid ${handle.pid} to exit after ${after}`,
      intervalMs: 50,
      deadlineMs,
    });
  if (await gone("SIGTERM", graceMs)) {
    // The leader is gone; make sure nothing it started lives on in its group.
    if (handle.ownGroup) signal(handle, "SIGKILL");
    return "exited";
  }
  signal(handle, "SIGKILL");
  await gone("SIGKILL", 5000);
  return "killed";
}
