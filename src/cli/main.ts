import { CommanderError } from "commander";
import { ExitCode, errorMessage, isOpenworkError, oneLine, StartFailedError } from "../errors/errors.js";
import { redactText } from "../logging/redact.js";
import { buildProgram } from "./program.js";
import { cliWording } from "./wording.js";

/**
 * Run the CLI and return the exit code. Every failure ends as one line on
 * stderr (a stack trace only with --verbose) and the contract's exit code.
 */
export async function main(argv: string[] = process.argv): Promise<number> {
  const program = buildProgram();
  const verbose = argv.includes("--verbose");
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : ExitCode.ok;
  } catch (error) {
    return reportError(error, verbose);
  }
}

export function reportError(error: unknown, verbose: boolean): number {
  if (error instanceof CommanderError) {
    if (
      error.code === "commander.helpDisplayed" ||
      error.code === "commander.version" ||
      error.exitCode === 0
    ) {
      return ExitCode.ok;
    }
    if (error.code === "commander.help") return ExitCode.ok;
    const message = error.message.replace(/^error:\s*/, "").replace(/\s*\n\s*/g, " ");
    process.stderr.write(`openwork: ${message} (see "openwork --help")\n`);
    return ExitCode.usage;
  }
  if (error instanceof StartFailedError) {
    // A failed start: the message, then what the failing component printed last.
    process.stderr.write(`openwork: ${redactText(error.message)}\n`);
    if (error.lastOutput.length > 0) {
      process.stderr.write(
        `its last output:\n${error.lastOutput.map((line) => `  ${redactText(line)}`).join("\n")}\n`,
      );
    }
    return error.exitCode;
  }
  if (isOpenworkError(error)) {
    const worded = cliWording(error);
    process.stderr.write(`openwork: ${redactText(oneLine({ ...error, ...worded }))}\n`);
    if (verbose && error instanceof Error && error.stack)
      process.stderr.write(`${redactText(error.stack)}\n`);
    return error.exitCode;
  }
  const hint = verbose ? "" : " (run again with --verbose for the stack trace)";
  process.stderr.write(
    `openwork: unexpected error: ${redactText(errorMessage(error)).split("\n")[0]}${hint}\n`,
  );
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${redactText(error.stack)}\n`);
  return ExitCode.failure;
}
