import { createRequire } from "node:module";
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import type PinoPretty from "pino-pretty";
import { redactText, redactValue } from "./redact.js";

export type LogFormat = "pretty" | "json";
export type { Logger };

export interface LoggerOptions {
  format?: LogFormat | undefined;
  level?: string | undefined;
  /** Where records go; stderr by default so that stdout stays for results (--json). */
  destination?: NodeJS.WritableStream | undefined;
  name?: string | undefined;
}

// Loaded only for pretty output (a terminal): a piped or --json command, and the server, never pay for it.
let prettyModule: typeof PinoPretty | undefined;
function loadPretty(): typeof PinoPretty {
  prettyModule ??= createRequire(import.meta.url)("pino-pretty") as typeof PinoPretty;
  return prettyModule;
}

/** pretty on a TTY, JSON otherwise, unless the user chose. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY ? "pretty" : "json";
}

/**
 * The one logger factory. Every record passes through the redactor before it
 * is serialised: both the message and every field, so a secret cannot leak
 * through a field name we did not foresee.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? defaultLogFormat();
  const level = options.level ?? process.env.OPENWORK_LOG_LEVEL ?? "info";
  const destination = options.destination ?? process.stderr;
  const base = options.name ? { name: options.name } : {};
  const pinoOptions: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    hooks: {
      logMethod(args, method) {
        const redacted = args.map((arg) => redactValue(arg)) as Parameters<typeof method>;
        method.apply(this, redacted);
      },
    },
    formatters: {
      level: (label) => ({ level: label }),
    },
  };
  survive(destination);
  if (format === "pretty") {
    const stream = loadPretty()({
      destination: destination as unknown as Writable,
      sync: true,
      colorize: (destination as { isTTY?: boolean }).isTTY === true,
      ignore: "pid,hostname,name",
      translateTime: "HH:MM:ss.l",
    });
    return pino(pinoOptions, stream);
  }
  if (destination !== process.stderr) return pino(pinoOptions, destination as pino.DestinationStream);
  // Past 1 MiB of records it could not write (a full disk), the destination drops new ones instead of growing.
  const stream = pino.destination({ dest: 2, sync: true, maxLength: 1024 * 1024 });
  survive(stream);
  return pino(pinoOptions, stream);
}

const surviving = new WeakSet<object>();

/**
 * Logging never kills a process: a destination that cannot be written (a
 * full or read-only disk, a closed pipe) loses records, and says nothing
 * more about it than that it failed — there is nowhere to say it.
 */
function survive(stream: { on(event: "error", listener: (error: Error) => void): unknown }): void {
  if (surviving.has(stream) || typeof (stream as { on?: unknown }).on !== "function") return;
  surviving.add(stream);
  stream.on("error", () => undefined);
}

/** A logger that drops everything: for library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/**
 * Relays a child's output line by line into the logger, redacted, with the
 * component's name; keeps a partial trailing line until it is complete.
 */
export function lineRelay(onLine: (line: string) => void): Writable {
  let pending = "";
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString("utf8");
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.length > 0) onLine(redactText(line));
      callback();
    },
    final(callback) {
      if (pending.length > 0) onLine(redactText(pending));
      pending = "";
      callback();
    },
  });
}
