import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { openworkPaths } from "../../src/config/paths.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { CLI, runCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/net.js";

const env = { OPENWORK_LABELS: "openwork.test=1" };

/** Processes that carry this home's label in their environment (the runtime's, whatever their run). */
function processesOfHome(home: string): number[] {
  const homeId = new RunRegistry(openworkPaths({ OPENWORK_HOME: home })).homeId();
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "utf8").includes(`"openwork.home":"${homeId}"`))
        found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

function startForeground(home: string, workspace: string) {
  const child = spawn(process.execPath, [CLI, "start", "--workspace", workspace], {
    env: { ...process.env, OPENWORK_HOME: home, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, out: () => stdout, err: () => stderr };
}

test("foreground start: connect info, then Ctrl-C stops the runtime cleanly", async () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-fg-"));
  const workspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-fg-"));
  const run = startForeground(home, workspace);
  await waitFor(async () => (run.out().includes("Ctrl-C stops the runtime") ? true : undefined), {
    timeoutMs: 120_000,
    what: `the connect info (stderr so far: ${run.err().slice(-500)})`,
  });
  assert.match(run.out(), /url: +http:\/\/127\.0\.0\.1:\d+/);
  assert.match(run.out(), /tokens: +\S+secrets\.json/);
  const status = await runCli(["--json", "status", "--workspace", workspace], { home, env });
  assert.equal(status.exitCode, 0, status.stdout);
  run.child.kill("SIGINT");
  assert.deepEqual(await run.exited, { code: 0, signal: null }, run.err().slice(-2000));
  const after = await runCli(["--json", "status", "--workspace", workspace], { home, env });
  assert.equal(after.exitCode, 3);
  assert.equal((JSON.parse(after.stdout) as { state: string }).state, "stopped");
  assert.deepEqual(processesOfHome(home), []);
});

test("SIGINT or SIGTERM at any moment of start-up: the command cleans up after itself, no sweep needed", async () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-sig-"));
  const workspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-sig-"));
  for (let attempt = 0; attempt < 8; attempt++) {
    const signal = attempt % 2 === 0 ? "SIGINT" : "SIGTERM";
    const delay = Math.floor(Math.random() * 4000);
    const run = startForeground(home, workspace);
    await new Promise((resolve) => setTimeout(resolve, delay));
    run.child.kill(signal);
    const { code, signal: killedBy } = await run.exited;
    // Before any process of the runtime exists the command just exits; after, it removes what it started.
    // A signal that lands while Node itself is still booting (before the entry module's first
    // line has installed our handlers, ~100 ms on a busy CI machine) kills the process by its
    // default action: nothing of ours ran yet, so nothing can be left — the checks below prove it.
    assert.ok(
      code === 0 || code === 130 || code === 143 || (code === null && killedBy === signal),
      `exit code ${code} (signal ${killedBy}) after ${signal} at ${delay} ms: ${run.err().slice(-800)}`,
    );
    assert.deepEqual(processesOfHome(home), [], `nothing left after ${signal} at ${delay} ms`);
  }
  // And the records agree: no run is left starting or running.
  const { records } = await new RunRegistry(openworkPaths({ OPENWORK_HOME: home })).list();
  assert.deepEqual(
    records
      .filter((record) => record.state === "starting" || record.state === "running")
      .map((record) => record.runId),
    [],
  );
});
