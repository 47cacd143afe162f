import assert from "node:assert/strict";
import { mkdtempSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { openworkPaths } from "../../src/config/paths.js";
import { silentLogger } from "../../src/logging/logger.js";
import { reconcileAll, reconcileWorkspace } from "../../src/runs/reconcile.js";
import type { RunRecord } from "../../src/runs/record.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { selectRuns } from "../../src/runs/select.js";
import type {
  ListedSandbox,
  SandboxBackend,
  SandboxHandle,
  SandboxStatus,
} from "../../src/sandbox/backend.js";
import { parseLabels as parseExtraLabels } from "../../src/sandbox/backend.js";
import { registerBackend } from "../../src/sandbox/select.js";

function registry(): RunRegistry {
  return new RunRegistry(
    openworkPaths({ OPENWORK_HOME: mkdtempSync(path.join(os.tmpdir(), "openwork-runs-")) }),
  );
}

function record(reg: RunRegistry, overrides: Partial<RunRecord>): RunRecord {
  const runId = overrides.runId ?? RunRegistry.newRunId();
  return {
    version: 1,
    runId,
    workspace: "/ws/a",
    workspaceId: RunRegistry.workspaceId("/ws/a"),
    sandbox: "docker",
    state: "running",
    ports: { server: 1, engine: 2, routerHealth: 3 },
    persistDir: "/p",
    runDir: reg.runDir(runId),
    logFile: "/p/log",
    router: false,
    versions: { opencode: "1.18.34", router: null, server: "0.1.0" },
    createdAt: new Date().toISOString(),
    ...overrides,
  };
}

/** Sandboxes kept in memory, for reconcile logic only (the real backends have their own integration tests). */
class MemoryBackend implements SandboxBackend {
  readonly kind = "docker" as const;
  readonly boxes = new Map<string, { labels: Record<string, string>; state: SandboxStatus["state"] }>();
  readonly stopped: string[] = [];
  async probe() {
    return { ok: true as const, version: "memory" };
  }
  async launch(): Promise<SandboxHandle> {
    throw new Error("not used");
  }
  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    const box = this.boxes.get(handle.id);
    return box
      ? { state: box.state, exitCode: box.state === "exited" ? 137 : undefined }
      : { state: "missing" };
  }
  async logs() {}
  async stop(handle: SandboxHandle) {
    const box = this.boxes.get(handle.id);
    if (box) box.state = "exited";
    this.stopped.push(handle.id);
  }
  async remove(handle: SandboxHandle) {
    this.boxes.delete(handle.id);
  }
  async list(labels: Record<string, string>): Promise<ListedSandbox[]> {
    return [...this.boxes.entries()]
      .filter(([, box]) => Object.entries(labels).every(([key, value]) => box.labels[key] === value))
      .map(([id, box]) => ({ kind: "docker", id, labels: box.labels, state: box.state }));
  }
}

test("records are written atomically and secrets are 0600, never in the record", async () => {
  const reg = registry();
  const rec = record(reg, {});
  await reg.write(rec);
  const file = await reg.writeSecrets(rec.runId, {
    clientToken: "c".repeat(20),
    hostToken: "h".repeat(20),
    enginePassword: "p".repeat(20),
  });
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(await reg.read(rec.runId), rec);
  const { records } = await reg.list();
  assert.equal(records.length, 1);
  assert.ok(!JSON.stringify(records).includes("c".repeat(20)));
});

test("selectRuns: by id, unique prefix, workspace, all; ambiguity and unknown ids are usage errors", async () => {
  const reg = registry();
  const a = record(reg, { runId: "20260101000000-aaaa1111", workspace: "/nonexistent/ws1" });
  const b = record(reg, { runId: "20260101000000-aaaa2222", workspace: "/nonexistent/ws2" });
  assert.deepEqual(await selectRuns([a, b], { run: a.runId }), [a]);
  assert.deepEqual(await selectRuns([a, b], { run: "20260101000000-aaaa2" }), [b]);
  await assert.rejects(selectRuns([a, b], { run: "20260101000000-aaaa" }), /ambiguous/);
  await assert.rejects(selectRuns([a, b], { run: "zzz" }), /no run "zzz"/);
  assert.deepEqual(await selectRuns([a, b], { workspace: "/nonexistent/ws2" }), [b]);
  assert.equal((await selectRuns([a, b], { all: true })).length, 2);
  await assert.rejects(selectRuns([a, b], { all: true, run: "x" }), /one of RUN, --workspace or --all/);
});

test("reconcile: a start whose process died is torn down and marked failed; a vanished sandbox marks the run failed", async () => {
  const reg = registry();
  const backend = new MemoryBackend();
  registerBackend("docker", () => backend);
  const dead = record(reg, { state: "starting", owner: { pid: 2 ** 22 + 17, startTime: "1" } });
  backend.boxes.set("c-dead", {
    labels: { "openwork.managed": "1", "openwork.run": dead.runId },
    state: "running",
  });
  const gone = record(reg, { workspace: "/ws/b", handle: { kind: "docker", id: "c-gone" } });
  const orphanLabels = {
    "openwork.managed": "1",
    "openwork.home": reg.homeId(),
    "openwork.run": "20990101000000-deadbeef",
  };
  backend.boxes.set("c-orphan", { labels: orphanLabels, state: "running" });
  // Another OPENWORK_HOME's sandbox is not this home's orphan.
  backend.boxes.set("c-other-home", {
    labels: { ...orphanLabels, "openwork.home": "0123456789abcdef" },
    state: "running",
  });
  await reg.write(dead);
  await reg.write(gone);
  const { records, orphans } = await reconcileAll(reg, silentLogger());
  const byId = new Map(records.map((item) => [item.runId, item]));
  assert.equal(byId.get(dead.runId)?.state, "failed");
  assert.match(byId.get(dead.runId)?.reason ?? "", /process that was starting this run died/);
  assert.ok(!backend.boxes.has("c-dead"), "the half-started sandbox was removed");
  assert.equal(byId.get(gone.runId)?.state, "failed");
  assert.match(byId.get(gone.runId)?.reason ?? "", /disappeared/);
  assert.deepEqual(
    orphans.filter((item) => item.kind === "docker").map((item) => item.id),
    ["c-orphan"],
  );
});

test("reconcile: a retiring run is finished, and of two running runs of one workspace the newest wins", async () => {
  const reg = registry();
  const backend = new MemoryBackend();
  registerBackend("docker", () => backend);
  const old = record(reg, {
    runId: "20260101000000-00000001",
    createdAt: "2026-01-01T00:00:00.000Z",
    handle: { kind: "docker", id: "c1" },
  });
  const retiring = record(reg, {
    runId: "20260101000000-00000000",
    state: "retiring",
    createdAt: "2025-01-01T00:00:00.000Z",
    handle: { kind: "docker", id: "c0" },
  });
  const newest = record(reg, {
    runId: "20260101000000-00000002",
    createdAt: "2026-02-01T00:00:00.000Z",
    handle: { kind: "docker", id: "c2" },
  });
  for (const [id, rec] of [
    ["c0", retiring],
    ["c1", old],
    ["c2", newest],
  ] as const) {
    backend.boxes.set(id, {
      labels: { "openwork.managed": "1", "openwork.run": rec.runId },
      state: "running",
    });
    await reg.write(rec);
  }
  const { live } = await reconcileWorkspace(reg, RunRegistry.workspaceId("/ws/a"), silentLogger());
  assert.deepEqual(
    live.map((item) => item.runId),
    [newest.runId],
  );
  assert.equal((await reg.read(old.runId))?.state, "stopped");
  assert.equal((await reg.read(retiring.runId))?.state, "stopped");
  assert.deepEqual([...backend.boxes.keys()], ["c2"]);
});

test("OPENWORK_LABELS parses k=v pairs and refuses anything else", () => {
  assert.deepEqual(parseExtraLabels("openwork.test=1,a=b=c"), { "openwork.test": "1", a: "b=c" });
  assert.deepEqual(parseExtraLabels(undefined), {});
  assert.throws(() => parseExtraLabels("novalue"), /k=v pairs/);
});
