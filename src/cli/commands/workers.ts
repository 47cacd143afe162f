import { type Command, Option } from "commander";
import { ExitCode, UsageError } from "../../errors/errors.js";
import { printable } from "../../logging/terminal.js";
import { LOG_SOURCES, type LogSource } from "../../runs/log-sources.js";
import type { WorkerSpec, WorkersConfig } from "../../workers/config.js";
import { type CommandContext, contextFrom } from "../context.js";
import { holdSignals, reloadOnHangup, shutdown } from "../signals.js";

interface WorkersFlags {
  config?: string;
}

function wholeNumber(value: string | undefined, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || Number(value) < min)
    throw new UsageError(
      `${flag} must be a whole number${min > 0 ? ` of at least ${min}` : ""}, not "${value}"`,
    );
  return Number(value);
}

function seconds(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0)
    throw new UsageError(`${flag} must be a number of seconds, not "${value}"`);
  return number * 1000;
}

/** --metrics-port: a port, 0 for any free one, or "off". */
function metricsPort(value: string | undefined): number | null {
  if (value === undefined) return 0;
  if (value === "off") return null;
  const port = wholeNumber(value, "--metrics-port");
  if (port === undefined || port > 65535)
    throw new UsageError(`--metrics-port must be 0–65535 or "off", not "${value}"`);
  return port;
}

async function fleetContext(command: Command) {
  const ctx = await contextFrom(command);
  const { workersConfigPath, workersStateDir } = await import("../../workers/paths.js");
  const { openworkPaths } = await import("../../config/paths.js");
  const file = workersConfigPath(command.optsWithGlobals<WorkersFlags>().config);
  return { ctx, file, stateDir: workersStateDir(openworkPaths(), file) };
}

/** Every problem of an invalid workers.json on its own line (not squeezed into one), exit 2. */
async function loadConfig(ctx: CommandContext, file: string): Promise<WorkersConfig | undefined> {
  const { loadWorkersConfig, WorkersConfigError } = await import("../../workers/config.js");
  try {
    return await loadWorkersConfig(file);
  } catch (error) {
    if (!(error instanceof WorkersConfigError)) throw error;
    const [first, ...rest] = error.message.split("\n");
    process.stderr.write(`openwork: ${first}\n${rest.map((line) => `  ${line}\n`).join("")}`);
    if (ctx.json) ctx.output({ error: { code: error.code, problems: error.problems } }, () => "");
    process.exitCode = ExitCode.usage;
    return undefined;
  }
}

function extraLabels(): Promise<Record<string, string>> {
  return import("../../sandbox/backend.js").then(({ parseLabels }) =>
    parseLabels(process.env.OPENWORK_LABELS),
  );
}

/** `workers start` and `restart`: each worker as `start --detach` (restart: `--replace`), one row each. */
async function startAndReport(
  ctx: CommandContext,
  file: string,
  selected: WorkerSpec[],
  parallel: number,
  replace: boolean,
): Promise<void> {
  const { startWorkers } = await import("../../workers/fleet.js");
  const { RunRegistry } = await import("../../runs/registry.js");
  const { renderStartResults } = await import("../render-workers.js");
  const results = await startWorkers({
    workers: selected,
    parallel,
    replace,
    registry: new RunRegistry(),
    log: ctx.log,
    signal: shutdown.signal,
    extraLabels: await extraLabels(),
  });
  ctx.output({ config: file, results }, () => renderStartResults(results));
  process.exitCode = results.some((result) => result.outcome === "failed") ? ExitCode.failure : ExitCode.ok;
}

export function registerWorkers(program: Command): void {
  const workers = program
    .command("workers")
    .description(
      "a fleet of runtimes from one workers.json (JSONC): start them, supervise them in the background with\n" +
        "heartbeats and restart policies, see them in one table, install the supervisor as a service (docs/workers.md)",
    )
    .option(
      "--config <file>",
      "the fleet file (default: $OPENWORK_WORKERS_CONFIG, else workers.json in your config directory)",
    );

  workers
    .command("init")
    .description("write a commented workers.json template (refuses to overwrite one)")
    .option("--force", "overwrite an existing file")
    .action(async (flags: { force?: boolean }, command: Command) => {
      const { ctx, file } = await fleetContext(command);
      const { writeTemplate } = await import("../../workers/init.js");
      await writeTemplate(file, flags.force === true);
      ctx.output(
        { config: file, written: true },
        () => `wrote ${file}; edit it, then run \`openwork workers start\``,
      );
    });

  workers
    .command("start")
    .description(
      "start every enabled worker (or the named ones) like `openwork start --detach`, a few at a time;\n" +
        "one failure does not stop the others. --supervise: start the supervisor in the background instead",
    )
    .argument("[names...]", "workers to start (default: every enabled one)")
    .option("--parallel <n>", "how many workers start at once", "4")
    .option(
      "--supervise",
      "start `workers run` in the background (idempotent) and wait for its first heartbeat",
    )
    .option(
      "--metrics-port <port>",
      "with --supervise: the supervisor's /metrics and dashboard port on 127.0.0.1 (0: any, off)",
    )
    .action(
      async (
        names: string[],
        flags: { parallel: string; supervise?: boolean; metricsPort?: string },
        command: Command,
      ) => {
        const release = holdSignals();
        try {
          const { ctx, file, stateDir } = await fleetContext(command);
          const parallel = wholeNumber(flags.parallel, "--parallel", 1) ?? 4;
          const config = await loadConfig(ctx, file);
          if (!config) return;
          const { selectWorkers } = await import("../../workers/fleet.js");
          const selected = selectWorkers(config, names);
          const { setHolds } = await import("../../workers/holds.js");
          // Starting a worker by name (or all) lifts a `workers stop` hold on it.
          await setHolds(stateDir, names.length > 0 ? names : config.workers.map((w) => w.name), false);
          const { renderFleet } = await import("../render-workers.js");
          if (flags.supervise) {
            const { superviseInBackground } = await import("../../workers/background.js");
            const { fleetStatus } = await import("../../workers/status.js");
            const { RunRegistry } = await import("../../runs/registry.js");
            const longest = Math.max(90_000, ...config.workers.map((w) => w.start.healthTimeoutMs ?? 90_000));
            const { supervisor, already } = await superviseInBackground({
              configFile: file,
              stateDir,
              workers: config.workers.length,
              metricsPort: metricsPort(flags.metricsPort),
              waitMs: longest * 2,
              signal: shutdown.signal,
            });
            const status = await fleetStatus({ config, stateDir, registry: new RunRegistry() });
            ctx.output({ ...status, started: { pid: supervisor.pid, already } }, () =>
              [
                already
                  ? `a supervisor already runs this fleet (pid ${supervisor.pid})`
                  : `supervisor started (pid ${supervisor.pid})`,
                renderFleet(status),
              ].join("\n"),
            );
            const failed = status.workers.filter(
              (w) => w.enabled && !w.held && (w.state === "failed" || w.state === "backoff"),
            );
            process.exitCode = failed.length > 0 ? ExitCode.failure : ExitCode.ok;
            return;
          }
          await startAndReport(ctx, file, selected, parallel, false);
        } finally {
          release();
        }
      },
    );

  workers
    .command("run")
    .description(
      "the supervisor, in the foreground (for systemd, launchd or a container): keeps every worker healthy,\n" +
        "writes heartbeats, reloads workers.json on change or SIGHUP, stops every worker on SIGTERM/SIGINT",
    )
    .option(
      "--metrics-port <port>",
      "Prometheus /metrics and the dashboard on 127.0.0.1 (default 0: any free port; off: neither)",
    )
    .action(async (flags: { metricsPort?: string }, command: Command) => {
      const release = holdSignals();
      try {
        const { ctx, file, stateDir } = await fleetContext(command);
        const port = metricsPort(flags.metricsPort);
        const config = await loadConfig(ctx, file);
        if (!config) return;
        const { Supervisor } = await import("../../workers/supervisor.js");
        const { RunRegistry } = await import("../../runs/registry.js");
        const { rotateOwnOutput } = await import("../../server/own-output.js");
        rotateOwnOutput(10 * 1024 * 1024, ctx.log);
        const supervisor = new Supervisor({
          config,
          stateDir,
          registry: new RunRegistry(),
          log: ctx.log,
          metricsPort: port,
          signal: shutdown.signal,
          extraLabels: await extraLabels(),
        });
        reloadOnHangup(() => void supervisor.reload("SIGHUP"));
        await supervisor.run();
        // A requested stop is a success, for systemd's Restart=on-failure too.
        process.exitCode = ExitCode.ok;
      } finally {
        release();
      }
    });

  workers
    .command("status")
    .description(
      "the fleet table: state, health per component, restarts, uptime, CPU, memory, heartbeat age, versions,\n" +
        "URL, and the supervisor. Exit 0 all healthy, 1 one is not, 3 none runs",
    )
    .option("--watch", "redraw every --interval seconds until Ctrl-C (in place on a terminal)")
    .option("--interval <seconds>", "with --watch", "2")
    .action(async (flags: { watch?: boolean; interval: string }, command: Command) => {
      const { ctx, file, stateDir } = await fleetContext(command);
      const interval = seconds(flags.interval, "--interval");
      const config = await loadConfig(ctx, file);
      if (!config) return;
      const { fleetStatus, fleetExitCode } = await import("../../workers/status.js");
      const { RunRegistry } = await import("../../runs/registry.js");
      const { renderFleet } = await import("../render-workers.js");
      const registry = new RunRegistry();
      if (!flags.watch) {
        const status = await fleetStatus({ config, stateDir, registry });
        ctx.output(status, () => renderFleet(status));
        process.exitCode = fleetExitCode(status);
        return;
      }
      const release = holdSignals();
      const { sleep } = await import("../../retry/poll.js");
      const tty = process.stdout.isTTY === true && !ctx.json;
      try {
        while (!shutdown.signal.aborted) {
          const status = await fleetStatus({ config, stateDir, registry });
          if (ctx.json) process.stdout.write(`${JSON.stringify(status)}\n`);
          else if (tty)
            process.stdout.write(
              `\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  ${file}\n${renderFleet(status)}\n`,
            );
          else process.stdout.write(`--- ${new Date().toISOString()}\n${renderFleet(status)}\n`);
          await sleep(interval, shutdown.signal).catch(() => {});
        }
        process.exitCode = ExitCode.ok;
      } finally {
        release();
      }
    });

  workers
    .command("stop")
    .description(
      "stop the named workers (they stay stopped under a supervisor until `workers start NAME`), or, with no\n" +
        "names, the supervisor and every worker; stopping a stopped worker succeeds",
    )
    .argument("[names...]", "workers to stop (default: all, and the supervisor)")
    .option("--grace <seconds>", "how long each runtime gets after SIGTERM before it is killed", "10")
    .action(async (names: string[], flags: { grace: string }, command: Command) => {
      const release = holdSignals();
      try {
        const { ctx, file, stateDir } = await fleetContext(command);
        const graceMs = seconds(flags.grace, "--grace");
        const config = await loadConfig(ctx, file);
        if (!config) return;
        const { selectWorkers, stopWorkers } = await import("../../workers/fleet.js");
        const { setHolds } = await import("../../workers/holds.js");
        const { stopSupervisor } = await import("../../workers/background.js");
        const { RunRegistry } = await import("../../runs/registry.js");
        const selected = names.length > 0 ? selectWorkers(config, names) : config.workers;
        let supervisor: { pid: number; stopped: boolean } | null = null;
        if (names.length > 0) await setHolds(stateDir, names, true);
        else supervisor = await stopSupervisor(stateDir, config.stopTimeoutMs + 15_000);
        const results = await stopWorkers({
          workers: selected,
          registry: new RunRegistry(),
          log: ctx.log,
          graceMs,
        });
        ctx.output({ config: file, supervisor, results }, () => {
          const lines = results.map(
            (r) =>
              `${r.name}: ${r.outcome === "stopped" ? `stopped (run ${r.runId})` : "not running"}${r.notRecorded ? ` (not recorded: ${r.notRecorded})` : ""}`,
          );
          if (supervisor) lines.unshift(`supervisor (pid ${supervisor.pid}) stopped`);
          return lines.join("\n");
        });
      } finally {
        release();
      }
    });

  workers
    .command("restart")
    .description(
      "restart the named workers (default: every enabled one) rolling: each new runtime is healthy before the\n" +
        "old one is retired; lifts a `workers stop` hold",
    )
    .argument("[names...]", "workers to restart")
    .option("--parallel <n>", "how many workers restart at once", "4")
    .action(async (names: string[], flags: { parallel: string }, command: Command) => {
      const release = holdSignals();
      try {
        const { ctx, file, stateDir } = await fleetContext(command);
        const parallel = wholeNumber(flags.parallel, "--parallel", 1) ?? 4;
        const config = await loadConfig(ctx, file);
        if (!config) return;
        const { selectWorkers } = await import("../../workers/fleet.js");
        const { setHolds } = await import("../../workers/holds.js");
        const selected = selectWorkers(config, names);
        await setHolds(
          stateDir,
          selected.map((worker) => worker.name),
          false,
        );
        await startAndReport(ctx, file, selected, parallel, true);
      } finally {
        release();
      }
    });

  workers
    .command("dashboard")
    .description(
      "a one-time login link (valid 60s, single use) to the supervisor's fleet dashboard on 127.0.0.1: the\n" +
        "table live, a worker's last log lines, restart/stop/start buttons (docs/workers.md#dashboard)",
    )
    .option("--browser", "open the link in your browser too")
    .action(async (flags: { browser?: boolean }, command: Command) => {
      const { ctx, stateDir } = await fleetContext(command);
      const { dashboardLink, openInBrowser } = await import("../../workers/dashboard/link.js");
      const link = await dashboardLink(stateDir);
      const opened = flags.browser ? await openInBrowser(link.url) : false;
      ctx.output({ ...link, opened }, () =>
        [
          link.url,
          flags.browser
            ? opened
              ? "opened in your browser"
              : "could not open a browser: open the link yourself"
            : `works once, until ${link.expiresAt}`,
        ].join("\n"),
      );
    });

  workers
    .command("logs")
    .description("print a worker's logs (its newest run), or the supervisor's own log")
    .argument("[name]", "the worker")
    .option("--supervisor", "the supervisor's log instead of a worker's")
    .option("--follow", "keep printing new lines until Ctrl-C")
    .option("--tail <n>", "only the last N lines")
    .addOption(new Option("--component <name>", "whose log").choices([...LOG_SOURCES]).default("runtime"))
    .action(
      async (
        name: string | undefined,
        flags: { supervisor?: boolean; follow?: boolean; tail?: string; component: LogSource },
        command: Command,
      ) => {
        const { ctx, file, stateDir } = await fleetContext(command);
        const tail = wholeNumber(flags.tail, "--tail");
        if (flags.supervisor === (name !== undefined))
          throw new UsageError("name one worker, or pass --supervisor for the supervisor's log");
        const emit = (line: string) => process.stdout.write(`${printable(line)}\n`);
        const release = flags.follow ? holdSignals() : () => {};
        try {
          const signal = flags.follow ? shutdown.signal : undefined;
          if (flags.supervisor) {
            const { supervisorLog } = await import("../../workers/state.js");
            const { eachLine, followFile, tailFile } = await import("../../sandbox/host/log-file.js");
            const log = supervisorLog(stateDir);
            if (flags.follow) await followFile(log, { tail, signal }, emit);
            else if (tail === undefined) await eachLine(log, emit);
            else for (const line of await tailFile(log, tail)) emit(line);
          } else {
            const config = await loadConfig(ctx, file);
            if (!config) return;
            const { selectWorkers } = await import("../../workers/fleet.js");
            const { runsOfWorkers } = await import("../../workers/runs-of.js");
            const { RunRegistry } = await import("../../runs/registry.js");
            const { readRunLogs } = await import("../../runs/logs.js");
            const [worker] = selectWorkers(config, [name as string]);
            const record = worker
              ? (await runsOfWorkers(new RunRegistry(), [worker])).get(worker.name)
              : undefined;
            if (!record)
              throw new UsageError(`worker ${name} has never run`, "start it with `openwork workers start`");
            await readRunLogs(
              record,
              { source: flags.component, follow: flags.follow === true, tail, signal },
              emit,
            );
          }
          if (shutdown.signal.aborted) process.exitCode = 0;
        } finally {
          release();
        }
      },
    );

  workers
    .command("install-service")
    .description(
      "install the supervisor (`workers run` for this file) as a systemd unit (Linux) or a launchd agent (macOS)\n" +
        "that restarts on failure, and start it; --print shows it and changes nothing (docs/workers-service.md)",
    )
    .option("--user", "a user service (the default)")
    .option("--system", "a system service (needs root)")
    .option("--print", "print the unit and the commands that would run, and change nothing")
    .action(async (flags: { user?: boolean; system?: boolean; print?: boolean }, command: Command) => {
      const { ctx, file } = await fleetContext(command);
      if (flags.user && flags.system) throw new UsageError("choose one of --user and --system");
      const config = await loadConfig(ctx, file);
      if (!config) return;
      const { planServiceFor } = await import("../../workers/service-request.js");
      const plan = await planServiceFor(config, flags.system ? "system" : "user");
      if (flags.print) {
        ctx.output(plan, () =>
          [
            `# ${plan.file}`,
            plan.content.trimEnd(),
            "",
            "# then:",
            ...plan.activate.map((argv) => argv.join(" ")),
          ].join("\n"),
        );
        return;
      }
      const { installService } = await import("../../workers/service.js");
      const { runServiceCommand } = await import("../../workers/service-request.js");
      const installed = await installService(plan, { run: runServiceCommand(false) });
      ctx.output(
        { ...installed, name: plan.name, kind: plan.kind },
        () => `${installed.replaced ? "replaced" : "installed"} ${plan.file} and started ${plan.name}`,
      );
    });

  workers
    .command("uninstall-service")
    .description("stop and remove the service install-service made for this file")
    .option("--user", "the user service (the default)")
    .option("--system", "the system service")
    .action(async (flags: { user?: boolean; system?: boolean }, command: Command) => {
      const { ctx, file } = await fleetContext(command);
      if (flags.user && flags.system) throw new UsageError("choose one of --user and --system");
      const { planServiceForFile, runServiceCommand } = await import("../../workers/service-request.js");
      const plan = await planServiceForFile(file, 30_000, flags.system ? "system" : "user");
      const { uninstallService } = await import("../../workers/service.js");
      const removed = await uninstallService(plan, { run: runServiceCommand(true) });
      ctx.output({ ...removed, name: plan.name }, () =>
        removed.removed
          ? `stopped and removed ${removed.file}`
          : `no service was installed at ${removed.file}`,
      );
    });
}
