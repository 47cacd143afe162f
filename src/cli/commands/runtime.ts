import type { Command } from "commander";
import { UPGRADABLE, type Upgradable } from "../../contract/upgradable.js";
import { ExitCode, UsageError } from "../../errors/errors.js";
import { contextFrom } from "../context.js";
import { holdSignals, shutdown } from "../signals.js";

function parseComponents(value: string | undefined): Upgradable[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(",")
    .map((name) => name.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(UPGRADABLE as readonly string[]).includes(name))
      throw new UsageError(`--components: "${name}" is not one of ${UPGRADABLE.join(", ")}`);
  }
  if (names.length === 0) throw new UsageError(`--components needs at least one of ${UPGRADABLE.join(", ")}`);
  return names as Upgradable[];
}

export function registerRuntime(program: Command): void {
  const runtime = program
    .command("runtime")
    .description("the running runtime's versions and rolling upgrades (/system/runtime/*)");

  runtime
    .command("versions")
    .description(
      "per component: what is running (as the processes report it), what runtime.json pins, and the upgrade target",
    )
    .argument("[run]", "a run id (or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace")
    .action(async (run: string | undefined, flags: { workspace?: string }, command: Command) => {
      const ctx = await contextFrom(command);
      const { RuntimeClient } = await import("../../runs/client.js");
      const { RunRegistry } = await import("../../runs/registry.js");
      const { findRunningRun } = await import("../../runs/select.js");
      const { versionsReport } = await import("../../runs/versions.js");
      const { renderVersions } = await import("../render.js");
      const { record, secrets } = await findRunningRun(new RunRegistry(), ctx.log, {
        run,
        workspace: flags.workspace,
      });
      const versions = await new RuntimeClient(record.url, { client: secrets.clientToken }).versions();
      ctx.output({ runId: record.runId, ...versionsReport(versions) }, () => renderVersions(versions));
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
    .option("--components <names>", `comma-separated subset: ${UPGRADABLE.join(",")}`)
    .action(
      async (
        run: string | undefined,
        flags: { workspace?: string; manifest: string; components?: string },
        command: Command,
      ) => {
        const release = holdSignals();
        try {
          const ctx = await contextFrom(command);
          const { RunRegistry } = await import("../../runs/registry.js");
          const { findRunningRun } = await import("../../runs/select.js");
          const { upgradeRun } = await import("../../runs/upgrade.js");
          const components = parseComponents(flags.components);
          const registry = new RunRegistry();
          const { record, secrets } = await findRunningRun(registry, ctx.log, {
            run,
            workspace: flags.workspace,
          });
          if (record.sandbox === "swarm") {
            if (components)
              throw new UsageError(
                "--components does not apply to a Swarm runtime: its image is replaced whole",
              );
            const { upgradeSwarmRun } = await import("../../runs/swarm-upgrade.js");
            const result = await upgradeSwarmRun({
              registry,
              record,
              secrets,
              manifest: flags.manifest,
              log: ctx.log,
              signal: shutdown.signal,
            });
            ctx.output(result, () =>
              result.state === "succeeded"
                ? `Swarm update of ${result.runId} succeeded: runtime ${result.to.runtimeId} on ${result.node} in ${(result.durationMs / 1000).toFixed(1)} s`
                : `Swarm rolled ${result.runId} back to its previous image: ${result.message ?? "the new task was not healthy"}`,
            );
            process.exitCode = result.state === "succeeded" ? ExitCode.ok : ExitCode.failure;
            return;
          }
          const operation = await upgradeRun({
            registry,
            record,
            secrets,
            manifest: flags.manifest,
            components,
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
              : `upgrade ${operation.operationId} ${operation.state}${operation.error ? `: ${operation.error.step ?? ""} ${operation.error.message}` : ""}`,
          );
          process.exitCode = operation.state === "succeeded" ? ExitCode.ok : ExitCode.failure;
        } finally {
          release();
        }
      },
    );
}
