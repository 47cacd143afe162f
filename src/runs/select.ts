import { realpath } from "node:fs/promises";
import path from "node:path";
import { ExitCode, OpenworkError, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { ENGINE_WORKSPACE_PREFIX } from "../shipping/target.js";
import { reconcileAll } from "./reconcile.js";
import type { RunRecord, RunSecrets } from "./record.js";
import type { CorruptRecord, RunRegistry } from "./registry.js";

export interface RunSelector {
  run?: string | undefined;
  workspace?: string | undefined;
  all?: boolean | undefined;
}

/**
 * Which runs a command is about: a run id (or a unique prefix of one), a
 * workspace (its newest run), or all. With none of them, the workspace is the
 * current directory.
 */
export async function selectRuns(
  records: RunRecord[],
  selector: RunSelector,
  corrupt: readonly CorruptRecord[] = [],
): Promise<RunRecord[]> {
  const given = [selector.run !== undefined, selector.workspace !== undefined, selector.all === true].filter(
    Boolean,
  ).length;
  if (given > 1) throw new UsageError("give one of RUN, --workspace or --all");
  if (selector.all) return records;
  if (selector.run !== undefined) {
    const matches = records.filter(
      (record) => record.runId === selector.run || record.runId.startsWith(selector.run ?? ""),
    );
    const exact = matches.find((record) => record.runId === selector.run);
    if (exact) return [exact];
    if (matches.length > 1)
      throw new UsageError(
        `run id "${selector.run}" is ambiguous: it starts ${matches.length} runs`,
        "give more of it",
      );
    if (matches.length === 0) {
      // A run whose record cannot be read is not a run that was never recorded: say which it is.
      const unreadable = corrupt.find((entry) => entry.runId.startsWith(selector.run ?? ""));
      if (unreadable)
        throw new OpenworkError(unreadable.reason, {
          code: "run_record_corrupt",
          hint: "if the run is gone, remove its directory; a runtime still running for it is listed by `openwork status --all`",
        });
      throw new UsageError(`no run "${selector.run}" is recorded`, "see `openwork status --all`");
    }
    return matches;
  }
  const workspace = await realWorkspace(selector.workspace ?? process.cwd());
  const mine = records.filter((record) => record.workspace === workspace);
  return mine.slice(0, 1);
}

async function realWorkspace(input: string): Promise<string> {
  // A directory of an engine's host (engine:/path) is named as the run records it.
  if (input.startsWith(ENGINE_WORKSPACE_PREFIX)) return input;
  try {
    return await realpath(path.resolve(input));
  } catch {
    return path.resolve(input);
  }
}

/** The newest recorded run the selector names (any state): a not-running error (exit 3) when there is none. */
export async function findRun(
  registry: RunRegistry,
  log: Logger,
  selector: Omit<RunSelector, "all">,
): Promise<RunRecord> {
  const { records, corrupt } = await reconcileAll(registry, log, { orphans: false });
  const [record] = await selectRuns(records, selector, corrupt);
  if (!record)
    throw new OpenworkError("no run is recorded for this workspace", {
      code: "not_running",
      exitCode: ExitCode.notRunning,
      hint: "start one with `openwork start --detach`",
    });
  return record;
}

/**
 * The running run a command acts on, with its secrets: a not-running error
 * (exit 3) when there is none, so that every command says it the same way.
 */
export async function findRunningRun(
  registry: RunRegistry,
  log: Logger,
  selector: Omit<RunSelector, "all">,
): Promise<{ record: RunRecord & { url: string }; secrets: RunSecrets }> {
  const record = await findRun(registry, log, selector);
  if (record.state !== "running" || !record.url) {
    throw new OpenworkError(`run ${record.runId} is ${record.state}`, {
      code: "not_running",
      exitCode: ExitCode.notRunning,
      hint: "start one with `openwork start --detach`",
    });
  }
  const secrets = await registry.readSecrets(record.runId);
  if (!secrets) {
    throw new OpenworkError(
      `the secrets of run ${record.runId} are missing (${registry.secretsFile(record.runId)})`,
      { code: "secrets_missing" },
    );
  }
  return { record: { ...record, url: record.url }, secrets };
}
