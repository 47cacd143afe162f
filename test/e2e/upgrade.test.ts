import assert from "node:assert/strict";
import { existsSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { UPGRADE_STEPS, type UpgradeOperation } from "../../src/contract/api.js";
import { pidState } from "../../src/processes/inspect.js";
import { sha256File } from "../../src/sidecars/hash.js";
import { runCli } from "../helpers/cli.js";
import { closedLoop } from "../helpers/load.js";
import { waitFor } from "../helpers/net.js";
import { PREVIOUS_OPENCODE, previousOpencode } from "../helpers/npm-binary.js";
import { parsePrometheus, sampleValue } from "../helpers/prometheus.js";
import {
  BUNDLED_NODE,
  BUNDLED_OPENCODE,
  builtServerVersion,
  neverHealthyEngine,
  ROOT,
  type RunningRuntime,
  routerWrapper,
  SERVER_BUNDLE,
  type SidecarInput,
  serverBundle,
  stageRuntime,
  startRuntime,
  tempPersist,
} from "../helpers/runtime.js";

// One runtime for the whole file (engine starts are the expensive part): the previous opencode
// release with router double 0.1.0 and the built server, upgraded to the bundled opencode, router
// double 0.2.0 and a server bundle stamped 0.1.1-upgrade. Every faulty upgrade runs first and must
// leave the old runtime serving; the clean one last. A closed request loop runs throughout.
let rt: RunningRuntime;
let persist: string;
let oldEngine: SidecarInput;
let newServer: SidecarInput;
let goodRuntime: string;
let load: ReturnType<typeof closedLoop>;
const NEW_ROUTER = "0.2.0-double";
const target = `${process.platform}-${process.arch}`;

before(async () => {
  persist = tempPersist();
  const fixtures = path.join(persist, "fixtures");
  oldEngine = { path: await previousOpencode(), version: PREVIOUS_OPENCODE };
  newServer = await serverBundle("0.1.1-upgrade");
  const oldRuntime = await stageRuntime({ persist, opencode: oldEngine, router: routerWrapper(fixtures) });
  goodRuntime = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    router: routerWrapper(fixtures, { version: NEW_ROUTER }),
    server: newServer,
  });
  rt = await startRuntime({ persist, runtimeId: oldRuntime, router: true, healthDeadlineS: 20 });
  load = closedLoop(rt.url, rt.clientToken, ["/system/health", "/opencode/global/health"], {
    check: (p, status, body) =>
      status === 200 &&
      (p !== "/opencode/global/health" || (JSON.parse(body) as { healthy?: boolean }).healthy === true),
  });
});

after(async () => {
  await load?.stop();
  await rt?.stop();
});

async function upgrade(body: Record<string, unknown>): Promise<{ status: number; body: any }> {
  return rt.call("POST", "/system/runtime/upgrade", { token: rt.hostToken, hostHeader: true, body });
}

/** The counters this file checks, from GET /system/metrics (host token), parsed strictly. */
async function counters(): Promise<{ rolledBack: number; succeeded: number; proxied200: number }> {
  const response = await fetch(`${rt.url}/system/metrics`, {
    headers: { authorization: `Bearer ${rt.hostToken}` },
  });
  assert.equal(response.status, 200);
  const metrics = parsePrometheus(await response.text());
  const upgrades = (outcome: string) =>
    sampleValue(metrics, "openwork_server_upgrade_duration_seconds_count", { outcome }) ?? 0;
  return {
    rolledBack: upgrades("rolled_back"),
    succeeded: upgrades("succeeded"),
    proxied200:
      sampleValue(metrics, "openwork_server_proxied_requests_total", { target: "opencode", code: "200" }) ??
      0,
  };
}

async function finished(operationId: string): Promise<UpgradeOperation> {
  return waitFor(
    async () => {
      const operation = await rt.client.operation(operationId);
      return operation.state === "running" ? undefined : operation;
    },
    { timeoutMs: 90_000, intervalMs: 200, what: `upgrade ${operationId} to finish` },
  );
}

async function assertOldStillServing(): Promise<void> {
  const versions = await rt.client.versions();
  assert.equal(versions.active.opencode, PREVIOUS_OPENCODE);
  assert.equal(versions.active["opencode-router"], "0.1.0-double");
  assert.equal(versions.target, null, "no upgrade is pending after a rollback");
  const health = await rt.call("GET", "/opencode/global/health");
  assert.deepEqual(health.body, { healthy: true, version: PREVIOUS_OPENCODE });
  assert.equal((await rt.call("GET", "/system/router/health")).status, 200);
}

async function failsAt(runtimeId: string, step: string, reason: RegExp): Promise<any> {
  const started = await upgrade({ runtimeId });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const operation = await finished(started.body.data.operationId);
  assert.equal(operation.state, "failed", JSON.stringify(operation));
  assert.equal(operation.error?.step, step);
  assert.match(operation.error?.message, reason);
  assert.equal(operation.rolledBack, true, JSON.stringify(operation.steps));
  await assertOldStillServing();
  return operation;
}

test("verification fails (a staged byte differs from runtime.json) → failed at verify, nothing started", async () => {
  const runtimeId = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    router: routerWrapper(path.join(persist, "fixtures"), { version: NEW_ROUTER }),
    tamper: (content) => {
      const entry = content.sidecars.opencode as { sha256: string };
      entry.sha256 = `${entry.sha256.slice(0, -1)}${entry.sha256.endsWith("0") ? "1" : "0"}`;
    },
  });
  const operation = await failsAt(runtimeId, "verify", /expected sha256 .*, actual /);
  assert.deepEqual(
    operation.steps.map((s: { name: string }) => s.name),
    ["verify"],
  );
});

test("the new engine is never healthy → failed at gate-engine, rolled back", async () => {
  const runtimeId = await stageRuntime({
    persist,
    opencode: neverHealthyEngine(path.join(persist, "fixtures")),
    router: routerWrapper(path.join(persist, "fixtures"), { version: NEW_ROUTER }),
  });
  const operation = await failsAt(runtimeId, "gate-engine", /not healthy within/);
  assert.ok(operation.steps.some((s: { name: string }) => s.name === "rollback:stop-new-engine"));
});

test("the new engine reports another version than runtime.json pins → failed at gate-engine", async () => {
  const runtimeId = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.99" },
    router: routerWrapper(path.join(persist, "fixtures"), { version: NEW_ROUTER }),
  });
  await failsAt(runtimeId, "gate-engine", /reports version 1\.18\.34, runtime\.json pins 1\.18\.99/);
});

test("the router's gate fails → the proxy switches back to the old engine and the old router is restarted", async () => {
  const runtimeId = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    router: routerWrapper(path.join(persist, "fixtures"), { version: NEW_ROUTER, fault: "never-healthy" }),
  });
  const operation = await failsAt(runtimeId, "gate-router", /not healthy within/);
  const names = operation.steps.map((s: { name: string }) => s.name);
  for (const name of [
    "switch-proxy",
    "rollback:switch-proxy",
    "rollback:restart-router",
    "rollback:stop-new-engine",
  ])
    assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
});

test("the new server reports another version than runtime.json pins → failed at load-server; the old server keeps answering", async () => {
  const runtimeId = await stageRuntime({
    persist,
    opencode: oldEngine,
    router: routerWrapper(path.join(persist, "fixtures")),
    server: { path: newServer.path, version: "9.9.9" },
  });
  const started = await upgrade({ runtimeId, components: ["openwork-server"] });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const operation = await finished(started.body.data.operationId);
  assert.equal(operation.state, "failed");
  assert.equal(operation.error?.step, "load-server");
  assert.match(operation.error?.message, /reports version 0\.1\.1-upgrade, runtime\.json pins 9\.9\.9/);
  const versions = (await rt.call("GET", "/system/runtime/versions")).body.data;
  assert.equal(versions.active["openwork-server"], builtServerVersion());
  await assertOldStillServing();
});

test("a usage error of the new server is recorded as such (recognised by brand across bundles), with its hint", async () => {
  // A bundle whose takeOver fails the way a newer server refusing its environment would: with a
  // UsageError from its own copy of our error classes, which `instanceof` in this server cannot see.
  const fixtures = path.join(persist, "fixtures");
  const bundle = path.join(fixtures, "openwork-server-refuses.mjs");
  const errors = pathToFileURL(path.join(ROOT, "dist", "src", "errors", "errors.js")).href;
  writeFileSync(
    bundle,
    [
      `const { UsageError } = await import(${JSON.stringify(`${errors}?copy=new-bundle`)});`,
      "export const OPENWORK_SERVER_HANDOFF = 1;",
      "export async function takeOver() {",
      '  throw new UsageError("OPENWORK_EXAMPLE is not set", "the entrypoint sets it");',
      "}",
      "",
    ].join("\n"),
  );
  const runtimeId = await stageRuntime({
    persist,
    opencode: oldEngine,
    router: routerWrapper(fixtures),
    server: { path: bundle, version: "0.9.0-refuses" },
  });
  const started = await upgrade({ runtimeId, components: ["openwork-server"] });
  assert.equal(started.status, 202, JSON.stringify(started.body));
  const operation = await finished(started.body.data.operationId);
  assert.equal(operation.state, "failed");
  assert.deepEqual(
    { step: operation.error?.step, code: operation.error?.code, message: operation.error?.message },
    { step: "load-server", code: "usage", message: "OPENWORK_EXAMPLE is not set" },
  );
  assert.equal(operation.error?.hint, "the entrypoint sets it");
  await assertOldStillServing();
});

test("two concurrent upgrades → one 202, one 409; the upgrade succeeds: versions.active changes, zero failed requests", async () => {
  // a stream opened on the old engine is closed only after the switch; a new one reaches the new engine
  const streamEnded = new Promise<number>((resolve, reject) => {
    http
      .get(
        `${rt.url}/opencode/global/event`,
        { headers: { authorization: `Bearer ${rt.clientToken}` } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(Date.now()));
          res.on("error", () => resolve(Date.now()));
        },
      )
      .on("error", reject);
  });
  const oldPid = (await rt.call("GET", "/system/runtime/summary")).body.data.components.opencode.pid;
  const countedBefore = await counters();
  const [a, b] = await Promise.all([
    upgrade({ runtimeId: goodRuntime }),
    upgrade({ runtimeId: goodRuntime }),
  ]);
  const statuses = [a.status, b.status].sort();
  assert.deepEqual(statuses, [202, 409], JSON.stringify([a.body, b.body]));
  const accepted = a.status === 202 ? a : b;
  const refused = a.status === 409 ? a : b;
  assert.equal(refused.body.error.code, "upgrade_in_progress");
  assert.equal(refused.body.error.operationId, accepted.body.data.operationId);
  const during = (await rt.call("GET", "/system/runtime/versions")).body.data;
  assert.equal(during.target?.runtimeId, goodRuntime);
  const operation = await finished(accepted.body.data.operationId);
  assert.equal(operation.state, "succeeded", JSON.stringify(operation, null, 2));
  assert.deepEqual(
    operation.steps.map((s: { name: string }) => s.name),
    UPGRADE_STEPS.filter((step) => step !== "stage"),
    "every step but staging, which only manifest upgrades have",
  );
  const versions = (await rt.call("GET", "/system/runtime/versions")).body.data;
  assert.equal(versions.active.opencode, "1.18.34");
  assert.equal(versions.active["opencode-router"], NEW_ROUTER);
  assert.equal(versions.active["openwork-server"], "0.1.1-upgrade");
  assert.equal(versions.pinned.runtimeId, goodRuntime);
  const endedAt = await streamEnded;
  assert.ok(
    endedAt > Date.parse(operation.steps[3]?.finishedAt ?? ""),
    "the old stream closed after the switch",
  );
  assert.equal(readFileSync(path.join(persist, "state", "current-runtime"), "utf8").trim(), goodRuntime);
  assert.notEqual(pidState(oldPid), "alive", "the old engine is retired");
  const summary = (await rt.call("GET", "/system/runtime/summary")).body.data;
  assert.equal(summary.server.version, "0.1.1-upgrade");
  // The metrics outlive the handler swap: the new server answers with the counters the old one kept
  // (the faulty upgrades before this one, the requests of the load loop), and counts on.
  const countedAfter = await counters();
  assert.ok(countedBefore.rolledBack >= 1, JSON.stringify(countedBefore));
  assert.equal(countedAfter.rolledBack, countedBefore.rolledBack);
  assert.equal(countedAfter.succeeded, countedBefore.succeeded + 1);
  assert.ok(
    countedAfter.proxied200 > countedBefore.proxied200,
    JSON.stringify([countedBefore, countedAfter]),
  );
  assert.equal(
    summary.server.pid,
    rt.process.pid,
    "the same process serves: no restart, no refused connection",
  );
  assert.equal(summary.components.opencode.status, "healthy");
  assert.equal((await rt.call("GET", "/system/router/health")).status, 200);
  const result = await load.stop();
  assert.equal(result.failed, 0, result.failures.join("\n"));
  assert.ok((result.byPath["/opencode/global/health"] ?? 0) > 50, JSON.stringify(result));
  // A later upgrade is accepted by the new generation (the lock was released), here from a Manifest v1
  // as `openwork sidecars manifest` prints it, which the server stages and verifies itself: only what
  // changed (the router it adds, and the server, back to this build) is replaced.
  const manifestDir = path.join(persist, "manifest-files");
  const router3 = routerWrapper(manifestDir, { version: "0.3.0-double" });
  const printed = await runCli(["sidecars", "manifest", "--target", target], { timeoutMs: 60_000 });
  assert.equal(printed.exitCode, 0, printed.stderr);
  const manifestV1 = JSON.parse(printed.stdout) as {
    sidecars: Record<string, { targets: Record<string, Record<string, unknown>> }>;
  };
  manifestV1.sidecars["opencode-router"] = {
    targets: {
      [target]: {
        version: "0.3.0-double",
        file: path.basename(router3.path),
        ...(await sha256File(router3.path)),
        source: { type: "url", url: "https://example.invalid/opencode-router" },
      },
    },
  };
  for (const [file, from] of [
    ["opencode", BUNDLED_OPENCODE],
    ["openwork-server.mjs", SERVER_BUNDLE],
    ["node", BUNDLED_NODE],
  ] as const)
    symlinkSync(from, path.join(manifestDir, file));
  const manifest = path.join(manifestDir, "manifest.json");
  writeFileSync(manifest, JSON.stringify(manifestV1, null, 2));
  const again = await upgrade({ manifest });
  assert.equal(again.status, 202, JSON.stringify(again.body));
  const third = await finished(again.body.data.operationId);
  assert.equal(third.state, "succeeded", JSON.stringify(third, null, 2));
  assert.deepEqual(third.components, ["opencode-router", "openwork-server"]);
  assert.equal(third.steps[0]?.name, "stage");
  const final = (await rt.call("GET", "/system/runtime/versions")).body.data;
  assert.equal(final.active["opencode-router"], "0.3.0-double");
  assert.equal(final.active.opencode, "1.18.34");
  assert.equal(final.active["openwork-server"], builtServerVersion());
  assert.equal(final.pinned.runtimeId, third.to.runtimeId);
  // The same manifest again is the runtime that runs: nothing is replaced, nothing of it removed,
  // and the next upgrade still works.
  const repeat = await upgrade({ manifest });
  assert.equal(repeat.status, 202, JSON.stringify(repeat.body));
  const fourth = await finished(repeat.body.data.operationId);
  assert.equal(fourth.state, "succeeded", JSON.stringify(fourth, null, 2));
  assert.deepEqual(fourth.components, []);
  assert.equal(
    fourth.to.runtimeId,
    third.to.runtimeId,
    "content-addressed: the same manifest, the same runtime",
  );
  assert.ok(existsSync(path.join(persist, "runtimes", third.to.runtimeId, "runtime.json")));
  const back = await upgrade({ runtimeId: goodRuntime, components: ["opencode-router"] });
  assert.equal(back.status, 202, JSON.stringify(back.body));
  assert.equal((await finished(back.body.data.operationId)).state, "succeeded");
});
