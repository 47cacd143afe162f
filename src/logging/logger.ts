import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";
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
  if (format === "pretty") {
    const stream = pretty({
      destination: destination as unknown as Writable,
      sync: true,
      colorize: (destination as { isTTY?: boolean }).isTTY === true,
      ignore: "pid,hostname,name",
      translateTime: "HH:MM:ss.l",
    });
    return pino(pinoOptions, stream);
  }
  const stream = destination === process.stderr ? pino.destination({ dest: 2, sync: true }) : destination;
  return pino(pinoOptions, stream as pino.DestinationStream);
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
