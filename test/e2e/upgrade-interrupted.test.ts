import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { pidState } from "../../src/processes/inspect.js";
import { waitFor } from "../helpers/net.js";
import {
  BUNDLED_OPENCODE,
  neverHealthyEngine,
  stageRuntime,
  startRuntime,
  tempPersist,
} from "../helpers/runtime.js";

test("an upgrade cut short by the server's death is reported interrupted after the restart", async (t) => {
  const persist = tempPersist();
  const runtimeId = await stageRuntime({ persist, opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" } });
  const stuck = await stageRuntime({
    persist,
    opencode: neverHealthyEngine(path.join(persist, "fixtures")),
  });
  const first = await startRuntime({ persist, runtimeId, healthDeadlineS: 30 });
  const strays: number[] = [];
  t.after(async () => {
    await first.stop();
    for (const pid of strays) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  });
  const started = await first.call("POST", "/system/runtime/upgrade", {
    token: first.hostToken,
    body: { runtimeId: stuck },
  });
  assert.equal(started.status, 202);
  const operationId = started.body.data.operationId as string;
  // wait until the new engine is started and the gate is waiting on it
  const gating = await waitFor(
    async () => {
      const op = (await first.call("GET", `/system/runtime/upgrade/${operationId}`)).body.data;
      return op.step === "gate-engine" ? op : undefined;
    },
    { timeoutMs: 20_000, what: "the upgrade to reach the engine gate" },
  );
  const newEnginePid = Number(/pid (\d+)/.exec(gating.steps[1].detail)?.[1]);
  strays.push(newEnginePid);
  // the server dies hard, mid-upgrade; the entrypoint's group (server + adopted engine) goes with it
  process.kill(-(first.process.pid as number), "SIGKILL");
  await waitFor(async () => (pidState(first.process.pid as number) === "alive" ? undefined : true), {
    timeoutMs: 5000,
    what: "the server to die",
  });
  assert.equal(pidState(newEnginePid), "alive", "a hard-killed server cannot stop what it spawned");
  const second = await startRuntime({ persist, runtimeId });
  t.after(() => second.stop());
  // …so the next server start does
  await waitFor(async () => (pidState(newEnginePid) === "alive" ? undefined : true), {
    timeoutMs: 5000,
    what: "the left-behind engine to be stopped",
  });
  const op = await second.call("GET", `/system/runtime/upgrade/${operationId}`);
  assert.equal(op.status, 200);
  assert.equal(op.body.data.state, "interrupted");
  assert.equal(op.body.data.error.step, "gate-engine");
  assert.equal(op.body.data.error.code, "interrupted");
  const summary = (await second.call("GET", "/system/runtime/summary")).body.data;
  assert.equal(summary.upgrade.last.operationId, operationId);
  assert.equal(summary.upgrade.running, null);
  assert.equal(summary.components.opencode.status, "healthy");
});
