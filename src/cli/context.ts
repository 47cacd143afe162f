import type { Command } from "commander";
import { UsageError } from "../errors/errors.js";
import { createLogger, defaultLogFormat, type LogFormat, type Logger } from "../logging/logger.js";

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

export function contextFrom(command: Command): CommandContext {
  const opts = command.optsWithGlobals<GlobalOptions>();
  const logFormat = parseLogFormat(opts.logFormat);
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

export function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined) return defaultLogFormat();
  if (value === "pretty" || value === "json") return value;
  throw new UsageError(`--log-format must be "pretty" or "json", not "${value}"`);
}
