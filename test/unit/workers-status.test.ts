import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { renderFleet } from "../../src/cli/render-workers.js";
import { ExitCode } from "../../src/errors/errors.js";
import { identityOf } from "../../src/processes/identity.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { parseWorkersConfig } from "../../src/workers/config.js";
import { setHolds } from "../../src/workers/holds.js";
import { type WorkerHeartbeat, writeSupervisorFile } from "../../src/workers/state.js";
import { fleetExitCode, fleetStatus } from "../../src/workers/status.js";

function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-workers-status-"));
  const file = path.join(dir, "workers.json");
  const text = JSON.stringify({
    heartbeatInterval: "1s",
    workers: [
      { name: "api", workspace: "./api", sandbox: "docker" },
      { name: "docs", workspace: "./docs" },
      { name: "old", workspace: "./old", enabled: false },
    ],
  });
  writeFileSync(file, text);
  const config = parseWorkersConfig(text, file);
  const stateDir = path.join(dir, "state");
  const registry = new RunRegistry({
    home: path.join(dir, "home"),
    store: path.join(dir, "home", "store"),
    runs: path.join(dir, "home", "runs"),
    cache: path.join(dir, "home", "cache"),
    locks: path.join(dir, "home", "locks"),
  });
  return { config, stateDir, registry };
}

function heartbeat(name: string, patch: Partial<WorkerHeartbeat>): WorkerHeartbeat {
  return {
    name,
    state: "running",
    runId: `run-${name}`,
    sandbox: "docker",
    node: null,
    url: `http://127.0.0.1:9/${name}`,
    healthy: true,
    versions: { opencode: "1.18.34", router: null, server: "0.1.0" },
    heartbeatAt: new Date().toISOString(),
    lastHealthyAt: new Date().toISOString(),
    upSince: new Date(Date.now() - 65_000).toISOString(),
    lastStartMs: 4200,
    restarts: 0,
    restartsInWindow: 0,
    lastError: null,
    nextAttemptAt: null,
    memoryBytes: 200 * 1024 * 1024,
    cpu: 0.05,
    components: { opencode: "healthy", "opencode-router": "disabled" },
    upgrades: {},
    ...patch,
  };
}

async function supervise(stateDir: string, workers: WorkerHeartbeat[], updatedAt = new Date()) {
  const me = identityOf(process.pid);
  assert.ok(me);
  await writeSupervisorFile(stateDir, {
    version: 1,
    pid: me.pid,
    startTime: me.startTime,
    configFile: "/x/workers.json",
    startedAt: new Date(Date.now() - 120_000).toISOString(),
    updatedAt: updatedAt.toISOString(),
    heartbeatIntervalMs: 1000,
    metricsUrl: "http://127.0.0.1:9464/metrics",
    configError: null,
    stopping: false,
    workers: Object.fromEntries(workers.map((w) => [w.name, w])),
  });
}

describe("workers status", () => {
  it("without a supervisor: every worker stopped, exit 3", async () => {
    const { config, stateDir, registry } = setup();
    const status = await fleetStatus({ config, stateDir, registry });
    assert.equal(status.supervisor.state, "not-running");
    assert.deepEqual(
      status.workers.map((w) => [w.name, w.state, w.restarts]),
      [
        ["api", "stopped", null],
        ["docs", "stopped", null],
        ["old", "disabled", null],
      ],
    );
    assert.equal(fleetExitCode(status), ExitCode.notRunning);
    assert.match(renderFleet(status), /supervisor: not running/);
  });

  it("a live, on-time supervisor's heartbeats are the answer; a broken worker says why", async () => {
    const { config, stateDir, registry } = setup();
    await supervise(stateDir, [
      heartbeat("api", {}),
      heartbeat("docs", {
        state: "backoff",
        runId: null,
        url: null,
        healthy: false,
        restarts: 2,
        components: {},
        lastError: "its sandbox exited unexpectedly (exit code 137)",
        nextAttemptAt: new Date(Date.now() + 2000).toISOString(),
        memoryBytes: null,
        cpu: null,
      }),
    ]);
    const status = await fleetStatus({ config, stateDir, registry });
    assert.equal(status.supervisor.state, "running");
    const api = status.workers[0];
    assert.equal(api?.state, "running");
    assert.equal(api?.healthy, true);
    assert.equal(api?.url, "http://127.0.0.1:9/api");
    assert.ok((api?.uptimeMs ?? 0) >= 65_000);
    assert.equal(status.workers[1]?.state, "backoff");
    assert.equal(status.workers[1]?.restarts, 2);
    assert.equal(fleetExitCode(status), ExitCode.failure);
    const table = renderFleet(status);
    assert.match(
      table,
      /^api\s+docker\s+running\s+engine:healthy router:disabled\s+0\s+1m0\ds\s+5%\s+200\.0 MiB/m,
    );
    assert.match(table, /^docs: its sandbox exited unexpectedly \(exit code 137\) \(next attempt /m);
    assert.match(table, /supervisor: running, pid \d+, .*metrics http:\/\/127\.0\.0\.1:9464\/metrics/);
  });

  it("a supervisor that missed two heartbeats is stale, and its heartbeats are not trusted", async () => {
    const { config, stateDir, registry } = setup();
    await supervise(
      stateDir,
      [heartbeat("api", { heartbeatAt: new Date(Date.now() - 5000).toISOString() })],
      new Date(Date.now() - 5000),
    );
    const status = await fleetStatus({ config, stateDir, registry });
    assert.equal(status.supervisor.state, "stale");
    const api = status.workers[0];
    // Asked afresh: no run is recorded for it here, so it is not running whatever the old heartbeat said.
    assert.equal(api?.healthy, false);
    assert.equal(api?.stale, true);
    assert.match(renderFleet(status), /supervisor: STALE/);
  });

  it("a held worker is shown stopped (held) and does not count against the exit code", async () => {
    const { config, stateDir, registry } = setup();
    await setHolds(stateDir, ["docs"], true);
    await supervise(stateDir, [
      heartbeat("api", {}),
      heartbeat("docs", { state: "stopped", runId: null, url: null, healthy: false, components: {} }),
    ]);
    const status = await fleetStatus({ config, stateDir, registry });
    assert.equal(status.workers[1]?.held, true);
    assert.equal(fleetExitCode(status), ExitCode.ok);
    assert.match(renderFleet(status), /^docs\s+docker\s+stopped \(held\)/m);
  });
});
