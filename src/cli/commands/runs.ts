import { type Command, Option } from "commander";
import { ExitCode, UsageError } from "../../errors/errors.js";
import { printable } from "../../logging/terminal.js";
import { LOG_SOURCES, type LogSource } from "../../runs/log-sources.js";
import { contextFrom } from "../context.js";
import { holdSignals, shutdown } from "../signals.js";

interface SelectFlags {
  workspace?: string;
  all?: boolean;
}

function selectorOptions(command: Command, all: boolean): Command {
  command
    .argument("[run]", "a run id (or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace");
  if (all) command.option("--all", "every recorded run");
  return command;
}

function wholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
  return Number(value);
}

export function registerRuns(program: Command): void {
  program
    .command("cp")
    .description(
      "copy files between a run's workspace and this machine, through the Engine API (any engine, a remote one too):\n" +
        "  openwork cp RUN:/workspace/PATH LOCAL   or   openwork cp LOCAL RUN:/workspace/PATH\n" +
        "(RUN: a run id or a unique prefix; into an existing directory under the same name, as docker cp)",
    )
    .argument("<source>", "RUN:/workspace/PATH or a local path")
    .argument("<destination>", "a local path or RUN:/workspace/PATH")
    .action(async (source: string, destination: string, _flags: unknown, command: Command) => {
      const ctx = await contextFrom(command);
      const { RunRegistry } = await import("../../runs/registry.js");
      const { copyFiles, parseCopyEnd } = await import("../../runs/copy.js");
      const report = await copyFiles({
        registry: new RunRegistry(),
        log: ctx.log,
        from: parseCopyEnd(source),
        to: parseCopyEnd(destination),
      });
      ctx.output(report, () =>
        [
          `copied ${report.files} file(s), ${report.bytes} bytes ${report.direction === "from-run" ? "from" : "to"} run ${report.runId}`,
          ...(report.skippedLinks > 0
            ? [
                `${report.skippedLinks} link(s) in the sandbox's copy were not recreated here (a link could point anywhere)`,
              ]
            : []),
        ].join("\n"),
      );
    });

  selectorOptions(
    program
      .command("status")
      .description(
        "show runs: the local state (process or container alive) and the runtime's own view (server reachable,\n" +
          "each component's state). Exit 0 running and healthy, 1 unhealthy, 3 not running.",
      ),
    true,
  ).action(async (run: string | undefined, flags: SelectFlags, command: Command) => {
    const ctx = await contextFrom(command);
    const { RunRegistry } = await import("../../runs/registry.js");
    const { statusOf } = await import("../../runs/status.js");
    const { renderStatus } = await import("../render.js");
    const { statuses, orphans, corrupt, exitCode } = await statusOf(new RunRegistry(), ctx.log, {
      run,
      workspace: flags.workspace,
      all: flags.all,
    });
    process.exitCode = exitCode;
    if (!flags.all) {
      const status = statuses[0];
      const where = flags.workspace ?? process.cwd();
      ctx.output(status ? { ...status, orphans } : { state: "not-running", workspace: where, orphans }, () =>
        status ? renderStatus([status], orphans, corrupt) : `no run is recorded for ${where}`,
      );
      return;
    }
    ctx.output({ runs: statuses, orphans, corrupt }, () =>
      statuses.length === 0 ? "no runs are recorded" : renderStatus(statuses, orphans, corrupt),
    );
  });

  selectorOptions(
    program
      .command("stop")
      .description("stop runs (grace, then kill) and remove their sandboxes; stopping a stopped run succeeds")
      .option("--orphans", "also remove sandboxes that carry openwork's labels but belong to no live run")
      .option("--grace <seconds>", "how long to wait after SIGTERM before killing", "10"),
    true,
  ).action(
    async (
      run: string | undefined,
      flags: SelectFlags & { orphans?: boolean; grace: string },
      command: Command,
    ) => {
      const release = holdSignals();
      try {
        const ctx = await contextFrom(command);
        const { RunRegistry } = await import("../../runs/registry.js");
        const { stopRuns } = await import("../../runs/stop.js");
        const grace = Number(flags.grace);
        if (!Number.isFinite(grace) || grace < 0)
          throw new UsageError(`--grace must be a number of seconds, not "${flags.grace}"`);
        const report = await stopRuns({
          registry: new RunRegistry(),
          log: ctx.log,
          selector: { run, workspace: flags.workspace, all: flags.all },
          orphans: flags.orphans === true,
          graceMs: grace * 1000,
          signal: shutdown.signal,
        });
        const removed = report.orphansRemoved ?? [];
        ctx.output({ stopped: report.stopped, orphansRemoved: removed }, () => {
          const lines = report.stopped.map(
            (item) =>
              `${item.runId}: ${item.wasAlready ? `already ${item.state}` : item.state}${item.notRecorded ? ` (not recorded: ${item.notRecorded})` : ""}`,
          );
          if (report.nothingSelected) lines.push("nothing to stop: no run is recorded for this workspace");
          for (const orphan of removed)
            lines.push(`removed orphan ${orphan.kind} ${orphan.id} (run ${orphan.runId ?? "?"})`);
          if (report.orphansRemoved !== null && removed.length === 0) lines.push("no orphans found");
          return lines.join("\n");
        });
      } finally {
        release();
      }
    },
  );

  selectorOptions(
    program
      .command("logs")
      .description("print a run's logs: the runtime (entrypoint and server), or one component's own log")
      .option("--follow", "keep printing new lines until Ctrl-C")
      .option("--tail <n>", "only the last N lines")
      .addOption(new Option("--component <name>", "whose log").choices([...LOG_SOURCES]).default("runtime")),
    false,
  ).action(
    async (
      run: string | undefined,
      flags: SelectFlags & { follow?: boolean; tail?: string; component: LogSource },
      command: Command,
    ) => {
      const ctx = await contextFrom(command);
      const { readRunLogs } = await import("../../runs/logs.js");
      const { RunRegistry } = await import("../../runs/registry.js");
      const { findRun } = await import("../../runs/select.js");
      const tail = wholeNumber(flags.tail, "--tail");
      const record = await findRun(new RunRegistry(), ctx.log, { run, workspace: flags.workspace });
      const lines: string[] = [];
      const emit = (line: string) => {
        if (ctx.json) lines.push(line);
        // The engine's and router's logs are written in the sandbox: never raw to the terminal.
        else process.stdout.write(`${printable(line)}\n`);
      };
      // Ctrl-C is how a follow ends: finish the output and exit 0, not 130.
      const release = flags.follow ? holdSignals() : () => {};
      try {
        await readRunLogs(
          record,
          {
            source: flags.component,
            follow: flags.follow === true,
            tail,
            signal: flags.follow ? shutdown.signal : undefined,
          },
          emit,
        );
        if (ctx.json) ctx.output({ runId: record.runId, component: flags.component, lines }, () => "");
        if (shutdown.signal.aborted) process.exitCode = 0;
      } finally {
        release();
      }
    },
  );

  selectorOptions(
    program
      .command("open")
      .description(
        "print a one-time login link (valid 60 s, single use) to the engine's web UI of a running run;\n" +
          "with --browser, also open it with the platform's opener (xdg-open, open, start)",
      )
      .option("--browser", "open the link in the default browser"),
    false,
  ).action(async (run: string | undefined, flags: SelectFlags & { browser?: boolean }, command: Command) => {
    const ctx = await contextFrom(command);
    const { RunRegistry } = await import("../../runs/registry.js");
    const { loginLink, openInBrowser } = await import("../../runs/open.js");
    const link = await loginLink(new RunRegistry(), ctx.log, { run, workspace: flags.workspace });
    if (flags.browser) await openInBrowser(link.url);
    ctx.output(link, () => link.url);
  });

  selectorOptions(
    program
      .command("check")
      .description(
        "smoke-test a running runtime: health, versions, owner token, proxy, an engine session (exit 0/1)",
      )
      .option("--check-events", "also wait for a server-sent event from the engine"),
    false,
  ).action(
    async (run: string | undefined, flags: SelectFlags & { checkEvents?: boolean }, command: Command) => {
      const ctx = await contextFrom(command);
      const { runChecks } = await import("../../runs/check.js");
      const { RunRegistry } = await import("../../runs/registry.js");
      const { findRunningRun } = await import("../../runs/select.js");
      const { renderChecks } = await import("../render.js");
      const { record, secrets } = await findRunningRun(new RunRegistry(), ctx.log, {
        run,
        workspace: flags.workspace,
      });
      const checks = await runChecks(record, secrets, { events: flags.checkEvents === true });
      const passed = checks.every((check) => check.ok);
      ctx.output({ runId: record.runId, passed, checks }, () => renderChecks(checks));
      process.exitCode = passed ? ExitCode.ok : ExitCode.failure;
    },
  );
}
