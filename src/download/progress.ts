import cliProgress from "cli-progress";
import type { Logger } from "../logging/logger.js";

/** "auto": a bar on a TTY stderr, log lines otherwise; "log": always lines; "off": nothing. */
export type ProgressMode = "auto" | "bar" | "log" | "off";

export interface Progress {
  advance(bytes: number): void;
  /** the download ended (well or not); clears the bar */
  stop(): void;
}

const MiB = 1024 * 1024;

/**
 * Report bytes, rate and ETA of one transfer: a cli-progress bar when stderr
 * is a terminal, else an info line every 5 s (and at the end), so that a
 * non-interactive caller still sees that something moves.
 */
export function createProgress(options: {
  label: string;
  total: number | undefined;
  log: Logger;
  mode?: ProgressMode | undefined;
}): Progress {
  const mode = options.mode ?? "auto";
  if (mode === "off") return { advance() {}, stop() {} };
  const useBar = mode === "bar" || (mode === "auto" && process.stderr.isTTY === true);
  const started = Date.now();
  let done = 0;
  if (useBar) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: `${options.label} [{bar}] {percentage}% {doneMiB}/{totalMiB} MiB {rate} MiB/s ETA {eta_formatted}`,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
        fps: 8,
      },
      cliProgress.Presets.shades_classic,
    );
    const total = options.total ?? 0;
    bar.start(total, 0, payload(0, total, started));
    return {
      advance(bytes) {
        done += bytes;
        bar.update(done, payload(done, total, started));
      },
      stop() {
        bar.stop();
      },
    };
  }
  let lastLine = started;
  const line = (final: boolean) => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000);
    const rate = done / MiB / seconds;
    const total = options.total;
    const eta = total && rate > 0 ? Math.max(0, (total - done) / MiB / rate) : undefined;
    options.log.info(
      {
        bytes: done,
        total,
        rateMiBps: Number(rate.toFixed(2)),
        etaS: eta === undefined ? undefined : Math.round(eta),
      },
      `${options.label}: ${(done / MiB).toFixed(1)}${total ? `/${(total / MiB).toFixed(1)}` : ""} MiB` +
        ` at ${rate.toFixed(1)} MiB/s${final ? " (done)" : eta === undefined ? "" : `, about ${Math.round(eta)} s left`}`,
    );
  };
  return {
    advance(bytes) {
      done += bytes;
      if (Date.now() - lastLine >= 5000) {
        lastLine = Date.now();
        line(false);
      }
    },
    stop() {
      if (done > 0) line(true);
    },
  };
}

function payload(done: number, total: number, started: number): Record<string, string> {
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  return {
    doneMiB: (done / MiB).toFixed(1),
    totalMiB: total ? (total / MiB).toFixed(1) : "?",
    rate: (done / MiB / seconds).toFixed(1),
  };
}
