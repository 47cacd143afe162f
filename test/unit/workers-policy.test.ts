import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RestartPolicy } from "../../src/workers/config.js";
import { backoffDelay, decideRestart, emptyLedger, memoryVerdict } from "../../src/workers/policy.js";

const policy: RestartPolicy = {
  maxRestarts: 3,
  windowMs: 60_000,
  minUptimeMs: 10_000,
  backoff: { initialMs: 1000, maxMs: 8000, factor: 2, jitter: 0.5 },
  maxMemoryBytes: 1000,
  maxMemoryForMs: 5000,
};
const middle = () => 0.5; // no jitter either way

describe("workers restart policy", () => {
  it("backs off exponentially up to the cap, spread by the jitter", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoffDelay(policy, n, middle)),
      [1000, 2000, 4000, 8000, 8000],
    );
    assert.equal(
      backoffDelay(policy, 1, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(policy, 1, () => 1),
      1500,
    );
  });

  it("gives up after maxRestarts within the window, and forgets restarts older than the window", () => {
    let ledger = emptyLedger();
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      const decision = decideRestart(policy, ledger, 1000 * i, 0, middle);
      assert.equal(decision.kind, "restart");
      if (decision.kind === "restart") delays.push(decision.delayMs);
      ledger = decision.ledger;
    }
    assert.deepEqual(delays, [1000, 2000, 4000]);
    const fourth = decideRestart(policy, ledger, 5000, 0, middle);
    assert.equal(fourth.kind, "give-up");
    if (fourth.kind === "give-up")
      assert.match(fourth.reason, /restarted 3 times within 1m \(maxRestarts 3\)/);
    // A minute later the window is empty again.
    const later = decideRestart(policy, ledger, 70_000, 0, middle);
    assert.equal(later.kind, "restart");
    assert.equal(later.ledger.total, 4);
  });

  it("a run that stayed up for minUptime resets the backoff", () => {
    let ledger = emptyLedger();
    for (let i = 0; i < 2; i++) ledger = decideRestart(policy, ledger, i, 0, middle).ledger;
    assert.equal(ledger.consecutive, 2);
    const decision = decideRestart(policy, ledger, 3, 10_000, middle);
    assert.equal(decision.kind, "restart");
    if (decision.kind === "restart") assert.equal(decision.delayMs, 1000);
  });

  it("restarts on memory only after it stayed above maxMemory for maxMemoryFor", () => {
    assert.deepEqual(memoryVerdict(policy, 2000, null, 0), { aboveSince: 0, restart: false });
    assert.deepEqual(memoryVerdict(policy, 2000, 0, 4999), { aboveSince: 0, restart: false });
    assert.deepEqual(memoryVerdict(policy, 500, 0, 4999), { aboveSince: null, restart: false });
    assert.deepEqual(memoryVerdict(policy, 2000, 0, 5000), { aboveSince: 0, restart: true });
    assert.deepEqual(memoryVerdict({ ...policy, maxMemoryBytes: null }, 1e12, 0, 1e9), {
      aboveSince: null,
      restart: false,
    });
  });
});
