import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/logging/logger.js";

/** A JSON logger whose records a test can read back (messages, in order). */
export function captureLogger(): { log: Logger; messages: () => string[] } {
  const records: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (line.trim()) records.push(line);
      }
      callback();
    },
  });
  const log = createLogger({ format: "json", level: "debug", destination });
  return {
    log,
    messages: () => records.map((line) => String((JSON.parse(line) as { msg?: unknown }).msg ?? "")),
  };
}
