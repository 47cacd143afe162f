import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { persistLayout } from "../contract/layout.js";
import { ExitCode, errorMessage, OpenworkError, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { defaultManifest, manifestEntry } from "../manifest/index.js";
import { hostTarget } from "../sidecars/platform.js";
import { resolveSidecar } from "../sources/resolve.js";
import { readRuntimeJson, verifyStagedRuntime } from "../staging/verify.js";
import { openStore } from "../store/store.js";
import { RuntimeClient } from "./client.js";
import { type RunRecord, type RunSecrets, stagingRootOf } from "./record.js";

/** Which session `opencode attach` opens: a new one (none), one by id, or the last one; optionally forked. */
export interface SessionChoice {
  session?: string | undefined;
  continue?: boolean | undefined;
  fork?: boolean | undefined;
}

/** A session id as the engine writes them (ses_…): checked before it reaches another program's argv. */
const SESSION_ID = /^ses_?[A-Za-z0-9]+$/;

export function checkSessionChoice(choice: SessionChoice): void {
  if (choice.session !== undefined && !SESSION_ID.test(choice.session))
    throw new UsageError(`--session must be an engine session id (ses_…), not "${choice.session}"`);
  if (choice.session !== undefined && choice.continue)
    throw new UsageError("give --session ID or --continue, not both");
  if (choice.fork && choice.session === undefined && !choice.continue)
    throw new UsageError("--fork forks the session it continues: give it with --session ID or --continue");
}

/** opencode's terminal UI needs a terminal on both ends; checked before anything is resolved or spawned. */
export function requireTerminal(what: string): void {
  if (!process.stdin.isTTY || !process.stdout.isTTY)
    throw new UsageError(
      `${what} needs a terminal: stdin and stdout must be a TTY`,
      'for scripts, send a prompt with `openwork run "…"`',
    );
}

export interface HostOpencode {
  path: string;
  version: string;
  /** the run's own staged runtime, or a copy for this machine's platform from the store */
  from: "staged" | "store";
}

/**
 * A verified opencode this machine can execute, the version the run runs where
 * possible — never whatever `opencode` is on PATH. The runtime the server runs
 * now (after an upgrade, not the one the run started with) is staged in the
 * run's staging root, which only this host writes (a sandbox sees it
 * read-only): when its target is this machine's, its opencode is used after its
 * hashes are checked again. Otherwise (an Apple VM runs linux-arm64 on a Mac)
 * opencode for this platform is resolved into the store from this
 * installation's manifest, verified like every sidecar.
 */
export async function opencodeForHost(
  record: RunRecord & { url: string },
  secrets: RunSecrets,
  log: Logger,
): Promise<HostOpencode> {
  const target = hostTarget();
  const store = openStore({ log });
  let runtimeId = record.runtimeId;
  let wanted = record.versions.opencode;
  try {
    const versions = await new RuntimeClient(record.url, { client: secrets.clientToken }).versions();
    runtimeId = versions.pinned.runtimeId;
    wanted = versions.active.opencode ?? versions.pinned.versions.opencode ?? wanted;
  } catch (error) {
    log.debug({ err: error }, "the runtime's versions are not readable; using the run's record");
  }
  if (runtimeId) {
    const dir = persistLayout(stagingRootOf(record)).runtimeDir(runtimeId);
    if (existsSync(path.join(dir, "runtime.json")) && (await readRuntimeJson(dir)).target === target) {
      const runtime = await verifyStagedRuntime(dir, { statCache: store.statCache, only: ["opencode"] });
      const staged = runtime.sidecars.opencode;
      if (staged) return { path: path.join(dir, staged.file), version: staged.version, from: "staged" };
    }
  }
  const entry = manifestEntry(await defaultManifest(target, { store, log }), "opencode", target);
  if (!entry)
    throw new OpenworkError(`this installation pins no opencode for ${target}`, {
      code: "manifest_incomplete",
      hint: "attach from a machine openwork runs sidecars on (Linux or macOS)",
    });
  if (wanted && entry.version !== wanted)
    log.warn(
      { runs: wanted, attaching: entry.version },
      `the runtime runs opencode ${wanted}; attaching with this installation's ${entry.version} for ${target}`,
    );
  const resolved = await resolveSidecar("opencode", target, entry, {}, { store, log });
  return { path: resolved.path, version: resolved.version, from: "store" };
}

/**
 * `opencode attach <server>/opencode`: opencode's own terminal UI, talking to
 * the engine through our proxy, which takes HTTP basic auth with the client
 * token as the password. The token goes in the child's environment
 * (OPENCODE_SERVER_PASSWORD), never on its command line. The terminal is the
 * child's (stdio inherited); signals this process receives are passed on, and
 * the child's exit code is returned (128 + n for a signal).
 */
export async function attachRun(options: {
  record: RunRecord & { url: string };
  secrets: RunSecrets;
  opencode: string;
  choice: SessionChoice;
  signal: AbortSignal;
}): Promise<number> {
  const { record, secrets, choice } = options;
  const args = ["attach", `${record.url}/opencode`];
  if (choice.session !== undefined) args.push("--session", choice.session);
  if (choice.continue) args.push("--continue");
  if (choice.fork) args.push("--fork");
  // Any username will do (the proxy checks the password only).
  const env = { ...process.env, OPENCODE_SERVER_PASSWORD: secrets.clientToken };
  const child = spawn(options.opencode, args, { stdio: "inherit", env });
  const forward = () => {
    const reason = options.signal.reason;
    child.kill(
      typeof reason === "string" && reason.startsWith("SIG") ? (reason as NodeJS.Signals) : "SIGTERM",
    );
  };
  options.signal.addEventListener("abort", forward, { once: true });
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once("error", (error) =>
        reject(
          new OpenworkError(`cannot run ${options.opencode}: ${errorMessage(error)}`, {
            code: "attach_failed",
          }),
        ),
      );
      child.once("exit", (code, signal) =>
        resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : ExitCode.failure)),
      );
    });
  } finally {
    options.signal.removeEventListener("abort", forward);
  }
}
