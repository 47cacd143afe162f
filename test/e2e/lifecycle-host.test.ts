import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { openworkPaths } from "../../src/config/paths.js";
import { silentLogger } from "../../src/logging/logger.js";
import { parseProcessId } from "../../src/processes/identity.js";
import { pidState } from "../../src/processes/inspect.js";
import { RuntimeClient } from "../../src/runs/client.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { startRun } from "../../src/runs/start.js";
import { CLI, runCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/net.js";
import { BUNDLED_OPENCODE } from "../helpers/runtime.js";

/** One OPENWORK_HOME for the file: staged sidecars are shared (hard links), as for a real user. */
const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-host-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };
const workspace = () => mkdtempSync(path.join(os.tmpdir(), "openwork-ws-"));

interface StartDoc {
  runId: string;
  workspace: string;
  sandbox: string;
  state: string;
  url: string;
  versions: { opencode: string | null; router: string | null; server: string | null };
  tokens: { client: string; host: string; owner: string | null };
  timings: Record<string, number>;
}

async function start(
  ws: string,
  extra: string[] = [],
): Promise<{ doc: StartDoc; stderr: string; exitCode: number }> {
  const result = await runCli(["--json", "start", "--detach", "--workspace", ws, ...extra], {
    home,
    env,
    timeoutMs: 180_000,
  });
  return {
    doc: result.exitCode === 0 ? (JSON.parse(result.stdout) as StartDoc) : ({} as StartDoc),
    stderr: result.stderr,
    exitCode: result.exitCode,
  };
}

async function hostProcessesOf(runId: string): Promise<string[]> {
  const { stdout } = await execa("sh", [
    "-c",
    'grep -l -a "$1" /proc/[0-9]*/environ 2>/dev/null || true',
    "sh",
    runId,
  ]);
  return String(stdout).split("\n").filter(Boolean);
}

test("detach, then status, logs, check and stop from new processes; stop twice; status exit codes", async () => {
  const ws = workspace();
  const started = await start(ws);
  assert.equal(started.exitCode, 0, started.stderr);
  const { doc } = started;
  assert.equal(doc.state, "running");
  assert.equal(doc.sandbox, "none");
  assert.match(doc.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(doc.versions.opencode, "1.18.34");
  assert.ok(doc.tokens.client && doc.tokens.host && doc.tokens.owner);
  // Where the time went: every phase of a host start, measured (the sandbox phases are absent).
  const phases = ["cliReady", "validate", "reconcile", "resolve", "stage", "launch", "serverHealthy"];
  for (const phase of [...phases, "engineHealthy", "ready", "recorded", "total"])
    assert.ok(Number.isFinite(doc.timings[phase]) && (doc.timings[phase] as number) >= 0, `timings.${phase}`);
  assert.equal(doc.timings.image, undefined, "no image on the host");
  // The server starts while the engine boots: it answers before the engine is healthy, and the
  // start learns readiness within moments of the engine's health (a long-poll, not an interval).
  const ms = (phase: string) => doc.timings[phase] ?? Number.NaN;
  assert.ok(ms("serverHealthy") < ms("engineHealthy"), JSON.stringify(doc.timings));
  assert.ok(ms("ready") - ms("engineHealthy") < 1000, JSON.stringify(doc.timings));
  // The booting engine is probed when its log grows (and every 500 ms before): a handful of probes,
  // not one every 25 ms for its whole boot (~120 at ~3 s), on the cores it boots on.
  const metrics = await fetch(`${doc.url}/system/metrics`, {
    headers: { "x-openwork-host-token": doc.tokens.host },
  });
  assert.equal(metrics.status, 200);
  const failed =
    /^openwork_server_health_probe_duration_seconds_count\{component="opencode",outcome="fail"\} (\d+)$/m.exec(
      await metrics.text(),
    );
  assert.ok(Number(failed?.[1] ?? 0) <= 20, `failed probes of the booting engine: ${failed?.[1]}`);
  assert.ok(ms("total") >= ms("cliReady") + ms("ready"), "the total covers the process");

  const again = await start(ws);
  assert.equal(again.doc.runId, doc.runId, "a second start returns the same run");
  // Options the running run was not started with are not silently ignored: exit 2, naming each.
  const differs = await runCli(["start", "--detach", "--workspace", ws, "--router", "--port", "1"], {
    home,
    env,
  });
  assert.equal(differs.exitCode, 2, differs.stderr);
  assert.match(differs.stderr, /--port 1 \(it runs with \d+\)/);
  assert.match(differs.stderr, /--router on \(it runs with off\)/);
  assert.match(differs.stderr, /--replace/);
  const missing = await runCli(["start", "--detach", "--workspace", ws, "--manifest", "/nonexistent.json"], {
    home,
    env,
  });
  assert.equal(missing.exitCode, 2, missing.stderr);
  assert.match(missing.stderr, /cannot read the manifest \/nonexistent\.json/);
  const same = await runCli(["start", "--detach", "--workspace", ws, "--sandbox", "none"], { home, env });
  assert.equal(same.exitCode, 0, `an option equal to the running run's is fine: ${same.stderr}`);

  const status = await runCli(["--json", "status", "--workspace", ws], { home, env });
  assert.equal(status.exitCode, 0, status.stderr);
  const statusDoc = JSON.parse(status.stdout) as {
    runId: string;
    healthy: boolean;
    state: string;
    url: string;
    versions: unknown;
  };
  assert.equal(statusDoc.runId, doc.runId);
  assert.equal(statusDoc.healthy, true);

  const human = await runCli(["status", doc.runId], { home, env });
  assert.equal(human.exitCode, 0);
  assert.match(human.stdout, /healthy/);

  const logs = await runCli(["logs", doc.runId, "--tail", "50"], { home, env });
  assert.equal(logs.exitCode, 0, logs.stderr);
  assert.match(logs.stdout, /engine healthy/);
  const engineLogs = await runCli(["--json", "logs", doc.runId, "--component", "engine"], { home, env });
  assert.equal(engineLogs.exitCode, 0, engineLogs.stderr);
  assert.ok(Array.isArray((JSON.parse(engineLogs.stdout) as { lines: string[] }).lines));

  // logs --follow prints what is appended, until Ctrl-C.
  const follower = spawn(
    process.execPath,
    [CLI, "logs", doc.runId, "--follow", "--tail", "0", "--component", "engine"],
    {
      env: { ...process.env, OPENWORK_HOME: home, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let followed = "";
  follower.stdout.on("data", (chunk: Buffer) => {
    followed += chunk.toString();
  });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const runRecord = JSON.parse(readFileSync(path.join(home, "runs", doc.runId, "run.json"), "utf8")) as {
    persistDir: string;
  };
  appendFileSync(path.join(runRecord.persistDir, "logs", "engine.log"), "a line appended by the test\n");
  await waitFor(async () => (followed.includes("a line appended by the test") ? true : undefined), {
    timeoutMs: 10_000,
    what: "logs --follow printing an appended line",
  });
  follower.kill("SIGINT");
  assert.equal(await new Promise((resolve) => follower.once("exit", resolve)), 0);

  const check = await runCli(["--json", "check", doc.runId, "--check-events"], { home, env });
  const checkDoc = JSON.parse(check.stdout) as {
    passed: boolean;
    checks: Array<{ name: string; ok: boolean; detail: string }>;
  };
  assert.equal(check.exitCode, 0, JSON.stringify(checkDoc.checks, null, 2));
  assert.equal(checkDoc.passed, true);
  assert.ok(checkDoc.checks.length >= 6);

  // Unhealthy: the server is frozen, the process is still there.
  const runDoc = JSON.parse((await runCli(["--json", "status", doc.runId], { home, env })).stdout) as {
    local: { id: string };
  };
  const pid = parseProcessId(runDoc.local.id)?.pid as number;
  process.kill(pid, "SIGSTOP");
  try {
    const frozen = await runCli(["status", doc.runId], { home, env });
    assert.equal(frozen.exitCode, 1, frozen.stdout + frozen.stderr);
  } finally {
    process.kill(pid, "SIGCONT");
  }

  const stop = await runCli(["--json", "stop", doc.runId], { home, env });
  assert.equal(stop.exitCode, 0, stop.stderr);
  assert.equal(
    (JSON.parse(stop.stdout) as { stopped: Array<{ state: string }> }).stopped[0]?.state,
    "stopped",
  );
  const stopAgain = await runCli(["stop", doc.runId], { home, env });
  assert.equal(stopAgain.exitCode, 0);
  assert.match(stopAgain.stdout, /already stopped/);
  const after = await runCli(["status", "--workspace", ws], { home, env });
  assert.equal(after.exitCode, 3);
  assert.deepEqual(await hostProcessesOf(doc.runId), [], "no process of the run remains");
});

test("ten concurrent start --detach on one workspace: one run, ten identical run ids", async () => {
  const ws = workspace();
  const results = await Promise.all(Array.from({ length: 10 }, () => start(ws)));
  for (const result of results) assert.equal(result.exitCode, 0, result.stderr);
  const ids = new Set(results.map((result) => result.doc.runId));
  assert.equal(ids.size, 1, `run ids: ${[...ids].join(", ")}`);
  const all = JSON.parse((await runCli(["--json", "status", "--all"], { home, env })).stdout) as {
    runs: Array<{ workspace: string; state: string }>;
  };
  assert.equal(
    all.runs.filter((run) => run.workspace === results[0]?.doc.workspace && run.state === "running").length,
    1,
  );
  assert.equal((await runCli(["stop", "--workspace", ws], { home, env })).exitCode, 0);
});

test("an engine that exits at once: start fails fast, names the engine, leaves nothing behind", async () => {
  const ws = workspace();
  const fake = path.join(mkdtempSync(path.join(os.tmpdir(), "openwork-fake-")), "opencode");
  writeFileSync(
    fake,
    '#!/bin/sh\nif [ "$1" = "--version" ]; then echo 1.18.34; exit 0; fi\necho "boom: the engine cannot start" >&2\nexit 3\n',
    { mode: 0o755 },
  );
  const started = Date.now();
  const result = await runCli(
    ["start", "--detach", "--workspace", ws, "--opencode-bin", fake, "--allow-external"],
    { home, env },
  );
  const elapsed = Date.now() - started;
  assert.equal(result.exitCode, 1, result.stderr);
  assert.match(result.stderr, /engine failed to start/);
  assert.match(result.stderr, /boom: the engine cannot start/);
  assert.ok(elapsed < 30_000, `failed fast (${elapsed} ms; the health deadline is 90 s)`);
  const status = await runCli(["--json", "status", "--workspace", ws], { home, env });
  assert.equal(status.exitCode, 3);
  const doc = JSON.parse(status.stdout) as { runId: string; state: string; orphans: unknown[] };
  assert.equal(doc.state, "failed");
  assert.deepEqual(doc.orphans, []);
  assert.deepEqual(await hostProcessesOf(doc.runId), []);
});

test("SIGKILL of the runner at 20 random moments of start-up: the sweep leaves no orphan, and a new start succeeds", async () => {
  const ws = workspace();
  const killed: string[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    const child = spawn(process.execPath, [CLI, "start", "--detach", "--workspace", ws], {
      env: { ...process.env, OPENWORK_HOME: home, ...env },
      stdio: "ignore",
    });
    const delay = Math.floor(Math.random() * 3500);
    await new Promise((resolve) => setTimeout(resolve, delay));
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    const status = await runCli(["--json", "status", "--workspace", ws], { home, env });
    const doc = JSON.parse(status.stdout) as { runId?: string; state: string; orphans: unknown[] };
    assert.deepEqual(doc.orphans, [], `no orphans after a kill at ${delay} ms`);
    if (doc.runId && doc.state !== "running") {
      assert.deepEqual(await hostProcessesOf(doc.runId), [], `no process left after a kill at ${delay} ms`);
    }
    if (doc.state === "running") {
      // The start got through before the kill: fine, stop it and go on.
      assert.equal((await runCli(["stop", "--workspace", ws], { home, env })).exitCode, 0);
    }
    if (doc.runId) killed.push(`${delay}:${doc.state}`);
  }
  const final = await start(ws);
  assert.equal(final.exitCode, 0, final.stderr);
  assert.equal((await runCli(["stop", final.doc.runId], { home, env })).exitCode, 0);
});

test("--replace with a failed retirement leaves the old run retiring; the next start finishes it", async () => {
  const ws = workspace();
  const first = await start(ws);
  assert.equal(first.exitCode, 0, first.stderr);
  // The fault is an option of the domain function, passed by the test: production code reads no fault switch.
  process.env.OPENWORK_HOME = home;
  const registry = new RunRegistry(openworkPaths({ OPENWORK_HOME: home }));
  await assert.rejects(
    startRun({
      workspace: ws,
      sandbox: "none",
      mounts: [],
      router: false,
      replace: true,
      runtime: {},
      registry,
      log: silentLogger(),
      extraLabels: { "openwork.test": "1" },
      faults: { failRetire: true },
    }),
    /stays "retiring"/,
  );
  const recordFile = path.join(home, "runs", first.doc.runId, "run.json");
  assert.equal((JSON.parse(readFileSync(recordFile, "utf8")) as { state: string }).state, "retiring");
  const next = await start(ws);
  assert.equal(next.exitCode, 0, next.stderr);
  assert.notEqual(next.doc.runId, first.doc.runId, "the replacement is the run now");
  assert.equal((JSON.parse(readFileSync(recordFile, "utf8")) as { state: string }).state, "stopped");
  assert.deepEqual(await hostProcessesOf(first.doc.runId), []);
  assert.equal((await runCli(["stop", "--workspace", ws], { home, env })).exitCode, 0);
});

test("active versions are what the engine reports when it runs; check fails naming a component that differs from its pin", async () => {
  const ws = workspace();
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-liar-"));
  // A real opencode that claims another version at --version: the pin follows the claim
  // (allowed by --allow-version-mismatch), but the running engine reports its own.
  const liar = path.join(dir, "opencode");
  writeFileSync(
    liar,
    `#!/bin/sh\nif [ "$1" = "--version" ]; then echo 1.18.99; exit 0; fi\nexec '${BUNDLED_OPENCODE}' "$@"\n`,
    { mode: 0o755 },
  );
  const started = await start(ws, ["--opencode-bin", liar, "--allow-external", "--allow-version-mismatch"]);
  assert.equal(started.exitCode, 0, started.stderr);
  assert.equal(
    started.doc.versions.opencode,
    "1.18.34",
    "start --json reports what the engine said about itself",
  );
  const versions = await runCli(["--json", "runtime", "versions", started.doc.runId], { home, env });
  assert.equal(versions.exitCode, 0, versions.stderr);
  const report = JSON.parse(versions.stdout) as {
    components: Array<{ name: string; active: string | null; pinned: string | null }>;
  };
  assert.deepEqual(
    report.components.find((row) => row.name === "opencode"),
    { name: "opencode", active: "1.18.34", pinned: "1.18.99", target: null },
  );
  const check = await runCli(["--json", "check", started.doc.runId], { home, env });
  assert.equal(check.exitCode, 1, check.stdout);
  const checks = (
    JSON.parse(check.stdout) as { checks: Array<{ name: string; ok: boolean; detail: string }> }
  ).checks;
  const versionCheck = checks.find((item) => item.name === "versions match the pinned ones");
  assert.equal(versionCheck?.ok, false);
  assert.match(versionCheck?.detail ?? "", /opencode runs 1\.18\.34, runtime [0-9a-f]{16} pins 1\.18\.99/);
  assert.equal((await runCli(["stop", started.doc.runId], { home, env })).exitCode, 0);
});

test("a corrupt record of a live run: status says so, start refuses a second runtime, stop --orphans clears it", async () => {
  const ws = workspace();
  const first = await start(ws);
  assert.equal(first.exitCode, 0, first.stderr);
  writeFileSync(path.join(home, "runs", first.doc.runId, "run.json"), "{ not json");
  const status = await runCli(["status", first.doc.runId], { home, env });
  assert.equal(status.exitCode, 1, status.stderr);
  assert.match(status.stderr, /run record .*run\.json is corrupt/);
  const second = await start(ws);
  assert.equal(second.exitCode, 1, second.stderr);
  assert.match(second.stderr, new RegExp(`still running \\(none .*run ${first.doc.runId}\\) but .*corrupt`));
  assert.equal(
    (await hostProcessesOf(first.doc.runId)).length > 0,
    true,
    "the first runtime still runs, alone",
  );
  const swept = await runCli(["stop", "--orphans"], { home, env });
  assert.equal(swept.exitCode, 0, swept.stderr);
  assert.deepEqual(await hostProcessesOf(first.doc.runId), []);
  const third = await start(ws);
  assert.equal(third.exitCode, 0, third.stderr);
  assert.equal((await runCli(["stop", third.doc.runId], { home, env })).exitCode, 0);
});

test("a start never hands its tokens to another server on its port", async () => {
  const a = await start(workspace());
  assert.equal(a.exitCode, 0, a.stderr);
  const port = new URL(a.doc.url).port;
  const ws = workspace();
  const b = await start(ws, ["--port", port]);
  assert.equal(b.exitCode, 1, b.stderr);
  assert.match(b.stderr, new RegExp(`another server answers on http://127\\.0\\.0\\.1:${port}`));
  const status = await runCli(["--json", "status", "--workspace", ws], { home, env });
  assert.equal((JSON.parse(status.stdout) as { state: string }).state, "failed");
  const check = await runCli(["--json", "check", a.doc.runId], { home, env });
  assert.equal(check.exitCode, 0, check.stdout);
  assert.equal((await runCli(["stop", a.doc.runId], { home, env })).exitCode, 0);
});

test("a workspace path full of shell and replacement characters is served as it is; a dead adopted engine is no zombie of the server", async () => {
  const ws = path.join(workspace(), "ws $$ $& $' $` ' \" é");
  mkdirSync(ws);
  const started = await start(ws);
  assert.equal(started.exitCode, 0, started.stderr);
  const client = new RuntimeClient(started.doc.url, { client: started.doc.tokens.client });
  const summary = await client.summary();
  assert.equal(summary.workspace, ws);
  const adopted = summary.components.opencode;
  assert.equal(adopted.adopted, true);
  process.kill(adopted.pid, "SIGKILL");
  await waitFor(
    async () => {
      const now = (await client.summary()).components.opencode;
      return now.status === "healthy" && now.pid !== adopted.pid ? true : undefined;
    },
    { timeoutMs: 30_000, what: "the engine restarted" },
  );
  await waitFor(async () => (pidState(adopted.pid) === "gone" ? true : undefined), {
    timeoutMs: 5000,
    what: `the dead engine ${adopted.pid} reaped (not left a zombie of the server ${summary.server.pid})`,
  });
  assert.equal((await runCli(["stop", started.doc.runId], { home, env })).exitCode, 0);
});
