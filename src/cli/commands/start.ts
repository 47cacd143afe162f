import { type Command, Option } from "commander";
import { errorMessage, OpenworkError, UsageError } from "../../errors/errors.js";
import { type CheckResult, runChecks } from "../../runs/check.js";
import { backendOf, stopRun } from "../../runs/reconcile.js";
import type { RunRecord } from "../../runs/record.js";
import { RunRegistry } from "../../runs/registry.js";
import { type StartResult, startRun } from "../../runs/start.js";
import { AppleContainerBackend } from "../../sandbox/apple/index.js";
import { followFile } from "../../sandbox/host/log-file.js";
import { parseSandboxChoice, registerBackend } from "../../sandbox/select.js";
import { type CommandContext, contextFrom, renderTable } from "../context.js";
import { addSidecarOverrideOptions, addSourceOption, sourcePolicyFrom } from "../sidecar-options.js";
import { holdSignals, shutdown } from "../signals.js";

interface StartFlags {
  workspace: string;
  sandbox: string;
  detach?: boolean;
  check?: boolean;
  checkEvents?: boolean;
  image?: string;
  mount: string[];
  port?: string;
  router?: boolean;
  manifest?: string;
  replace?: boolean;
  allowRemote?: boolean;
  healthTimeout: string;
  showSecrets?: boolean;
  startService?: boolean;
  opencodeBin?: string;
  routerBin?: string;
  serverBin?: string;
  allowExternal?: boolean;
  allowVersionMismatch?: boolean;
  source?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function addStartOptions(command: Command): Command {
  command
    .option("--workspace <dir>", "the workspace directory (default: the current directory)", process.cwd())
    .addOption(
      new Option("--sandbox <kind>", "where to run: none (host processes), auto, docker, container")
        .choices(["none", "auto", "docker", "container"])
        .default("none"),
    )
    .option("--image <ref>", "sandbox image to use instead of the locally built openwork-sandbox image")
    .option(
      "--mount <spec>",
      "extra mount hostPath:subpath[:ro|rw] at /workspace/extra/<subpath> (repeatable)",
      collect,
      [],
    )
    .option("--port <n>", "host port for the runtime server (default: a free port on 127.0.0.1)")
    .option("--router", "start the messaging router (opencode-router) too")
    .option(
      "--manifest <url|path>",
      "sidecar manifest to run (default: the sidecars bundled with this openwork)",
    )
    .option("--replace", "replace a running runtime of this workspace (the new one must be healthy first)")
    .option("--allow-remote", "publish the server on all interfaces instead of 127.0.0.1")
    .option("--health-timeout <seconds>", "how long each component may take to become healthy", "90")
    .option("--show-secrets", "print the tokens in the human output too (they are always in --json)")
    .option(
      "--start-service",
      "with --sandbox container or auto: start Apple's container service if it is down (container system start --enable-kernel-install)",
    );
  addSidecarOverrideOptions(command);
  addSourceOption(command);
  return command;
}

export function registerStart(program: Command): void {
  addStartOptions(
    program
      .command("start")
      .description(
        "start the runtime for a workspace: resolve and verify the sidecars, stage them, launch engine, router and\n" +
          "server on the chosen substrate, wait until healthy, then stay in the foreground (or --detach).\n" +
          "A healthy runtime already running for the workspace is returned, not duplicated (unless --replace).",
      )
      .option("--detach", "return once healthy and leave the runtime running in the background")
      .option(
        "--check",
        "after starting, run the smoke checks, print the results, and stop (unless --detach)",
      )
      .option("--check-events", "with --check: also wait for a server-sent event from the engine"),
  ).action(async (flags: StartFlags, command: Command) => runStart(flags, command, flags.detach === true));

  addStartOptions(
    program
      .command("serve")
      .description(
        "start the runtime in the foreground and stream its logs until Ctrl-C (start without --detach)",
      ),
  ).action(async (flags: StartFlags, command: Command) =>
    runStart({ ...flags, detach: false, check: false }, command, false),
  );
}

async function runStart(flags: StartFlags, command: Command, detach: boolean): Promise<void> {
  const release = holdSignals();
  const ctx = contextFrom(command);
  try {
    const healthTimeout = Number(flags.healthTimeout);
    if (!Number.isFinite(healthTimeout) || healthTimeout <= 0) {
      throw new UsageError(
        `--health-timeout must be a positive number of seconds, not "${flags.healthTimeout}"`,
      );
    }
    const port = flags.port === undefined ? undefined : parsePort(flags.port);
    if (flags.startService) {
      if (flags.sandbox === "none" || flags.sandbox === "docker") {
        throw new UsageError("--start-service applies to Apple's container (--sandbox container or auto)");
      }
      registerBackend(
        "container",
        () => new AppleContainerBackend({ probeTimeoutMs: 5000, startService: true }),
      );
    }
    const registry = new RunRegistry();
    const result = await startRun({
      workspace: flags.workspace,
      sandbox: parseSandboxChoice(flags.sandbox),
      image: flags.image,
      mounts: flags.mount,
      port,
      router: flags.router === true,
      replace: flags.replace === true,
      allowRemote: flags.allowRemote === true,
      healthTimeoutMs: healthTimeout * 1000,
      runtime: { manifest: flags.manifest, sources: sourcePolicyFrom(flags) },
      registry,
      log: ctx.log,
      signal: shutdown.signal,
      extraLabels: parseExtraLabels(process.env.OPENWORK_LABELS),
      faults: process.env.OPENWORK_FAULT_RETIRE === "1" ? { failRetire: true } : undefined,
    });
    if (flags.check) {
      const checks = await runChecks(result.record, result.secrets, { events: flags.checkEvents === true });
      let final = result.record;
      // Only what this command started is torn down: a runtime that was already running stays.
      if (!detach && !result.reused) final = await stopRun(registry, result.record, ctx.log);
      const passed = checks.every((check) => check.ok);
      ctx.output({ ...startDocument(result, final), checks, passed }, () => renderChecks(checks));
      process.exitCode = passed ? 0 : 1;
      return;
    }
    ctx.output(startDocument(result, result.record), () =>
      renderConnectInfo(result, flags.showSecrets === true, detach),
    );
    if (!detach) await followInForeground(ctx, registry, result.record, { stopOnExit: !result.reused });
  } finally {
    release();
  }
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--port must be an integer between 1 and 65535, not "${value}"`);
  }
  return port;
}

/** OPENWORK_LABELS="k=v,k=v": extra labels on every sandbox (tests mark theirs with it). */
export function parseExtraLabels(value: string | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (value ?? "").split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0)
      throw new UsageError(`OPENWORK_LABELS must be k=v pairs separated by commas, not "${value}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

export function startDocument(result: StartResult, record: RunRecord) {
  return {
    runId: record.runId,
    workspace: record.workspace,
    sandbox: record.sandbox,
    state: record.state,
    url: record.url,
    versions: record.versions,
    runtimeId: record.runtimeId,
    reused: result.reused,
    retired: result.retired,
    tokens: {
      client: result.secrets.clientToken,
      host: result.secrets.hostToken,
      owner: result.secrets.ownerToken ?? null,
    },
    secretsFile: result.secretsFile,
    logFile: record.logFile,
  };
}

function renderConnectInfo(result: StartResult, showSecrets: boolean, detach: boolean): string {
  const { record } = result;
  const versions = Object.entries(record.versions)
    .filter(([, version]) => version)
    .map(([name, version]) => `${name} ${version}`)
    .join(", ");
  const lines = [
    `${result.reused ? "already running" : "runtime healthy"}: run ${record.runId} (${record.sandbox === "none" ? "host processes" : record.sandbox})`,
    `  url:       ${record.url}`,
    `  workspace: ${record.workspace}`,
    `  versions:  ${versions}`,
    `  tokens:    ${result.secretsFile} (client, host, owner; mode 0600)`,
    `  attach:    ${record.url}/opencode/ with "Authorization: Bearer <client token>"`,
  ];
  if (showSecrets) {
    lines.push(
      `  client token: ${result.secrets.clientToken}`,
      `  owner token:  ${result.secrets.ownerToken ?? "-"}`,
    );
  }
  if (result.retired.length > 0) lines.push(`  replaced:  ${result.retired.join(", ")}`);
  lines.push(
    detach
      ? `  status: openwork status ${record.runId}   logs: openwork logs ${record.runId}   stop: openwork stop ${record.runId}`
      : "  Ctrl-C stops the runtime.",
  );
  return lines.join("\n");
}

export function renderChecks(checks: CheckResult[]): string {
  return renderTable(
    ["CHECK", "RESULT", "MS", "DETAIL"],
    checks.map((check) => [check.name, check.ok ? "pass" : "FAIL", String(check.durationMs), check.detail]),
  );
}

/** Foreground: stream the runtime's output (prefixed) until a signal, then stop it gracefully. */
async function followInForeground(
  ctx: CommandContext,
  registry: RunRegistry,
  record: RunRecord,
  options: { stopOnExit: boolean },
): Promise<void> {
  if (!record.handle) return;
  const backend = backendOf(record.sandbox);
  const handle = record.handle;
  const stopFollowing = new AbortController();
  shutdown.signal.addEventListener("abort", () => stopFollowing.abort(), { once: true });
  const print = (line: string) => process.stderr.write(`[runtime] ${line}\n`);
  const follow = { follow: true, tail: 0, signal: stopFollowing.signal };
  // Host runs write to the run's log file (as `openwork logs` reads it); sandboxes stream through their backend.
  const following = (
    record.sandbox === "none"
      ? followFile(record.logFile, follow, print)
      : backend.logs(handle, follow, (_stream, line) => print(line))
  ).catch((error: unknown) => ctx.log.warn(`log stream ended: ${errorMessage(error)}`));
  // Watch the sandbox: if it ends by itself, so does the foreground command.
  while (!shutdown.signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const status = await backend.status(handle).catch(() => undefined);
    if (status && status.state !== "running") {
      stopFollowing.abort();
      await following;
      await registry.update(record.runId, {
        state: "failed",
        reason: `the runtime exited (code ${status.exitCode ?? "unknown"})`,
        stoppedAt: new Date().toISOString(),
      });
      throw new OpenworkError(`the runtime exited on its own (code ${status.exitCode ?? "unknown"})`, {
        code: "runtime_exited",
        hint: `see openwork logs ${record.runId}`,
      });
    }
  }
  stopFollowing.abort();
  await following;
  if (options.stopOnExit) {
    ctx.log.info("stopping the runtime");
    await stopRun(registry, record, ctx.log);
  } else {
    ctx.log.info(`leaving run ${record.runId} running: it was already running before this command`);
  }
  process.exitCode = 0;
}
