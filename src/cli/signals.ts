/**
 * Signal handling from the first instant: the entry module installs these
 * handlers before it loads the rest of the program, so Ctrl-C or SIGTERM at
 * any moment reaches code that can undo a half-done start.
 *
 * The first signal aborts `shutdown.signal`; work in progress sees it and
 * cleans up. With no such work (nothing holds signals) the process exits at
 * once. A second signal exits at once too.
 */
const SIGNALS: Array<[NodeJS.Signals, number]> = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 129],
];

export const shutdown = new AbortController();
let holders = 0;
let received = 0;
let installed = false;
let onHangup: (() => void) | undefined;

/**
 * A long-lived command that reloads on SIGHUP (the supervisor, like most
 * daemons) takes it over: SIGHUP then calls `handler` instead of shutting down.
 */
export function reloadOnHangup(handler: () => void): void {
  onHangup = handler;
}

export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const [signal, code] of SIGNALS) {
    process.on(signal, () => {
      if (signal === "SIGHUP" && onHangup) {
        onHangup();
        return;
      }
      received++;
      if (holders === 0 || received > 1) {
        if (received > 1) process.stderr.write(`openwork: ${signal} again: exiting without cleaning up\n`);
        process.exit(code);
      }
      process.exitCode = code;
      shutdown.abort(signal);
    });
  }
}

/** Keep the process alive on a signal until the returned release is called (the holder cleans up). */
export function holdSignals(): () => void {
  holders++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    holders--;
    if (holders === 0 && shutdown.signal.aborted)
      process.exit(typeof process.exitCode === "number" ? process.exitCode : 130);
  };
}
