import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../config/package-root.js";
import { OUTPUT_FILE_ENV } from "../contract/env.js";
import { OpenworkError } from "../errors/errors.js";
import { pidState } from "../processes/inspect.js";
import { sleep } from "../retry/poll.js";
import { tailFile } from "../sandbox/host/log-file.js";
import { liveSupervisor, readSupervisorFile, type SupervisorFile, supervisorLog } from "./state.js";

/** The supervisor died before it could say how the fleet stands. */
export class SupervisorDiedError extends OpenworkError {
  constructor(
    readonly logFile: string,
    readonly lastOutput: string[],
  ) {
    super(
      `the workers supervisor exited before its first heartbeat; its last output: ${lastOutput.join(" | ") || "(none)"}`,
      {
        code: "supervisor_died",
        hint: `see ${logFile}`,
      },
    );
    this.name = "SupervisorDiedError";
  }
}

/**
 * `workers start --supervise`: `workers run` for this file in the background
 * (its output appended to supervisor.log, which it rotates itself), unless one
 * already runs. Returns once every worker it supervises has been looked at
 * once — started, adopted, or failed — or throws if the supervisor dies first.
 */
export async function superviseInBackground(options: {
  configFile: string;
  stateDir: string;
  /** how many workers the file names: the first heartbeat is the one that has them all */
  workers: number;
  metricsPort: number | null;
  /** how long to wait for the first look at every worker */
  waitMs: number;
  signal?: AbortSignal | undefined;
}): Promise<{ supervisor: SupervisorFile; already: boolean }> {
  const { stateDir } = options;
  const existing = liveSupervisor(readSupervisorFile(stateDir));
  if (existing) return { supervisor: existing, already: true };
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const logFile = supervisorLog(stateDir);
  const fd = openSync(logFile, "a", 0o600);
  const cli = path.join(packageRoot(), "dist", "bin", "openwork.js");
  const args = [cli, "--log-format", "json", "workers", "run", "--config", options.configFile];
  if (options.metricsPort !== null) args.push("--metrics-port", String(options.metricsPort));
  let child: ReturnType<typeof spawn>;
  try {
    // Its own session: a Ctrl-C or a closed terminal here does not reach it.
    child = spawn(process.execPath, args, {
      detached: true,
      stdio: ["ignore", fd, fd],
      env: { ...process.env, [OUTPUT_FILE_ENV]: logFile },
    });
  } finally {
    closeSync(fd);
  }
  child.unref();
  const pid = child.pid;
  if (pid === undefined)
    throw new OpenworkError("could not start the workers supervisor", { code: "supervisor_died" });
  const deadline = Date.now() + options.waitMs;
  for (;;) {
    const state = pidState(pid);
    const file = readSupervisorFile(stateDir);
    if (state !== "alive") {
      // Another supervisor may have won a race for this file: that is the one to report.
      const other = liveSupervisor(file);
      if (other && other.pid !== pid) return { supervisor: other, already: true };
      throw new SupervisorDiedError(logFile, await tailFile(logFile, 5));
    }
    if (file && file.pid === pid) {
      const heartbeats = Object.values(file.workers);
      const looked =
        heartbeats.length >= options.workers && heartbeats.every((worker) => worker.state !== "starting");
      if (looked || Date.now() > deadline || options.signal?.aborted)
        return { supervisor: file, already: false };
    }
    await sleep(150);
  }
}

/**
 * `workers stop` with no names: SIGTERM the supervisor, which stops every
 * worker within the file's stopTimeout, and wait for it to exit. Null when
 * none runs.
 */
export async function stopSupervisor(
  stateDir: string,
  waitMs: number,
): Promise<{ pid: number; stopped: boolean } | null> {
  const live = liveSupervisor(readSupervisorFile(stateDir));
  if (!live) return null;
  try {
    process.kill(live.pid, "SIGTERM");
  } catch {
    return { pid: live.pid, stopped: true };
  }
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    if (pidState(live.pid) !== "alive") return { pid: live.pid, stopped: true };
    await sleep(200);
  }
  throw new OpenworkError(
    `the workers supervisor (pid ${live.pid}) did not exit within ${Math.round(waitMs / 1000)}s of SIGTERM`,
    {
      code: "supervisor_stuck",
      hint: `see \`openwork workers logs --supervisor\`; kill -9 ${live.pid} leaves the workers running`,
    },
  );
}
