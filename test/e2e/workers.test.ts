import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { execa, type ResultPromise } from "execa";
import { CLI, runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { waitFor } from "../helpers/net.js";
import { parsePrometheus, sampleValue } from "../helpers/prometheus.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/*
 * The fleet, end to end, with real runtimes: two on the host and one in
 * Docker, started by `workers start`, adopted and kept alive by `workers run`
 * (kill -9 of an engine, docker kill of a container), reloaded on edits,
 * orphaned by a kill -9 of the supervisor and adopted by the next, stopped.
 */

const env = { OPENWORK_LABELS: "openwork.test=1" };

interface WorkerRow {
  name: string;
  state: string;
  runId: string | null;
  healthy: boolean;
  restarts: number | null;
  heartbeatAgeMs: number | null;
  stale: boolean;
  lastError: string | null;
  components: Record<string, string>;
}
interface Fleet {
  supervisor: { state: string; pid: number | null; metricsUrl: string | null; configError: string | null };
  workers: WorkerRow[];
}

function writeConfig(file: string, workers: object[], extra: object = {}): void {
  // JSONC on purpose: a comment and trailing commas.
  const body = JSON.stringify({ heartbeatInterval: "1s", stopTimeout: "30s", ...extra, workers }, null, 2);
  writeFileSync(file, `// written by the workers e2e test\n${body.replace(/\n}$/, ",\n}")}\n`);
}

const restart = {
  maxRestarts: 3,
  window: "5m",
  minUptime: "2s",
  backoff: { initial: "1s", max: "2s", jitter: 0 },
};

describe("workers: a fleet from one file", { concurrency: false, timeout: 600_000 }, () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "openwork-home-workers-"));
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-workers-"));
  const config = path.join(dir, "workers.json");
  /** `workers …` against this fleet's file; anything else as is. */
  const cli = (args: string[], timeoutMs = 240_000) =>
    runCli(args[0] === "workers" ? ["workers", "--config", config, ...args.slice(1)] : args, {
      home,
      env,
      timeoutMs,
    });
  const fleet = async (file = config): Promise<Fleet> => {
    const result = await runCli(["--json", "workers", "--config", file, "status"], { home, env });
    assert.ok(result.exitCode !== 2, result.stderr);
    return JSON.parse(result.stdout) as Fleet;
  };
  const row = (f: Fleet, name: string) => f.workers.find((w) => w.name === name) as WorkerRow;
  const workspaces = {
    a: mkdtempSync(path.join(os.tmpdir(), "openwork-ws-worker-a-")),
    b: mkdtempSync(path.join(os.tmpdir(), "openwork-ws-worker-b-")),
    c: mkdtempSync(path.join(os.tmpdir(), "openwork-ws-worker-c-")),
    d: sandboxWorkspace("openwork-ws-worker-d-"),
  };
  const worker = (name: keyof typeof workspaces, more: object = {}) => ({
    name,
    workspace: workspaces[name],
    restart,
    ...more,
  });
  let supervisor: ResultPromise | undefined;
  let dockerReady = false;

  before(async (t) => {
    const docker = await dockerOrSkip(t as never);
    if (docker) {
      await sharedSandboxImage(docker);
      dockerReady = true;
    }
  });

  after(async () => {
    supervisor?.kill("SIGKILL");
    await runCli(["stop", "--all"], { home, env, timeoutMs: 120_000 });
  });

  it("reports every problem of a malformed file at once, with positions, and starts nothing", async () => {
    writeFileSync(
      config,
      [
        "{",
        '  "workers": [',
        '    { "name": "x", "workspace": "/tmp", "cpus": "many", "sandbox": "docker" },',
        '    { "name": "x", "workspace": "/srv", "colour": "red" },',
        '    { "name": "y", "workspace": 42 },',
        "  ],",
        "}",
      ].join("\n"),
    );
    const result = await cli(["workers", "start"]);
    assert.equal(result.exitCode, 2, result.stderr);
    const lines = result.stderr.split("\n");
    assert.match(lines[0] ?? "", /workers\.json: [4-9] problems/);
    assert.ok(
      lines.some((l) => /:3:\d+: workers\[0\]\.cpus/.test(l)),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => /:4:\d+: .*colour/.test(l)),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => /:4:\d+: .*duplicate|:4:\d+: .*already/.test(l)),
      result.stderr,
    );
    assert.ok(
      lines.some((l) => /:5:\d+: workers\[2\]\.workspace/.test(l)),
      result.stderr,
    );
    const runs = await runCli(["--json", "status", "--all"], { home, env });
    assert.deepEqual(JSON.parse(runs.stdout).runs, []);

    writeFileSync(config, '{ "workers": [ { "name": "a", "workspace": ');
    const syntax = await cli(["workers", "status"]);
    assert.equal(syntax.exitCode, 2);
    assert.match(syntax.stderr, /:1:\d+: /);

    const missing = await runCli(["workers", "--config", path.join(dir, "nope.json"), "start"], {
      home,
      env,
    });
    assert.equal(missing.exitCode, 2);
    assert.match(missing.stderr, /nope\.json.*openwork workers init/);
  });

  it("`start --supervise` fails fast when the supervisor dies before its first heartbeat", async () => {
    writeConfig(config, [worker("a")]);
    const busy = createServer().listen(0, "127.0.0.1");
    await once(busy, "listening");
    const port = (busy.address() as AddressInfo).port;
    try {
      const result = await cli(["workers", "start", "--supervise", "--metrics-port", String(port)]);
      assert.equal(result.exitCode, 1, result.stderr);
      assert.match(result.stderr, /exited before its first heartbeat.*EADDRINUSE/);
    } finally {
      busy.close();
    }
    const runs = await runCli(["--json", "status", "--all"], { home, env });
    assert.deepEqual(JSON.parse(runs.stdout).runs, [], "nothing was started");
  });

  it("starts two host workers and a Docker one, then a supervisor adopts them with heartbeats", async (t) => {
    if (!dockerReady) return t.skip("no Docker engine");
    writeConfig(config, [worker("a"), worker("b"), worker("d", { sandbox: "docker" })]);
    const started = await runCli(["--json", "workers", "--config", config, "start", "--parallel", "3"], {
      home,
      env,
      timeoutMs: 240_000,
    });
    assert.equal(started.exitCode, 0, started.stderr);
    const results = JSON.parse(started.stdout).results as Array<{
      name: string;
      outcome: string;
      runId: string;
    }>;
    assert.deepEqual(
      results.map((r) => [r.name, r.outcome]),
      [
        ["a", "started"],
        ["b", "started"],
        ["d", "started"],
      ],
    );
    // Idempotent: a second start returns the same runtimes.
    const again = await runCli(["--json", "workers", "--config", config, "start"], { home, env });
    assert.equal(again.exitCode, 0, again.stderr);
    assert.deepEqual(
      (JSON.parse(again.stdout).results as Array<{ outcome: string; runId: string }>).map((r) => [
        r.outcome,
        r.runId,
      ]),
      results.map((r) => ["running", r.runId]),
    );

    supervisor = execa(
      process.execPath,
      [CLI, "--log-format", "json", "workers", "--config", config, "run"],
      {
        env: { ...env, OPENWORK_HOME: home },
        reject: false,
      },
    );
    const adopted = await waitFor(
      async () => {
        const f = await fleet();
        return f.supervisor.state === "running" &&
          f.workers.every((w) => w.state === "running" && w.heartbeatAgeMs !== null)
          ? f
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "the supervisor adopting the three workers" },
    );
    assert.deepEqual(
      adopted.workers.map((w) => w.runId),
      results.map((r) => r.runId),
      "the supervisor adopts the running runtimes",
    );
    for (const w of adopted.workers) {
      assert.ok(
        w.heartbeatAgeMs !== null && w.heartbeatAgeMs < 3000,
        `${w.name} heartbeat ${w.heartbeatAgeMs}`,
      );
      assert.equal(w.stale, false);
      assert.equal(w.restarts, 0);
      assert.equal(w.components.opencode, "healthy");
    }
    const second = await cli(["workers", "run"]);
    assert.equal(second.exitCode, 1);
    assert.match(second.stderr, /a supervisor \(pid \d+\) already runs the workers of/);

    const watched = await execa(
      process.execPath,
      [CLI, "workers", "--config", config, "status", "--watch", "--interval", "0.3"],
      { env: { ...env, OPENWORK_HOME: home }, reject: false, timeout: 2500 },
    );
    assert.ok((String(watched.stdout).match(/^--- /gm) ?? []).length >= 2, String(watched.stdout));

    const logs = await cli(["workers", "logs", "a", "--tail", "3"]);
    assert.equal(logs.exitCode, 0, logs.stderr);
    assert.equal(logs.stdout.trim().split("\n").length, 3);

    const human = await cli(["workers", "status"]);
    assert.equal(human.exitCode, 0, human.stderr);
    assert.match(human.stdout, /^WORKER\s+SANDBOX\s+STATE\s+HEALTH/m);
    assert.match(human.stdout, /supervisor: running, pid \d+/);
  });

  it("survives kill -9 of an engine (its server restarts it) and docker kill (the supervisor starts it again)", async (t) => {
    if (!dockerReady || !supervisor) return t.skip("needs the fleet above");
    const before = await fleet();
    const a = row(before, "a");
    const d = row(before, "d");
    const statusA = JSON.parse((await runCli(["--json", "status", a.runId as string], { home, env })).stdout);
    const enginePid = statusA.runtime.summary.components.opencode.pid as number;
    process.kill(enginePid, "SIGKILL");
    const statusD = JSON.parse((await runCli(["--json", "status", d.runId as string], { home, env })).stdout);
    await execa("docker", ["kill", statusD.local.id]);

    const healed = await waitFor(
      async () => {
        const f = await fleet();
        const nd = row(f, "d");
        return nd.state === "running" && nd.runId !== d.runId && row(f, "a").state === "running"
          ? f
          : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, what: "worker d started again and a running again" },
    );
    assert.equal(row(healed, "a").runId, a.runId, "the engine was restarted inside its run");
    const newA = JSON.parse((await runCli(["--json", "status", a.runId as string], { home, env })).stdout);
    assert.notEqual(newA.runtime.summary.components.opencode.pid, enginePid);
    assert.equal(row(healed, "d").restarts, 1);
    assert.equal(row(healed, "a").restarts, 0);

    const metricsUrl = healed.supervisor.metricsUrl as string;
    const text = await (await fetch(metricsUrl)).text();
    const exposition = parsePrometheus(text);
    const value = (name: string, labels: Record<string, string>) => sampleValue(exposition, name, labels);
    assert.equal(value("openwork_worker_restarts_total", { worker: "d" }), 1);
    assert.equal(value("openwork_worker_restarts_total", { worker: "a" }), 0);
    assert.equal(value("openwork_worker_up", { worker: "b" }), 1);
    assert.equal(value("openwork_worker_healthy", { worker: "a", component: "opencode" }), 1);
    assert.ok((value("openwork_worker_memory_bytes", { worker: "d" }) ?? 0) > 10 * 1024 * 1024);
    assert.ok((value("openwork_worker_last_start_duration_seconds", { worker: "d" }) ?? 0) > 0);
  });

  it("reloads on edit and SIGHUP: adds one, removes one, leaves the rest; a broken edit keeps the fleet", async (t) => {
    if (!dockerReady || !supervisor) return t.skip("needs the fleet above");
    const before = await fleet();
    writeConfig(config, [worker("a"), worker("c"), worker("d", { sandbox: "docker" })]);
    supervisor.kill("SIGHUP");
    const after = await waitFor(
      async () => {
        const f = await fleet();
        return f.workers.length === 3 && row(f, "c")?.state === "running" ? f : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "worker c running after the reload" },
    );
    assert.equal(row(after, "a").runId, row(before, "a").runId);
    assert.equal(row(after, "d").runId, row(before, "d").runId);
    const removed = await waitFor(
      async () => {
        const status = JSON.parse(
          (await runCli(["--json", "status", row(before, "b").runId as string], { home, env })).stdout,
        );
        return status.state === "stopped" ? status : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "worker b's run stopped" },
    );
    assert.equal(removed.state, "stopped");

    writeFileSync(config, '{ "workers": [ { "name": "a", ');
    supervisor.kill("SIGHUP");
    // The supervisor keeps its fleet (status itself cannot read the file now: it says so and exits 2).
    await waitFor(
      async () => {
        const file = readSupervisorState(home);
        return file?.configError ? file : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 500, what: "the refused reload to be reported" },
    );
    const still = JSON.parse((await runCli(["--json", "status", "--all"], { home, env })).stdout)
      .runs as Array<{
      runId: string;
      state: string;
    }>;
    for (const name of ["a", "c", "d"] as const) {
      const id = row(after, name).runId;
      assert.equal(still.find((r) => r.runId === id)?.state, "running", `${name} keeps running`);
    }
    writeConfig(config, [worker("a"), worker("c"), worker("d", { sandbox: "docker" })]);
    supervisor.kill("SIGHUP");
    await waitFor(async () => ((await fleet()).supervisor.configError === null ? true : undefined), {
      timeoutMs: 15_000,
      intervalMs: 500,
      what: "the reload to be accepted again",
    });
  });

  it("kill -9 of the supervisor leaves the workers running; the next one adopts them, no duplicates", async (t) => {
    if (!dockerReady || !supervisor) return t.skip("needs the fleet above");
    const before = await fleet();
    supervisor.kill("SIGKILL");
    await supervisor;
    supervisor = undefined;
    const orphaned = await fleet();
    assert.equal(orphaned.supervisor.state, "not-running");
    assert.ok(
      orphaned.workers.every((w) => w.healthy),
      "the workers outlive their supervisor",
    );

    const supervised = await runCli(["--json", "workers", "--config", config, "start", "--supervise"], {
      home,
      env,
      timeoutMs: 120_000,
    });
    assert.equal(supervised.exitCode, 0, supervised.stderr);
    const doc = JSON.parse(supervised.stdout);
    assert.equal(doc.started.already, false);
    const again = await runCli(["--json", "workers", "--config", config, "start", "--supervise"], {
      home,
      env,
    });
    assert.equal(JSON.parse(again.stdout).started.already, true, "idempotent");
    assert.equal(JSON.parse(again.stdout).started.pid, doc.started.pid);
    const adopted = await waitFor(
      async () => {
        const f = await fleet();
        return f.workers.every((w) => w.state === "running") ? f : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: "the new supervisor adopting the workers" },
    );
    assert.deepEqual(
      adopted.workers.map((w) => w.runId),
      before.workers.map((w) => w.runId),
    );
    const supervisorLog = await cli(["workers", "logs", "--supervisor", "--tail", "50"]);
    assert.match(supervisorLog.stdout, /supervising the workers/);

    // A rolling restart of one worker: a new run, healthy, and the supervisor follows it.
    const restarted = await runCli(["--json", "workers", "--config", config, "restart", "c"], { home, env });
    assert.equal(restarted.exitCode, 0, restarted.stderr);
    const [result] = JSON.parse(restarted.stdout).results as Array<{ outcome: string; runId: string }>;
    assert.equal(result?.outcome, "started");
    assert.notEqual(result?.runId, row(adopted, "c").runId);
    await waitFor(
      async () => {
        const f = await fleet();
        return row(f, "c").runId === result?.runId && row(f, "c").state === "running" ? f : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: "the supervisor following the restarted worker" },
    );

    const live = (
      JSON.parse((await runCli(["--json", "status", "--all"], { home, env })).stdout).runs as Array<{
        state: string;
      }>
    ).filter((r) => r.state === "running");
    assert.equal(live.length, 3, "one runtime per worker");

    const began = Date.now();
    const stopped = await cli(["workers", "stop"], 120_000);
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    assert.ok(Date.now() - began < 45_000, `stopped in ${Date.now() - began} ms (stopTimeout 30s)`);
    const end = await fleet();
    assert.equal(end.supervisor.state, "not-running");
    assert.ok(
      end.workers.every((w) => w.state === "stopped"),
      JSON.stringify(end.workers.map((w) => w.state)),
    );
  });

  it("a worker whose engine always dies goes to failed after maxRestarts; the other stays healthy; SIGTERM exits 0", async () => {
    const engineDies = path.join(dir, "opencode-dies");
    writeFileSync(
      engineDies,
      '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "1.18.34"; exit 0; fi\necho "engine: dying at once"; exit 3\n',
    );
    chmodSync(engineDies, 0o755);
    const failing = path.join(dir, "failing.json");
    writeFileSync(
      failing,
      JSON.stringify({
        heartbeatInterval: "1s",
        stopTimeout: "20s",
        workers: [
          {
            name: "dies",
            workspace: workspaces.b,
            opencodeBin: engineDies,
            allowExternal: true,
            allowVersionMismatch: true,
            healthTimeout: "15s",
            restart: {
              maxRestarts: 2,
              window: "5m",
              minUptime: "5s",
              backoff: { initial: "500ms", max: "1s", jitter: 0 },
            },
          },
          { name: "fine", workspace: workspaces.c, restart },
        ],
      }),
    );
    const child = execa(
      process.execPath,
      [CLI, "--log-format", "json", "workers", "--config", failing, "run"],
      {
        env: { ...env, OPENWORK_HOME: home },
        reject: false,
      },
    );
    try {
      const settled = await waitFor(
        async () => {
          const f = await fleet(failing);
          return row(f, "dies").state === "failed" && row(f, "fine").state === "running" ? f : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 500, what: "worker dies failed and worker fine running" },
      );
      const dies = row(settled, "dies");
      assert.equal(dies.restarts, 2);
      assert.match(dies.lastError ?? "", /maxRestarts 2/);
      assert.equal(row(settled, "fine").healthy, true);
    } finally {
      const began = Date.now();
      child.kill("SIGTERM");
      const result = await child;
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      assert.ok(Date.now() - began < 25_000, `stopped in ${Date.now() - began} ms (stopTimeout 20s)`);
    }
    const end = await fleet(failing);
    assert.equal(row(end, "fine").state, "stopped");
  });
});

function readSupervisorState(home: string): { configError: string | null } | undefined {
  const root = path.join(home, "workers");
  try {
    for (const id of readdirSync(root)) {
      const file = path.join(root, id, "supervisor.json");
      try {
        return JSON.parse(readFileSync(file, "utf8"));
      } catch {}
    }
  } catch {}
  return undefined;
}
