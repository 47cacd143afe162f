import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { OUTPUT_FILE_ENV } from "../../contract/env.js";
import { OpenworkError } from "../../errors/errors.js";
import { groupAlive, signalGroup } from "../../processes/groups.js";
import { formatProcessId, identityOf, isAlive, parseProcessId } from "../../processes/identity.js";
import { processGroupOf, readEnviron, readProcess } from "../../processes/inspect.js";
import { within } from "../../retry/poll.js";
import type {
  BackendProbe,
  LaunchSpec,
  ListedSandbox,
  LogOptions,
  SandboxBackend,
  SandboxHandle,
  SandboxStatus,
} from "../backend.js";
import { followFile, tailFile } from "./log-file.js";

/** The environment variable that carries a host sandbox's labels (processes have no labels of their own). */
export const LABELS_ENV = "OPENWORK_SANDBOX_LABELS";
const LOG_FILE_ENV = OUTPUT_FILE_ENV;

/**
 * Host processes: the entrypoint runs as the leader of its own process group,
 * detached from the CLI, with its output in a log file. Stopping signals the
 * whole group (engine, router, server), so nothing is orphaned.
 */
export class HostBackend implements SandboxBackend {
  readonly kind = "none" as const;

  async probe(): Promise<BackendProbe> {
    return { ok: true, version: `node ${process.version} on ${process.platform}-${process.arch}` };
  }

  async launch(spec: LaunchSpec): Promise<SandboxHandle> {
    if (spec.mounts.length > 0) {
      throw new OpenworkError(
        "--mount is not available with --sandbox none: host processes see the whole file system",
        {
          code: "usage",
          exitCode: 2,
          hint: "use --sandbox docker or container to mount extra directories",
        },
      );
    }
    if (!spec.logFile) throw new Error("HostBackend.launch: logFile is required");
    await mkdir(path.dirname(spec.logFile), { recursive: true });
    const [command, ...args] = spec.command;
    if (!command) throw new Error("HostBackend.launch: empty command");
    const fd = openSync(spec.logFile, "a", 0o600);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(command, args, {
        detached: true,
        stdio: ["ignore", fd, fd],
        // A minimal, explicit environment: the runtime must not depend on the user's shell setup.
        env: {
          PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
          LANG: process.env.LANG ?? "C.UTF-8",
          TZ: process.env.TZ ?? "",
          ...spec.env,
          [LABELS_ENV]: JSON.stringify(spec.labels),
          [LOG_FILE_ENV]: spec.logFile,
        },
        cwd: spec.persistDir,
      });
    } finally {
      closeSync(fd);
    }
    const pid = await new Promise<number>((resolve, reject) => {
      child.once("spawn", () => resolve(child.pid as number));
      child.once("error", reject);
    });
    const exited = new Promise<number>((resolve) =>
      child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))),
    );
    child.unref();
    const identity = identityOf(pid);
    if (!identity)
      throw new OpenworkError(`the entrypoint (pid ${pid}) exited at once; see ${spec.logFile}`, {
        code: "launch_failed",
      });
    const id = formatProcessId(identity);
    this.logFiles.set(id, spec.logFile);
    return { kind: "none", id, exited };
  }

  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    const identity = parseProcessId(handle.id);
    if (!identity) return { state: "missing" };
    if (isAlive(identity)) return { state: "running" };
    // The leader is gone; a straggler of its group (still carrying our labels) counts as running until stopped.
    return (await this.groupIsOurs(identity.pid)) ? { state: "running" } : { state: "exited" };
  }

  async logs(
    handle: SandboxHandle,
    options: LogOptions,
    onLine: (stream: "stdout" | "stderr", line: string) => void,
  ): Promise<void> {
    const file = await this.logFileOf(handle);
    if (!file)
      throw new OpenworkError(`no log file is known for host process ${handle.id}`, {
        code: "logs_unavailable",
      });
    if (options.follow)
      await followFile(file, { tail: options.tail, signal: options.signal }, (line) =>
        onLine("stdout", line),
      );
    else for (const line of await tailFile(file, options.tail)) onLine("stdout", line);
  }

  /** Where a process's output goes: known from the launch in this process, else from its environment while it runs. */
  private async logFileOf(handle: SandboxHandle): Promise<string | undefined> {
    const known = this.logFiles.get(handle.id);
    if (known) return known;
    const identity = parseProcessId(handle.id);
    return identity ? readEnviron(identity.pid)?.[LOG_FILE_ENV] : undefined;
  }

  private readonly logFiles = new Map<string, string>();

  async stop(handle: SandboxHandle, graceMs: number): Promise<void> {
    const identity = parseProcessId(handle.id);
    if (!identity) return;
    // Only signal the group if its leader is still the process we started, or the group lives on without it.
    const leaderIsOurs = isAlive(identity);
    if (!leaderIsOurs && !(await this.groupIsOurs(identity.pid))) return;
    const groupGone = (after: string, deadlineMs: number) =>
      within(() => !groupAlive(identity.pid), {
        what: `process group ${identity.pid} to exit after ${after}`,
        intervalMs: 50,
        deadlineMs,
      });
    signalGroup(identity.pid, "SIGTERM");
    if (await groupGone("SIGTERM", graceMs)) return;
    signalGroup(identity.pid, "SIGKILL");
    await groupGone("SIGKILL", 5000);
  }

  /** After the leader exits, its group may hold survivors; they are ours if they carry our labels. */
  private async groupIsOurs(pgid: number): Promise<boolean> {
    if (!groupAlive(pgid) || process.platform !== "linux") return false;
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const env = readEnviron(Number(entry));
      if (env?.[LABELS_ENV] && processGroupOf(Number(entry)) === pgid) return true;
    }
    return false;
  }

  async remove(_handle: SandboxHandle): Promise<void> {
    // A host process leaves nothing to remove once stopped; its files belong to the run directory.
  }

  async list(labels: Record<string, string>): Promise<ListedSandbox[]> {
    if (process.platform !== "linux") return [];
    const out: ListedSandbox[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const pid = Number(entry);
      const env = readEnviron(pid);
      const raw = env?.[LABELS_ENV];
      if (!raw || processGroupOf(pid) !== pid) continue;
      let own: Record<string, string>;
      try {
        own = JSON.parse(raw) as Record<string, string>;
      } catch {
        continue;
      }
      if (!Object.entries(labels).every(([key, value]) => own[key] === value)) continue;
      const info = readProcess(pid);
      if (!info || info.zombie) continue;
      out.push({
        kind: "none",
        id: formatProcessId({ pid, startTime: info.startTime }),
        labels: own,
        state: "running",
      });
    }
    return out;
  }
}
