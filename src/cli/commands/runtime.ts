import type { Command } from "commander";
import { ExitCode, OpenworkError } from "../../errors/errors.js";
import { RuntimeClient } from "../../runs/client.js";
import { reconcileAll } from "../../runs/reconcile.js";
import { RunRegistry } from "../../runs/registry.js";
import { selectRuns } from "../../runs/select.js";
import { type UpgradeOperation, upgradeRun } from "../../runs/upgrade.js";
import { versionOf } from "../../runs/versions.js";
import { contextFrom, renderTable } from "../context.js";
import { holdSignals, shutdown } from "../signals.js";

/** The running run a command acts on, with its secrets: exit 3 when there is none. */
export async function runningRun(command: Command, run: string | undefined, workspace: string | undefined) {
  const ctx = contextFrom(command);
  const registry = new RunRegistry();
  const { records } = await reconcileAll(registry, ctx.log, { orphans: false });
  const [record] = await selectRuns(records, { run, workspace });
  if (record?.state !== "running" || !record.url) {
    throw new OpenworkError(
      record ? `run ${record.runId} is ${record.state}` : "no run is recorded for this workspace",
      {
        code: "not_running",
        exitCode: ExitCode.notRunning,
        hint: "start one with `openwork start --detach`",
      },
    );
  }
  const secrets = await registry.readSecrets(record.runId);
  if (!secrets) {
    throw new OpenworkError(
      `the secrets of run ${record.runId} are missing (${registry.secretsFile(record.runId)})`,
      { code: "secrets_missing" },
    );
  }
  return { ctx, registry, record, secrets };
}

export function registerRuntime(program: Command): void {
  const runtime = program
    .command("runtime")
    .description("the running runtime's versions and rolling upgrades (/system/runtime/*)");

  runtime
    .command("versions")
    .description("what is running (as the processes report it), what is pinned, and the upgrade target")
    .argument("[run]", "a run id (or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace")
    .action(async (run: string | undefined, flags: { workspace?: string }, command: Command) => {
      const { ctx, record, secrets } = await runningRun(command, run, flags.workspace);
      const client = new RuntimeClient(record.url as string, { client: secrets.clientToken });
      const versions = await client.data<Record<string, Record<string, unknown> | null>>(
        "GET",
        "/system/runtime/versions",
      );
      ctx.output({ runId: record.runId, ...versions }, () => {
        const names = new Set<string>();
        for (const group of Object.values(versions))
          for (const name of Object.keys(group ?? {})) names.add(name);
        const cell = (group: Record<string, unknown> | null | undefined, name: string) =>
          versionOf(group?.[name]) ?? "-";
        return renderTable(
          ["COMPONENT", "ACTIVE", "PINNED", "TARGET"],
          [...names].map((name) => [
            name,
            cell(versions.active, name),
            cell(versions.pinned, name),
            cell(versions.target, name),
          ]),
        );
      });
    });

  runtime
    .command("upgrade")
    .description(
      "rolling upgrade of a running runtime: resolve, verify and stage the manifest's sidecars into the run's\n" +
        "persisted directory, then let the server swap each component behind a health gate (rolls back on failure)",
    )
    .argument("[run]", "a run id (or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace")
    .requiredOption("--manifest <url|path>", "the manifest of the runtime to upgrade to")
    .option("--components <names>", "comma-separated subset: opencode,opencode-router,openwork-server")
    .action(
      async (
        run: string | undefined,
        flags: { workspace?: string; manifest: string; components?: string },
        command: Command,
      ) => {
        const release = holdSignals();
        try {
          const { ctx, registry, record, secrets } = await runningRun(command, run, flags.workspace);
          const operation: UpgradeOperation = await upgradeRun({
            registry,
            record,
            secrets,
            manifest: flags.manifest,
            components: flags.components
              ?.split(",")
              .map((name) => name.trim())
              .filter(Boolean),
            log: ctx.log,
            signal: shutdown.signal,
            onProgress: (op) =>
              ctx.log.info(
                { operationId: op.operationId, state: op.state, step: op.step },
                `upgrade: ${op.step ?? op.state}`,
              ),
          });
          ctx.output(operation, () =>
            operation.state === "succeeded"
              ? `upgrade ${operation.operationId} succeeded`
              : `upgrade ${operation.operationId} ${operation.state}${operation.error ? `: ${operation.error.step ?? ""} ${operation.error.message ?? ""}` : ""}`,
          );
          process.exitCode = operation.state === "succeeded" ? ExitCode.ok : ExitCode.failure;
        } finally {
          release();
        }
      },
    );
}
