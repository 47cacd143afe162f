import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { pidState } from "../../src/processes/inspect.js";
import { runCli } from "../helpers/cli.js";
import { fillDisk, readOnlyView, smallDisk } from "../helpers/disk.js";
import { waitFor } from "../helpers/net.js";
import { BUNDLED_OPENCODE, stageRuntime, startRuntime } from "../helpers/runtime.js";

/** Live (not zombie) processes running a binary from under `dir`. */
function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (cmdline.startsWith(dir) && pidState(Number(entry)) === "alive") out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

test("a full disk under the runtime: the server lives on, no restarted engine outlives a failed ledger write, and it recovers", async (t) => {
  const persist = smallDisk(t, 420);
  if (!persist) return;
  const runtimeId = await stageRuntime({ persist, opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" } });
  const rt = await startRuntime({ persist, runtimeId });
  t.after(() => rt.stop());
  const engine = (await rt.client.summary()).components.opencode;
  const filler = fillDisk(persist);
  process.kill(engine.pid, "SIGKILL");
  // The restart spawns an engine, cannot record it in the ledger, and stops it again: nothing runs untracked.
  await waitFor(
    async () => {
      const summary = await rt.client.summary();
      return summary.components.opencode.events.some(
        (event) => event.type === "start-failed" && /could not record/.test(event.detail),
      )
        ? summary
        : undefined;
    },
    { timeoutMs: 30_000, what: "a restart refused for want of a ledger entry" },
  );
  const engines = processesUnder(path.join(persist, "runtimes", runtimeId, "opencode"));
  assert.deepEqual(engines, [], "no engine runs that the ledger does not know");
  assert.equal((await rt.client.health()).status, "ok", "the server survives its own log writes failing");
  rmSync(filler);
  await waitFor(
    async () => ((await rt.client.summary()).components.opencode.status === "healthy" ? true : undefined),
    { timeoutMs: 100_000, intervalMs: 500, what: "the engine healthy again once space returns" },
  );
});

test("status, stop and the orphan sweep work on a full and on a read-only OPENWORK_HOME", async (t) => {
  const home = smallDisk(t, 700);
  if (!home) return;
  const env = { OPENWORK_LABELS: "openwork.test=1" };
  // Whatever happens, nothing started here outlives the test (the disk is unmounted after it).
  t.after(() => {
    for (const pid of processesUnder(home)) process.kill(pid, "SIGKILL");
  });
  const start = async () => {
    const ws = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-disk-"));
    const result = await runCli(["--json", "start", "--detach", "--workspace", ws], {
      home,
      env,
      timeoutMs: 180_000,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout) as { runId: string; url: string };
  };
  const alive = await start();
  const dead = await start();
  // A run whose processes died without a word: the next command must record it failed.
  const deadPid = Number(
    (
      JSON.parse(readFileSync(path.join(home, "runs", dead.runId, "run.json"), "utf8")) as {
        handle: { id: string };
      }
    ).handle.id.split("@")[0],
  );
  process.kill(-deadPid, "SIGKILL");
  const filler = fillDisk(home);

  const status = await runCli(["--json", "status", "--all"], { home, env });
  assert.equal(status.exitCode, 0, status.stderr);
  const runs = (
    JSON.parse(status.stdout) as { runs: Array<{ runId: string; state: string; healthy: boolean }> }
  ).runs;
  assert.equal(runs.find((run) => run.runId === alive.runId)?.healthy, true);
  assert.equal(runs.find((run) => run.runId === dead.runId)?.state, "failed");
  assert.match(status.stderr, /could not record run .* as failed: .*ENOSPC/);

  const stopped = await runCli(["--json", "stop", "--all", "--orphans"], { home, env });
  assert.equal(stopped.exitCode, 0, stopped.stderr);
  const report = JSON.parse(stopped.stdout) as { stopped: Array<{ runId: string; notRecorded?: string }> };
  assert.match(report.stopped.find((item) => item.runId === alive.runId)?.notRecorded ?? "", /ENOSPC/);
  assert.deepEqual(
    processesUnder(path.join(home, "workspaces")),
    [],
    "stopped although nothing could be recorded",
  );

  rmSync(filler);
  const third = await start();
  const view = readOnlyView(t, home);
  const readOnly = await runCli(["--json", "stop", third.runId], { home: view, env });
  assert.equal(readOnly.exitCode, 0, readOnly.stderr);
  assert.match(
    (JSON.parse(readOnly.stdout) as { stopped: Array<{ notRecorded?: string }> }).stopped[0]?.notRecorded ??
      "",
    /EROFS/,
  );
  assert.deepEqual(processesUnder(path.join(home, "workspaces")), []);
  assert.equal((await runCli(["status", "--all"], { home, env })).exitCode, 3, "nothing runs");
});
