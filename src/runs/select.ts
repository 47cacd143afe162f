import { realpath } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors/errors.js";
import type { RunRecord } from "./record.js";

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
export async function selectRuns(records: RunRecord[], selector: RunSelector): Promise<RunRecord[]> {
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
    if (matches.length === 0)
      throw new UsageError(`no run "${selector.run}" is recorded`, "see `openwork status --all`");
    return matches;
  }
  const workspace = await realWorkspace(selector.workspace ?? process.cwd());
  const mine = records.filter((record) => record.workspace === workspace);
  return mine.slice(0, 1);
}

async function realWorkspace(input: string): Promise<string> {
  try {
    return await realpath(path.resolve(input));
  } catch {
    return path.resolve(input);
  }
}
