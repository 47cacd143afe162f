import { copyFileSync, fstatSync, ftruncateSync, statSync } from "node:fs";
import type { Logger } from "pino";
import { OUTPUT_FILE_ENV } from "../contract/env.js";
import { errorMessage } from "../errors/errors.js";

/**
 * Rotate the file this process's stdout and stderr append to (a host run's
 * runtime.log) once it is larger than `maxBytes`: copy it to `<file>.1`, then
 * truncate it, which O_APPEND writers (the entrypoint's, the server's) survive.
 * Only a regular file named by the environment, and only when it is the very
 * file behind stdout, is touched. In a container the engine's log driver
 * rotates instead (its LogConfig).
 */
export function rotateOwnOutput(maxBytes: number, log: Logger, intervalMs = 5000): void {
  const file = process.env[OUTPUT_FILE_ENV];
  if (!file) return;
  const check = () => {
    try {
      const out = fstatSync(1);
      if (!out.isFile() || out.size <= maxBytes) return;
      const named = statSync(file);
      if (named.ino !== out.ino || named.dev !== out.dev) return;
      copyFileSync(file, `${file}.1`);
      ftruncateSync(1, 0);
      log.info({ file, bytes: out.size }, `rotated ${file} to ${file}.1`);
    } catch (error) {
      // A full disk must not take the server down: the next check tries again.
      log.warn(`could not rotate ${file}: ${errorMessage(error)}`);
    }
  };
  setInterval(check, intervalMs).unref();
}
