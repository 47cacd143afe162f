import { accessSync, constants } from "node:fs";
import path from "node:path";
import { errorMessage, OpenworkError, systemErrorCode } from "../../errors/errors.js";
import { redactText } from "../../logging/redact.js";

/** Env switch naming the `container` executable (tests point it at the emulator). */
export const APPLE_BIN_ENV = "OPENWORK_APPLE_CONTAINER_BIN";

export interface AppleCliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface AppleCliOptions {
  /** added to the inherited environment: how secret values reach `-e NAME` */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function appleBin(env: NodeJS.ProcessEnv = process.env): string {
  return env[APPLE_BIN_ENV] || "container";
}

/**
 * Run the CLI once and collect its output. A missing executable becomes an
 * error that says how to install it; any other outcome is returned for the
 * caller to judge, because Apple's exit codes carry meaning (system status: 1
 * means the service is down).
 */
export async function runAppleCli(
  bin: string,
  args: string[],
  options: AppleCliOptions = {},
): Promise<AppleCliResult> {
  // Not on PATH: the answer spawning would give (ENOENT), without loading a process library for it.
  if (!onPath(bin, options.env?.PATH ?? process.env.PATH)) throw notInstalled(bin);
  const { execa } = await import("execa");
  try {
    const result = await execa(bin, args, {
      reject: false,
      stdin: "ignore",
      timeout: options.timeoutMs ?? 60_000,
      env: { NO_COLOR: "1", ...options.env },
      extendEnv: true,
      stripFinalNewline: false,
    });
    if (result.timedOut)
      throw new OpenworkError(
        `\`${bin} ${args[0] ?? ""}\` did not finish within ${options.timeoutMs ?? 60_000} ms`,
        {
          code: "apple_timeout",
          hint: "check `container system status`; the service may be hung",
        },
      );
    if (result.failed && result.exitCode === undefined) {
      const code = systemErrorCode(result.cause) ?? systemErrorCode(result);
      if (code === "ENOENT") throw notInstalled(bin);
      throw new OpenworkError(
        `cannot run ${bin}: ${firstLine(errorMessage(result.cause ?? result.message))}`,
        {
          code: "apple_exec",
        },
      );
    }
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  } catch (error) {
    if (error instanceof OpenworkError) throw error;
    if (systemErrorCode(error) === "ENOENT") throw notInstalled(bin);
    throw error;
  }
}

/** Whether `bin` (a path, or a name looked up on PATH) names an executable file. */
export function onPath(bin: string, searchPath = process.env.PATH ?? ""): boolean {
  const candidates = bin.includes("/")
    ? [bin]
    : searchPath
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, bin));
  return candidates.some((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export function notInstalled(bin: string): OpenworkError {
  return new OpenworkError(`Apple's container CLI was not found (${bin})`, {
    code: "apple_not_installed",
    hint: `install it from github.com/apple/container/releases (macOS 15+ on Apple silicon), or set ${APPLE_BIN_ENV}`,
  });
}

export function firstLine(text: string): string {
  return text.split("\n").find((line) => line.trim() !== "") ?? "";
}

/** The CLI's own error (swift-argument-parser or the service), one line, secrets redacted. */
export function cliError(result: AppleCliResult): string {
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  const error = lines.find((line) => line.startsWith("Error:")) ?? lines[0] ?? firstLine(result.stdout);
  return redactText(error ? error.trim() : `exit code ${result.exitCode}`);
}

/** Apple reports an unknown container as a notFound error. */
export function isNotFound(result: AppleCliResult): boolean {
  return /not ?found|no such container|does not exist/i.test(result.stderr);
}
