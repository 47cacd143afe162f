import assert from "node:assert/strict";
import { test } from "node:test";
import {
  backoffDelay,
  type Clock,
  done,
  notYet,
  pollUntil,
  repeatUntilAborted,
  WaitAbortedError,
  WaitTimeoutError,
  Wakeup,
} from "../../src/retry/poll.js";

/** A clock the test moves by hand: every sleep advances it at once, and is recorded. */
function fakeClock(): Clock & { sleeps: number[] } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  };
}

test("backoff: doubling steps with equal jitter, capped", () => {
  const policy = { baseMs: 200, maxMs: 1000 };
  assert.deepEqual(
    [0, 1, 2, 3, 10].map((n) => backoffDelay(n, policy, () => 0)),
    [100, 200, 400, 500, 500],
    "never sooner than half the step",
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => backoffDelay(n, policy, () => 1)),
    [200, 400, 800, 1000],
  );
});

test("pollUntil returns the first done value, pacing attempts by the interval", async () => {
  const clock = fakeClock();
  let calls = 0;
  const value = await pollUntil(() => (++calls < 4 ? notYet(`call ${calls}`) : done("ready")), {
    what: "readiness",
    pace: { intervalMs: 50 },
    clock,
  });
  assert.equal(value, "ready");
  assert.deepEqual(clock.sleeps, [50, 50, 50]);
});

test("the deadline ends the wait with what was awaited and the last reason; the last pause ends at the deadline", async () => {
  const clock = fakeClock();
  const error = await pollUntil(({ attempt }) => notYet(`attempt ${attempt} refused`), {
    what: "the engine to be healthy",
    pace: { intervalMs: 400 },
    deadlineMs: 1000,
    clock,
  }).catch((e: unknown) => e);
  assert.ok(error instanceof WaitTimeoutError);
  assert.equal(error.lastReason, "attempt 4 refused");
  assert.equal(error.attempts, 4);
  assert.match(error.message, /the engine to be healthy did not happen within 1000 ms: attempt 4 refused/);
  assert.deepEqual(clock.sleeps, [400, 400, 200], "an attempt is made right at the deadline");
});

test("attempt budget, backoff pace, errors that end the wait at once, and the abort signal", async () => {
  const clock = fakeClock();
  const budget = await pollUntil(() => notYet("reset"), {
    what: "a download",
    pace: { backoff: { baseMs: 100, maxMs: 1000 } },
    maxAttempts: 3,
    clock,
    random: () => 1,
  }).catch((e: unknown) => e);
  assert.ok(budget instanceof WaitTimeoutError);
  assert.equal(budget.exhausted, "attempts");
  assert.deepEqual(clock.sleeps, [100, 200]);
  await assert.rejects(
    pollUntil(
      () => {
        throw new Error("will never succeed");
      },
      { what: "x", pace: { intervalMs: 10 }, clock },
    ),
    /will never succeed/,
  );
  const controller = new AbortController();
  let n = 0;
  await assert.rejects(
    pollUntil(
      () => {
        if (++n === 3) controller.abort();
        return notYet("waiting");
      },
      { what: "the follow", pace: { intervalMs: 10 }, clock, signal: controller.signal },
    ),
    (error: unknown) => error instanceof WaitAbortedError,
  );
  const stop = new AbortController();
  let steps = 0;
  await repeatUntilAborted(
    () => {
      if (++steps === 5) stop.abort();
    },
    { pace: { intervalMs: 10 }, signal: stop.signal, clock },
  );
  assert.equal(steps, 5, "a follow loop ends quietly on its signal");
});

/** A fake clock whose sleeps an event can cut short: `during(n)` runs inside the n-th sleep (1-based). */
function wakeableClock(during: (sleep: number) => void, wokenAfterMs = 5): Clock & { sleeps: number[] } {
  let now = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => now,
    sleep: async (ms, signal) => {
      sleeps.push(ms);
      during(sleeps.length);
      now += signal?.aborted ? wokenAfterMs : ms;
    },
  };
}

test("a Wakeup brings the next attempt forward; from its first event on, attempts come every minGapMs", async () => {
  const wake = new Wakeup(25);
  const clock = wakeableClock((sleep) => {
    if (sleep === 3) wake.fire(); // the third pause is cut short 5 ms in
  });
  let calls = 0;
  const value = await pollUntil(() => (++calls < 6 ? notYet("refused") : done("healthy")), {
    what: "the engine to be healthy",
    pace: { intervalMs: 500 },
    wake,
    clock,
  });
  assert.equal(value, "healthy");
  assert.deepEqual(
    clock.sleeps,
    [500, 500, 500, 20, 25, 25],
    "the slow fallback until the event; then the rest of the minimum gap; then the gap",
  );
});

test("a Wakeup event that fires during an attempt counts: no full pause after it", async () => {
  const wake = new Wakeup(25);
  const clock = wakeableClock(() => undefined);
  let calls = 0;
  await pollUntil(
    () => {
      calls++;
      if (calls === 2) wake.fire();
      return calls < 4 ? notYet("refused") : done(true);
    },
    { what: "x", pace: { intervalMs: 500 }, wake, clock },
  );
  assert.deepEqual(clock.sleeps, [500, 25, 25]);
});

test("a Wakeup that fires constantly never makes attempts closer than minGapMs", async () => {
  const wake = new Wakeup(25);
  // Every pause is cut 1 ms in: what is left of the gap is still waited.
  const clock = wakeableClock(() => wake.fire(), 1);
  let calls = 0;
  await pollUntil(() => (++calls < 4 ? notYet("refused") : done(true)), {
    what: "x",
    pace: { intervalMs: 500 },
    wake,
    clock,
  });
  assert.deepEqual(clock.sleeps, [500, 24, 25, 24, 25, 24]);
});
