import { OpenworkError } from "../errors/errors.js";

/**
 * The one way this program waits for something: poll an attempt until it is
 * done, with a pace (a fixed interval, or exponential backoff with jitter),
 * an optional deadline and attempt budget, an abort signal, and an injectable
 * clock (tests drive time by hand). When it gives up, the error says what was
 * awaited, for how long, and the reason the last attempt gave.
 */

export interface Clock {
  now(): number;
  /** resolves after `ms`, or early (without throwing) when `signal` aborts */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = setTimeout(done, Math.max(0, ms));
      function done() {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    }),
};

/** Sleep on the system clock (the one primitive for a plain pause). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return systemClock.sleep(ms, signal);
}

/** How long to wait between attempts. */
export type Pace = { intervalMs: number; jitterMs?: number } | { backoff: BackoffPolicy };

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/**
 * Exponential backoff with "equal jitter": never sooner than half the
 * exponential step, spread over the rest, so that clients that failed
 * together do not retry together. `failures` counts the failures so far (0
 * for the first retry).
 */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: () => number = Math.random) {
  const step = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, failures));
  return Math.round(step / 2 + random() * (step / 2));
}

function delayOf(pace: Pace, failures: number, random: () => number): number {
  if ("backoff" in pace) return backoffDelay(failures, pace.backoff, random);
  return pace.intervalMs + (pace.jitterMs ? Math.round(random() * pace.jitterMs) : 0);
}

/**
 * The timeout of the next attempt while waiting for a component to start:
 * short at first, doubled after each attempt that timed out, up to the cap.
 * Why: opencode accepts connections a moment before it can answer them, and a
 * request that arrives then is never answered — measured, a first attempt
 * with a 2 s timeout made a restart take ~4.2 s where short attempts took ~2.5 s.
 * A slow but working component still gets the full cap after a few timeouts.
 */
export function nextAttemptTimeout(previousMs: number | undefined, timedOut: boolean, capMs: number): number {
  const first = Math.min(250, capMs);
  if (previousMs === undefined) return first;
  return timedOut ? Math.min(capMs, previousMs * 2) : previousMs;
}

/** What one attempt found: done with a value, or not yet, and why. */
export type Attempt<T> = { done: true; value: T } | { done: false; reason: string };

export function done<T>(value: T): Attempt<T> {
  return { done: true, value };
}

export function notYet(reason: string): Attempt<never> {
  return { done: false, reason };
}

export interface AttemptContext {
  /** 1 for the first attempt */
  attempt: number;
  /** time left before the deadline (Infinity without one) */
  remainingMs: number;
  /** the reason the previous attempt gave, if any */
  lastReason: string | undefined;
}

export interface PollOptions {
  /** what is being awaited, for the error ("the engine to be healthy") */
  what: string;
  pace: Pace;
  /** give up once this much time has passed (no deadline: until done, a thrown error or the signal) */
  deadlineMs?: number | undefined;
  /** give up after this many attempts */
  maxAttempts?: number | undefined;
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
  random?: (() => number) | undefined;
  /**
   * Events that make the next attempt worth making now (see Wakeup): a pause
   * ends at the next one, and from the first on, attempts come every
   * `wake.minGapMs` instead of at `pace`, which is then only the fallback.
   */
  wake?: Wakeup | undefined;
  /** called after each unsuccessful attempt that another will follow */
  onNotYet?:
    | ((info: { reason: string; elapsedMs: number; attempt: number; nextDelayMs: number }) => void)
    | undefined;
}

/** The wait gave up: the deadline passed or the attempts ran out. */
export class WaitTimeoutError extends OpenworkError {
  constructor(
    readonly what: string,
    readonly waitedMs: number,
    readonly attempts: number,
    readonly lastReason: string | undefined,
    readonly exhausted: "deadline" | "attempts",
  ) {
    super(
      exhausted === "deadline"
        ? `${what} did not happen within ${waitedMs} ms${lastReason ? `: ${lastReason}` : ""}`
        : `${what} did not happen in ${attempts} attempts${lastReason ? `: ${lastReason}` : ""}`,
      { code: "wait_timeout" },
    );
    this.name = "WaitTimeoutError";
  }
}

/** The wait was cut short by its abort signal. */
export class WaitAbortedError extends OpenworkError {
  constructor(readonly what: string) {
    super(`stopped waiting for ${what}`, { code: "interrupted" });
    this.name = "WaitAbortedError";
  }
}

/**
 * Call `attempt` until it reports done; return its value. An error thrown by
 * `attempt` ends the wait at once (it means "this will never succeed").
 */
export async function pollUntil<T>(
  attempt: (context: AttemptContext) => Promise<Attempt<T>> | Attempt<T>,
  options: PollOptions,
): Promise<T> {
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const started = clock.now();
  const deadline = options.deadlineMs === undefined ? Number.POSITIVE_INFINITY : started + options.deadlineMs;
  let lastReason: string | undefined;
  const wake = options.wake;
  for (let n = 1; ; n++) {
    if (options.signal?.aborted) throw new WaitAbortedError(options.what);
    const seen = wake?.count ?? 0;
    const result = await attempt({ attempt: n, remainingMs: deadline - clock.now(), lastReason });
    if (result.done) return result.value;
    lastReason = result.reason;
    const now = clock.now();
    if (options.maxAttempts !== undefined && n >= options.maxAttempts)
      throw new WaitTimeoutError(options.what, now - started, n, lastReason, "attempts");
    if (now >= deadline)
      throw new WaitTimeoutError(
        options.what,
        options.deadlineMs ?? now - started,
        n,
        lastReason,
        "deadline",
      );
    // The last pause ends at the deadline, so that one attempt is made right there.
    const paced = wake && wake.count > 0 ? wake.minGapMs : delayOf(options.pace, n - 1, random);
    const delay = Math.min(paced, deadline - now);
    options.onNotYet?.({ reason: result.reason, elapsedMs: now - started, attempt: n, nextDelayMs: delay });
    if (wake && wake.count === seen) {
      // Until the next event (or the paced delay): an event that came during the attempt counts.
      const pause = new AbortController();
      const onAbort = () => pause.abort();
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const stop = wake.onNext(() => pause.abort());
      try {
        await clock.sleep(delay, pause.signal);
      } finally {
        stop();
        options.signal?.removeEventListener("abort", onAbort);
      }
      // Woken: still no sooner than minGapMs after the attempt.
      const rest = Math.min(wake.minGapMs - (clock.now() - now), deadline - clock.now());
      if (rest > 0 && !options.signal?.aborted) await clock.sleep(rest, options.signal);
    } else {
      // (With a wake, an event came during the attempt: `delay` is already the minimum gap.)
      await clock.sleep(delay, options.signal);
    }
  }
}

/**
 * Something that happens when a polled condition may have changed — a
 * component's log grew, say — so a poll can wait for it instead of asking
 * at a short fixed interval. Events only bring an attempt forward: nothing is
 * concluded from them, and attempts stay at least `minGapMs` apart however
 * often they fire.
 */
export class Wakeup {
  #count = 0;
  readonly #listeners = new Set<() => void>();

  constructor(readonly minGapMs: number) {}

  /** how many events have fired */
  get count(): number {
    return this.#count;
  }

  fire(): void {
    this.#count++;
    const listeners = [...this.#listeners];
    this.#listeners.clear();
    for (const listener of listeners) listener();
  }

  /** Call `listener` once, at the next event; the returned function unsubscribes. */
  onNext(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/**
 * Whether `condition` comes true within `deadlineMs`, checked every
 * `intervalMs`: false when the time ran out. Anything else (an error the check
 * throws, the signal) ends the wait as it would any other.
 */
export async function within(
  condition: () => boolean | Promise<boolean>,
  options: { what: string; intervalMs: number; deadlineMs: number; clock?: Clock | undefined },
): Promise<boolean> {
  try {
    return await pollUntil(async () => ((await condition()) ? done(true) : notYet("not yet")), {
      what: options.what,
      pace: { intervalMs: options.intervalMs },
      deadlineMs: options.deadlineMs,
      clock: options.clock,
    });
  } catch (error) {
    if (error instanceof WaitTimeoutError) return false;
    throw error;
  }
}

/**
 * Run `step` at the given pace until the signal aborts (a follow loop: there
 * is nothing to wait for but the user's Ctrl-C). Errors thrown by `step` end it.
 */
export async function repeatUntilAborted(
  step: () => Promise<void> | void,
  options: { pace: Pace; signal?: AbortSignal | undefined; clock?: Clock | undefined },
): Promise<void> {
  await pollUntil(
    async () => {
      await step();
      return notYet("following");
    },
    { what: "the end of the follow", pace: options.pace, signal: options.signal, clock: options.clock },
  ).catch((error: unknown) => {
    if (!(error instanceof WaitAbortedError)) throw error;
  });
}
