import { type Command, Option } from "commander";
import { UsageError } from "../../errors/errors.js";
import { printable } from "../../logging/terminal.js";
import { type CommandContext, contextFrom } from "../context.js";
import { holdSignals, shutdown } from "../signals.js";

/** A whole run id (what `start` prints): the only first word `openwork run` takes for RUN rather than prompt. */
const RUN_ID = /^[0-9]{14}-[0-9a-f]{8}$/;

interface SessionFlags {
  workspace?: string;
  session?: string;
  continue?: boolean;
}

/** The engine's own messages go to the terminal these commands hand over: our logs stay at warnings unless --verbose. */
function quiet(ctx: CommandContext): CommandContext["log"] {
  return ctx.verbose ? ctx.log : ctx.log.child({}, { level: "warn" });
}

export function registerEngine(program: Command): void {
  program
    .command("attach")
    .description(
      "open opencode's own terminal UI on a running runtime, through the runtime server's proxy " +
        "(the run's client token is handed to it in its environment; needs a terminal)",
    )
    .argument("[run]", "a run id (or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace")
    .option("--session <id>", "open this engine session")
    .option("--continue", "open the latest session")
    .option("--fork", "fork the session it opens (with --session or --continue)")
    .action(async (run: string | undefined, flags: SessionFlags & { fork?: boolean }, command: Command) => {
      const ctx = await contextFrom(command);
      const { attachRun, checkSessionChoice, opencodeForHost, requireTerminal } = await import(
        "../../runs/attach.js"
      );
      const { RunRegistry } = await import("../../runs/registry.js");
      const { findRunningRun } = await import("../../runs/select.js");
      requireTerminal("openwork attach");
      checkSessionChoice(flags);
      const log = quiet(ctx);
      const { record, secrets } = await findRunningRun(new RunRegistry(), log, {
        run,
        workspace: flags.workspace,
      });
      const opencode = await opencodeForHost(record, secrets, log);
      log.debug({ opencode }, "attaching");
      // Signals are the child's to act on: this process passes them on and waits for its exit code.
      const release = holdSignals();
      try {
        process.exitCode = await attachRun({
          record,
          secrets,
          opencode: opencode.path,
          choice: flags,
          signal: shutdown.signal,
        });
      } finally {
        release();
      }
    });

  program
    .command("run")
    .description(
      "send one prompt through a running runtime and stream the answer to stdout (for scripts); exit 0 when " +
        "the session is idle again, 1 when it fails, 130 after Ctrl-C (the session's work is aborted)",
    )
    .argument(
      "[prompt...]",
      "the prompt (its words are joined); a whole run id as the first word names the run",
    )
    .option("--run <id>", "the run (a run id or a unique prefix of one)")
    .option("--workspace <dir>", "the newest run of this workspace (default: the current directory's)")
    .option("--session <id>", "send it to this engine session (default: a new session)")
    .option("--continue", "send it to the latest session")
    .option("--model <provider/model>", "the model (default: the engine's)")
    .option("--agent <name>", "the agent (default: the engine's)")
    .option("--shell <command>", "run a shell command in the session instead of a prompt (needs no model)")
    .addOption(
      new Option(
        "--format <format>",
        "default: the answer's text; json: the session's engine events, one per line",
      )
        .choices(["default", "json"])
        .default("default"),
    )
    .addHelpText(
      "after",
      '\nExamples:\n  openwork run "summarise README.md" --model anthropic/claude-sonnet-4\n' +
        '  openwork run 20250101120000-0a1b2c3d "explain the last commit"\n' +
        '  openwork run --workspace ~/project --shell "git status"\n' +
        '  openwork --json run --continue "and now in French"   (one JSON document: {runId, sessionId, text})\n' +
        "\nControl characters in the answer are shown escaped (ESC as \\x1b); --format json carries the exact text.",
    )
    .action(
      async (
        words: string[],
        flags: SessionFlags & {
          run?: string;
          model?: string;
          agent?: string;
          shell?: string;
          format: string;
        },
        command: Command,
      ) => {
        const ctx = await contextFrom(command);
        const { parseModel, sendPrompt } = await import("../../runs/prompt.js");
        const { RunRegistry } = await import("../../runs/registry.js");
        const { findRunningRun } = await import("../../runs/select.js");
        let run = flags.run;
        if (run === undefined && RUN_ID.test(words[0] ?? "")) run = words.shift();
        const text = words.join(" ").trim();
        if (flags.shell !== undefined && text.length > 0)
          throw new UsageError("give a prompt or --shell COMMAND, not both");
        if (flags.shell === undefined && text.length === 0)
          throw new UsageError('give the prompt, e.g. openwork run "what does this project do?"');
        if (flags.shell !== undefined && flags.shell.trim().length === 0)
          throw new UsageError("--shell needs a command");
        if (flags.session !== undefined && flags.continue)
          throw new UsageError("give --session ID or --continue, not both");
        if (ctx.json && flags.format === "json")
          throw new UsageError(
            "--json prints one document, --format json a line per event: give one of them",
          );
        const model = flags.model === undefined ? undefined : parseModel(flags.model);
        const log = quiet(ctx);
        const { record, secrets } = await findRunningRun(new RunRegistry(), log, {
          run,
          workspace: flags.workspace,
        });
        let last = "\n";
        const release = holdSignals();
        try {
          const result = await sendPrompt({
            record,
            secrets,
            request: {
              text: flags.shell === undefined ? text : undefined,
              shell: flags.shell,
              session: flags.session,
              continue: flags.continue,
              model,
              agent: flags.agent,
            },
            signal: shutdown.signal,
            log,
            // The answer is the model's (or a command's in the sandbox): never raw to a terminal.
            onText:
              ctx.json || flags.format === "json"
                ? undefined
                : (piece) => {
                    process.stdout.write(printable(piece));
                    last = piece;
                  },
            onEvent:
              flags.format === "json"
                ? (event) => process.stdout.write(`${JSON.stringify(event)}\n`)
                : undefined,
          });
          if (!ctx.json && flags.format !== "json" && !last.endsWith("\n")) process.stdout.write("\n");
          if (result.outcome === "aborted") return; // the signal's exit code stands (130 for Ctrl-C)
          ctx.output({ runId: record.runId, sessionId: result.sessionId, text: result.text }, () => "");
        } finally {
          release();
        }
      },
    );
}
