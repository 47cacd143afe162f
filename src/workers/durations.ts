/*
 * Durations in workers.json: a number of seconds, or a string with one unit
 * ("500ms", "5s", "10m", "1h"; a bare "5" is seconds too).
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** What a duration field accepts, for messages and docs. */
export const DURATION_FORMS = 'seconds as a number, or a string like "500ms", "5s", "10m", "1h"';

/** Milliseconds (rounded to whole ms), or undefined when `value` is not a duration of zero or more. */
export function parseDuration(value: unknown): number | undefined {
  let amount: number;
  let unit = "s";
  if (typeof value === "number") {
    amount = value;
  } else if (typeof value === "string") {
    const match = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$/i.exec(value);
    if (!match?.[1]) return undefined;
    amount = Number(match[1]);
    unit = (match[2] ?? "s").toLowerCase();
  } else {
    return undefined;
  }
  const ms = amount * (UNIT_MS[unit] ?? Number.NaN);
  if (!Number.isFinite(ms) || ms < 0 || ms > Number.MAX_SAFE_INTEGER) return undefined;
  return Math.round(ms);
}

/** A duration the way a person would write it back: 1500 → "1.5s", 600000 → "10m". */
export function formatDuration(ms: number): string {
  if (ms !== 0 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms !== 0 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 || ms === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
