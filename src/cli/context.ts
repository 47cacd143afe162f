import type { Command } from "commander";
import { UsageError } from "../errors/errors.js";
import type { LogFormat, Logger } from "../logging/logger.js";

/** What every command gets: the global flags, a logger on stderr, and the one way to print results. */
export interface CommandContext {
  json: boolean;
  verbose: boolean;
  logFormat: LogFormat;
  log: Logger;
  /** Print the command's result: one JSON document with --json, else the human rendering. */
  output(data: unknown, human: () => string): void;
}

export interface GlobalOptions {
  json?: boolean;
  verbose?: boolean;
  logFormat?: string;
}

/** Loads the logger (pino) only now: `--version` and `--help` never need it. */
export async function contextFrom(command: Command): Promise<CommandContext> {
  const { createLogger, defaultLogFormat } = await import("../logging/logger.js");
  const opts = command.optsWithGlobals<GlobalOptions>();
  const logFormat = parseLogFormat(opts.logFormat, defaultLogFormat);
  const verbose = opts.verbose === true;
  const log = createLogger({ format: logFormat, level: verbose ? "debug" : undefined });
  const json = opts.json === true;
  return {
    json,
    verbose,
    logFormat,
    log,
    output(data, human) {
      const text = json ? `${JSON.stringify(data, null, 2)}\n` : human();
      if (text.length > 0) process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
    },
  };
}

function parseLogFormat(value: string | undefined, defaultLogFormat: () => LogFormat): LogFormat {
  if (value === undefined) return defaultLogFormat();
  if (value === "pretty" || value === "json") return value;
  throw new UsageError(`--log-format must be "pretty" or "json", not "${value}"`);
}
