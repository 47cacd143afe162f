import { statSync } from "node:fs";
import { finished } from "node:stream/promises";
import { errorMessage, OpenworkError, systemErrorCode } from "../../errors/errors.js";
import { type Logger, lineRelay, silentLogger } from "../../logging/logger.js";
import { within } from "../../retry/poll.js";
import type {
  LaunchSpec,
  LogOptions,
  SandboxBackend,
  SandboxHandle,
  SandboxKind,
  SandboxStatus,
} from "../backend.js";
import { appleBindsFor, buildRunArgs } from "./argv.js";
import { appleBin, cliError, firstLine, isNotFound, notInstalled, runAppleCli } from "./cli.js";
import { type AppleContainer, parseAppleContainerList } from "./inspect.js";
import {
  type AppleFeatures,
  appleFeatures,
  MINIMUM_APPLE_VERSION,
  meetsMinimum,
  parseAppleVersion,
} from "./version.js";

export interface AppleBackendOptions {
  /** the `container` executable; default OPENWORK_APPLE_CONTAINER_BIN or `container` on PATH */
  bin?: string;
  /** extra environment for every CLI call, over the inherited one */
  env?: Record<string, string>;
  /** start the service (installing the default kernel without prompting) when it is down */
  startService?: boolean;
  /** run with a read-only root file system (needs 0.8.0) */
  readOnlyRoot?: boolean;
  log?: Logger;
  /** deadline of quick calls (version, status, ls, inspect) */
  probeTimeoutMs?: number;
}

/** Apple's default `stop` grace, used when a caller passes none. */
export const APPLE_DEFAULT_GRACE_MS = 5000;

/**
 * The Apple `container` substrate, driven through its CLI (Apple offers no
 * stable API to a non-Swift client). Every call goes through argv built by
 * pure functions (argv.ts) and JSON read by one parser for all three layouts
 * (inspect.ts); secrets reach the CLI only through its environment.
 */
export class AppleContainerBackend implements SandboxBackend {
  readonly kind: SandboxKind = "container";
  readonly bin: string;
  private readonly log: Logger;
  private ready: Promise<AppleFeatures> | undefined;

  constructor(private readonly options: AppleBackendOptions = {}) {
    this.bin = options.bin ?? appleBin({ ...process.env, ...options.env });
    this.log = options.log ?? silentLogger();
  }

  private quick(args: string[]) {
    return runAppleCli(this.bin, args, {
      timeoutMs: this.options.probeTimeoutMs ?? 15_000,
      env: this.cliEnv(),
    });
  }

  private cliEnv(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.options.env, ...extra };
  }

  /** `container --version`, checked against the minimum. */
  async version(): Promise<AppleFeatures> {
    const result = await this.quick(["--version"]);
    const version = parseAppleVersion(result.stdout);
    if (result.exitCode !== 0 || !version)
      throw new OpenworkError(
        `\`${this.bin} --version\` gave no version (exit ${result.exitCode}): ${firstLine(result.stdout) || cliError(result)}`,
        {
          code: "apple_version",
          hint: "is this Apple's container CLI? reinstall it from github.com/apple/container",
        },
      );
    if (!meetsMinimum(version))
      throw new OpenworkError(
        `Apple's container ${version} is too old: openwork needs ${MINIMUM_APPLE_VERSION} or later (the first with -p/--publish)`,
        { code: "apple_too_old", hint: "update it from github.com/apple/container/releases" },
      );
    return appleFeatures(version);
  }

  /**
   * `container system status`: exit 0 running, exit 1 down. Down is an error
   * telling the user what to run, unless the caller asked us to start it; then
   * `system start --enable-kernel-install`, because without that flag it
   * prompts for a kernel on a terminal nobody is watching.
   */
  async ensureService(): Promise<void> {
    const status = await this.quick(["system", "status"]);
    if (status.exitCode === 0) return;
    if (status.exitCode !== 1)
      throw new OpenworkError(`\`${this.bin} system status\` failed: ${cliError(status)}`, {
        code: "apple_status",
      });
    if (!this.options.startService)
      throw new OpenworkError("Apple's container service is not running", {
        code: "apple_service_down",
        hint: "run `container system start` (or pass --start-service to let openwork start it), then try again",
      });
    this.log.info("starting Apple's container service (container system start --enable-kernel-install)");
    const start = await runAppleCli(this.bin, ["system", "start", "--enable-kernel-install"], {
      timeoutMs: 300_000,
      env: this.cliEnv(),
    });
    if (start.exitCode !== 0)
      throw new OpenworkError(`\`${this.bin} system start\` failed: ${cliError(start)}`, {
        code: "apple_service_start",
        hint: "run `container system start` yourself and read its output",
      });
    // the apiserver registers with launchd as `system start` returns; give it a moment to answer
    const up = await within(async () => (await this.quick(["system", "status"])).exitCode === 0, {
      what: "Apple's container service to answer",
      intervalMs: 500,
      deadlineMs: 15_000,
    });
    if (!up)
      throw new OpenworkError(
        "Apple's container service is still not running after `container system start`",
        {
          code: "apple_service_down",
          hint: "run `container system status` and `container system logs`",
        },
      );
  }

  /** Version and service, once per backend: what launch needs before its first call. */
  prepare(): Promise<AppleFeatures> {
    this.ready ??= (async () => {
      const features = await this.version();
      await this.ensureService();
      return features;
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  async probe(): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
    try {
      const features = await this.prepare();
      return { ok: true, version: features.version };
    } catch (error) {
      const reason = error instanceof OpenworkError ? error.oneLine() : errorMessage(error);
      return { ok: false, reason };
    }
  }

  async launch(spec: LaunchSpec): Promise<SandboxHandle> {
    const features = await this.prepare();
    for (const bind of appleBindsFor(spec)) assertDirectory(bind.source, bind.target);
    const command = buildRunArgs(spec, features, { readOnlyRoot: this.options.readOnlyRoot === true });
    this.log.debug(
      { name: command.name, image: spec.image, env: Object.keys(command.env) },
      "starting Apple container",
    );
    const result = await runAppleCli(this.bin, command.args, {
      env: this.cliEnv(command.env),
      timeoutMs: 300_000,
    });
    if (result.exitCode !== 0) {
      const exists = /exists/i.test(result.stderr);
      // a half-made container of ours would block the next attempt under the same name; another's is left alone
      if (!exists) await this.remove({ kind: "container", id: command.name }).catch(() => {});
      throw new OpenworkError(`Apple's container could not start ${command.name}: ${cliError(result)}`, {
        code: "apple_run",
        hint: exists
          ? `a container of that name exists already; if it is stale: container rm --force ${command.name}`
          : "run `container system status` and check the image exists (`container image ls`)",
      });
    }
    return { kind: "container", id: command.name };
  }

  /** Find containers by id with `inspect`; an id Apple does not know is simply absent. */
  async inspect(id: string): Promise<AppleContainer | undefined> {
    const result = await this.quick(["inspect", id]);
    if (result.exitCode !== 0) {
      if (isNotFound(result)) return undefined;
      throw new OpenworkError(`\`${this.bin} inspect ${id}\` failed: ${cliError(result)}`, {
        code: "apple_inspect",
      });
    }
    return parseAppleContainerList(result.stdout, `\`container inspect ${id}\` output`).find(
      (c) => c.id === id,
    );
  }

  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    const container = await this.inspect(handle.id);
    if (!container) return { state: "missing" };
    return { state: container.state, ...(container.startedAt ? { startedAt: container.startedAt } : {}) };
  }

  async logs(
    handle: SandboxHandle,
    options: LogOptions,
    onLine: (stream: "stdout" | "stderr", line: string) => void,
  ): Promise<void> {
    const args = ["logs"];
    if (options.follow) args.push("--follow");
    if (options.tail !== undefined) args.push("-n", String(Math.max(0, Math.floor(options.tail))));
    args.push(handle.id);
    const errors: string[] = [];
    // Apple keeps one stdio log per container: the container's stdout and
    // stderr arrive interleaved on the CLI's stdout, so they are reported as stdout.
    const { execa } = await import("execa");
    const child = execa(this.bin, args, {
      reject: false,
      stdin: "ignore",
      buffer: false,
      extendEnv: true,
      env: { NO_COLOR: "1", ...this.cliEnv() },
      ...(options.signal ? { cancelSignal: options.signal } : {}),
    });
    const stdout = lineRelay((line) => onLine("stdout", line));
    const stderr = lineRelay((line) => errors.push(line));
    child.stdout?.pipe(stdout);
    child.stderr?.pipe(stderr);
    const result = await child;
    await Promise.all([finished(stdout).catch(() => {}), finished(stderr).catch(() => {})]);
    if (result.isCanceled || options.signal?.aborted) return;
    if (result.failed && result.exitCode === undefined) {
      if (systemErrorCode(result.cause) === "ENOENT") throw notInstalled(this.bin);
      throw new OpenworkError(`cannot run ${this.bin} logs: ${errorMessage(result.cause)}`, {
        code: "apple_exec",
      });
    }
    if (result.exitCode !== 0)
      throw new OpenworkError(
        `\`${this.bin} logs ${handle.id}\` failed: ${errors.find((l) => l.startsWith("Error:")) ?? errors[0] ?? `exit ${result.exitCode}`}`,
        {
          code: "apple_logs",
        },
      );
    for (const line of errors) onLine("stderr", line);
  }

  async stop(handle: SandboxHandle, graceMs: number = APPLE_DEFAULT_GRACE_MS): Promise<void> {
    const before = await this.status(handle);
    if (before.state !== "running") return;
    const seconds = Math.max(0, Math.ceil(graceMs / 1000));
    const result = await runAppleCli(this.bin, ["stop", "--time", String(seconds), handle.id], {
      env: this.cliEnv(),
      timeoutMs: seconds * 1000 + 60_000,
    });
    if (result.exitCode === 0) return;
    const after = await this.status(handle);
    if (after.state !== "running") return;
    throw new OpenworkError(`Apple's container could not stop ${handle.id}: ${cliError(result)}`, {
      code: "apple_stop",
      hint: `try: container kill ${handle.id}`,
    });
  }

  async remove(handle: SandboxHandle): Promise<void> {
    const result = await runAppleCli(this.bin, ["rm", "--force", handle.id], {
      timeoutMs: 120_000,
      env: this.cliEnv(),
    });
    if (result.exitCode === 0 || isNotFound(result)) return;
    if ((await this.status(handle)).state === "missing") return;
    throw new OpenworkError(`Apple's container could not remove ${handle.id}: ${cliError(result)}`, {
      code: "apple_rm",
      hint: `try: container rm --force ${handle.id}`,
    });
  }

  /** `ls --all --format json`, filtered here: Apple's `ls` has no --filter. */
  async list(
    labels: Record<string, string>,
  ): Promise<Array<SandboxHandle & { labels: Record<string, string>; state: SandboxStatus["state"] }>> {
    const result = await this.quick(["ls", "--all", "--format", "json"]);
    if (result.exitCode !== 0)
      throw new OpenworkError(`\`${this.bin} ls\` failed: ${cliError(result)}`, {
        code: "apple_ls",
        hint: "run `container system status`",
      });
    return parseAppleContainerList(result.stdout)
      .filter((c) => Object.entries(labels).every(([key, value]) => c.labels[key] === value))
      .map((c) => ({ kind: "container" as const, id: c.id, labels: c.labels, state: c.state }));
  }
}

/** Apple's bind mounts take directories only: say so before the CLI gives a vaguer error. */
function assertDirectory(source: string, target: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(source).isDirectory();
  } catch (error) {
    throw new OpenworkError(`cannot mount ${source} at ${target}: ${errorMessage(error)}`, {
      code: "apple_mount_source",
    });
  }
  if (!isDirectory)
    throw new OpenworkError(
      `Apple's container mounts directories only, and ${source} (for ${target}) is a file`,
      { code: "apple_mount_file", hint: "mount the directory that holds it, or use --sandbox docker" },
    );
}
