import type { RestartPolicy } from "./config.js";
import { formatDuration } from "./durations.js";

/**
 * The restart bookkeeping of one worker, as plain data (the supervisor keeps
 * one per worker and the heartbeat file shows it). pm2 and systemd both count
 * restarts inside a window and give up past a limit; a run that stayed up for
 * `minUptime` was a success, so the backoff starts over after it.
 */
export interface RestartLedger {
  /** when each restart within the policy's window happened (ms since the epoch) */
  recent: number[];
  /** every restart since the supervisor began watching this worker */
  total: number;
  /** failures in a row since the last run that stayed up for minUptime */
  consecutive: number;
}

export function emptyLedger(): RestartLedger {
  return { recent: [], total: 0, consecutive: 0 };
}

export type RestartDecision =
  | { kind: "restart"; delayMs: number; ledger: RestartLedger }
  | { kind: "give-up"; ledger: RestartLedger; reason: string };

/**
 * What to do when a worker's runtime is found gone or a start failed.
 * `upForMs` is how long the run that ended had been healthy (0 for a start
 * that never became healthy). `random` is injectable so tests can pin jitter.
 */
export function decideRestart(
  policy: RestartPolicy,
  ledger: RestartLedger,
  now: number,
  upForMs: number,
  random: () => number = Math.random,
): RestartDecision {
  const recent = ledger.recent.filter((at) => now - at < policy.windowMs);
  const consecutive = upForMs >= policy.minUptimeMs ? 0 : ledger.consecutive;
  if (recent.length >= policy.maxRestarts) {
    return {
      kind: "give-up",
      ledger: { ...ledger, recent, consecutive },
      reason: `restarted ${recent.length} times within ${formatDuration(policy.windowMs)} (maxRestarts ${policy.maxRestarts})`,
    };
  }
  const next: RestartLedger = {
    recent: [...recent, now],
    total: ledger.total + 1,
    consecutive: consecutive + 1,
  };
  return { kind: "restart", delayMs: backoffDelay(policy, next.consecutive, random), ledger: next };
}

/** initial × factor^(n−1), capped at max, then spread by ±jitter so a fleet does not restart in lockstep. */
export function backoffDelay(
  policy: RestartPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const { initialMs, maxMs, factor, jitter } = policy.backoff;
  const base = Math.min(maxMs, initialMs * factor ** Math.max(0, attempt - 1));
  const spread = base * jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}

/**
 * `maxMemory`: a runtime above the limit for `maxMemoryFor` in a row is
 * restarted (long-running engines grow); one sample below resets the clock.
 * Returns when it went above (null when below or off) and whether it is time.
 */
export function memoryVerdict(
  policy: RestartPolicy,
  memoryBytes: number | null,
  aboveSince: number | null,
  now: number,
): { aboveSince: number | null; restart: boolean } {
  if (policy.maxMemoryBytes === null || memoryBytes === null || memoryBytes <= policy.maxMemoryBytes)
    return { aboveSince: null, restart: false };
  const since = aboveSince ?? now;
  return { aboveSince: since, restart: now - since >= policy.maxMemoryForMs };
}
