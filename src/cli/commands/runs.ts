import { type Command, Option } from "commander";
import { ExitCode, errorMessage, OpenworkError, UsageError } from "../../errors/errors.js";
import { runChecks } from "../../runs/check.js";
import { RuntimeClient } from "../../runs/client.js";
import { backendOf, reconcileAll, stopRun } from "../../runs/reconcile.js";
import type { RunRecord } from "../../runs/record.js";
import { RunRegistry } from "../../runs/registry.js";
import { selectRuns } from "../../runs/select.js";
import type { ListedSandbox } from "../../sandbox/backend.js";
import { followFile, tailFile } from "../../sandbox/host/log-file.js";
import { contextFrom, renderTable } from "../context.js";
import { holdSignals, shutdown } from "../signals.js";
import { runningRun } from "./runtime.js";
import { renderChecks } from "./start.js";

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

export interface RunStatus {
  runId: string;
  workspace: string;
  sandbox: RunRecord["sandbox"];
  state: RunRecord["state"];
  url: string | undefined;
  versions: RunRecord["versions"];
  healthy: boolean;
  reason: string | undefined;
  local: { sandbox: string; id: string | undefined };
  runtime: { reachable: boolean; error?: string; components?: unknown };
  createdAt: string;
  startedAt: string | undefined;
}

/** Local state (is the process or container there) and the runtime's own view (what its server says). */
async function describe(registry: RunRegistry, record: RunRecord): Promise<RunStatus> {
  const base = {
    runId: record.runId,
    workspace: record.workspace,
    sandbox: record.sandbox,
    state: record.state,
    url: record.url,
    versions: record.versions,
    reason: record.reason,
    createdAt: record.createdAt,
    startedAt: record.startedAt,
  };
  let local = "not running";
  if (record.handle && record.state !== "stopped") {
    const status = await backendOf(record.sandbox)
      .status(record.handle)
      .catch((error: unknown) => ({ state: `unknown (${errorMessage(error)})`, exitCode: undefined }));
    local = status.state === "exited" ? `exited (code ${status.exitCode ?? "?"})` : status.state;
  }
  if (record.state !== "running" || !record.url) {
    return {
      ...base,
      healthy: false,
      local: { sandbox: local, id: record.handle?.id },
      runtime: { reachable: false },
    };
  }
  const secrets = await registry.readSecrets(record.runId);
  const client = new RuntimeClient(record.url, { client: secrets?.clientToken });
  const health = await client.healthy(2000);
  let runtime: RunStatus["runtime"] = {
    reachable: health.ok,
    ...(health.ok ? {} : { error: health.reason }),
  };
  if (health.ok) {
    try {
      runtime = {
        reachable: true,
        components: await client.data<unknown>("GET", "/system/runtime/summary", { timeoutMs: 3000 }),
      };
    } catch (error) {
      runtime = { reachable: true, error: errorMessage(error) };
    }
  }
  const healthy = health.ok && !runtime.error && componentsHealthy(runtime.components);
  return { ...base, healthy, local: { sandbox: local, id: record.handle?.id }, runtime };
}

function componentsHealthy(summary: unknown): boolean {
  const components = (
    summary as { components?: Record<string, { status?: string; enabled?: boolean }> } | undefined
  )?.components;
  if (!components) return true;
  return Object.values(components).every(
    (component) =>
      component.enabled === false ||
      component.status === undefined ||
      ["running", "healthy", "disabled"].includes(component.status),
  );
}

function componentLine(status: RunStatus): string {
  const components = (
    status.runtime.components as { components?: Record<string, { status?: string }> } | undefined
  )?.components;
  if (!components) return status.runtime.reachable ? "reachable" : (status.runtime.error ?? "unreachable");
  return Object.entries(components)
    .map(([name, component]) => `${name}=${component.status ?? "?"}`)
    .join(" ");
}

export function registerRuns(program: Command): void {
  selectorOptions(
    program
      .command("status")
      .description(
        "show runs: the local state (process or container alive) and the runtime's own view (server reachable,\n" +
          "each component's state). Exit 0 running and healthy, 1 unhealthy, 3 not running.",
      ),
    true,
  ).action(async (run: string | undefined, flags: SelectFlags, command: Command) => {
    const ctx = contextFrom(command);
    const registry = new RunRegistry();
    const { records, orphans, corrupt } = await reconcileAll(registry, ctx.log);
    const selected = await selectRuns(records, { run, workspace: flags.workspace, all: flags.all });
    const statuses = await Promise.all(selected.map((record) => describe(registry, record)));
    const live = statuses.filter(
      (status) => status.state === "running" || status.state === "starting" || status.state === "retiring",
    );
    const single = !flags.all;
    process.exitCode =
      live.length === 0
        ? ExitCode.notRunning
        : live.every((status) => status.healthy)
          ? ExitCode.ok
          : ExitCode.failure;
    const orphanList = orphans.map(describeOrphan);
    if (single) {
      const status = statuses[0];
      ctx.output(
        status
          ? { ...status, orphans: orphanList }
          : { state: "not-running", workspace: flags.workspace ?? process.cwd(), orphans: orphanList },
        () =>
          status
            ? renderStatus([status], orphanList, corrupt)
            : `no run is recorded for ${flags.workspace ?? process.cwd()}`,
      );
      return;
    }
    ctx.output({ runs: statuses, orphans: orphanList, corrupt }, () =>
      statuses.length === 0 ? "no runs are recorded" : renderStatus(statuses, orphanList, corrupt),
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
        const ctx = contextFrom(command);
        const grace = Number(flags.grace);
        if (!Number.isFinite(grace) || grace < 0)
          throw new UsageError(`--grace must be a number of seconds, not "${flags.grace}"`);
        const registry = new RunRegistry();
        const { records, orphans } = await reconcileAll(registry, ctx.log);
        const selected =
          flags.orphans && run === undefined && flags.workspace === undefined && !flags.all
            ? []
            : await selectRuns(records, { run, workspace: flags.workspace, all: flags.all });
        const stopped: Array<{ runId: string; state: string; wasAlready: boolean }> = [];
        for (const record of selected) {
          if (shutdown.signal.aborted) break;
          const wasAlready = record.state === "stopped" || record.state === "failed";
          const after = await stopRun(registry, record, ctx.log, grace * 1000);
          stopped.push({ runId: record.runId, state: after.state, wasAlready });
        }
        const removed: ReturnType<typeof describeOrphan>[] = [];
        if (flags.orphans) {
          for (const orphan of orphans) {
            const backend = backendOf(orphan.kind);
            await backend.stop(orphan, grace * 1000);
            await backend.remove(orphan);
            removed.push(describeOrphan(orphan));
          }
        }
        ctx.output({ stopped, orphansRemoved: removed }, () => {
          const lines = stopped.map(
            (item) => `${item.runId}: ${item.wasAlready ? `already ${item.state}` : item.state}`,
          );
          if (selected.length === 0 && !flags.orphans)
            lines.push("nothing to stop: no run is recorded for this workspace");
          for (const orphan of removed)
            lines.push(`removed orphan ${orphan.kind} ${orphan.id} (run ${orphan.runId ?? "?"})`);
          if (flags.orphans && removed.length === 0) lines.push("no orphans found");
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
      .addOption(
        new Option("--component <name>", "whose log")
          .choices(["runtime", "engine", "router"])
          .default("runtime"),
      ),
    false,
  ).action(
    async (
      run: string | undefined,
      flags: SelectFlags & { follow?: boolean; tail?: string; component: string },
      command: Command,
    ) => {
      const ctx = contextFrom(command);
      const tail = flags.tail === undefined ? undefined : Number(flags.tail);
      if (tail !== undefined && (!Number.isInteger(tail) || tail < 0))
        throw new UsageError(`--tail must be a whole number, not "${flags.tail}"`);
      const registry = new RunRegistry();
      const { records } = await reconcileAll(registry, ctx.log, { orphans: false });
      const [record] = await selectRuns(records, { run, workspace: flags.workspace });
      if (!record)
        throw new OpenworkError("no run is recorded for this workspace", {
          code: "not_running",
          exitCode: ExitCode.notRunning,
        });
      const lines: string[] = [];
      const emit = (line: string) => {
        if (ctx.json) lines.push(line);
        else process.stdout.write(`${line}\n`);
      };
      const signal = flags.follow ? shutdown.signal : undefined;
      // Ctrl-C is how a follow ends: finish the output and exit 0, not 130.
      const release = flags.follow ? holdSignals() : () => {};
      if (flags.component !== "runtime") {
        const file = `${record.persistDir}/logs/${flags.component}.log`;
        if (flags.follow) await followFile(file, { tail, signal }, emit);
        else for (const line of await tailFile(file, tail)) emit(line);
      } else if (record.sandbox === "none" || !record.handle) {
        if (flags.follow) await followFile(record.logFile, { tail, signal }, emit);
        else for (const line of await tailFile(record.logFile, tail)) emit(line);
      } else {
        const status = await backendOf(record.sandbox).status(record.handle);
        if (status.state === "missing") {
          throw new OpenworkError(`the sandbox of run ${record.runId} is gone, and its output with it`, {
            code: "logs_unavailable",
            hint: "the engine's and router's own logs remain: --component engine|router",
          });
        }
        await backendOf(record.sandbox).logs(
          record.handle,
          { follow: flags.follow, tail, signal },
          (_stream, line) => emit(line),
        );
      }
      if (ctx.json) ctx.output({ runId: record.runId, component: flags.component, lines }, () => "");
      if (shutdown.signal.aborted) process.exitCode = 0;
      release();
    },
  );

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
      const { ctx, record, secrets } = await runningRun(command, run, flags.workspace);
      const checks = await runChecks(record, secrets, { events: flags.checkEvents === true });
      const passed = checks.every((check) => check.ok);
      ctx.output({ runId: record.runId, passed, checks }, () => renderChecks(checks));
      process.exitCode = passed ? ExitCode.ok : ExitCode.failure;
    },
  );
}

function describeOrphan(orphan: ListedSandbox) {
  return { kind: orphan.kind, id: orphan.id, runId: orphan.labels["openwork.run"], state: orphan.state };
}

function renderStatus(
  statuses: RunStatus[],
  orphans: ReturnType<typeof describeOrphan>[],
  corrupt: string[],
): string {
  const table = renderTable(
    ["RUN", "STATE", "HEALTH", "SANDBOX", "LOCAL", "COMPONENTS", "URL", "WORKSPACE"],
    statuses.map((status) => [
      status.runId,
      status.state,
      status.state === "running" ? (status.healthy ? "healthy" : "UNHEALTHY") : "-",
      status.sandbox,
      status.local.sandbox,
      status.state === "running" ? componentLine(status) : (status.reason ?? "-"),
      status.url ?? "-",
      status.workspace,
    ]),
  );
  const extra: string[] = [];
  for (const orphan of orphans)
    extra.push(
      `orphan: ${orphan.kind} ${orphan.id} (run ${orphan.runId ?? "?"}) has no live run; remove with \`openwork stop --orphans\``,
    );
  for (const name of corrupt) extra.push(`unreadable run record: ${name}`);
  return [table, ...extra].join("\n");
}
