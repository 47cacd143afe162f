import assert from "node:assert/strict";
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseServeEnv } from "../../src/contract/env.js";
import { persistLayout } from "../../src/contract/layout.js";
import { runtimeJsonOf, serializeRuntimeJson } from "../../src/contract/runtime.js";
import { UsageError } from "../../src/errors/errors.js";
import { createLogger } from "../../src/logging/logger.js";
import { forgetSecrets, registerSecret } from "../../src/logging/redact.js";
import { pidState } from "../../src/processes/inspect.js";
import { nextAttemptTimeout } from "../../src/retry/poll.js";
import { LogTail, watchWrites, writtenSince } from "../../src/server/logtail.js";
import { parseProbeArgs, probeOnce, probeUntil } from "../../src/server/probe.js";
import { spawnComponent, terminate } from "../../src/server/proc.js";
import {
  planManifest,
  readRuntime,
  removeStaged,
  stagePlan,
  verifyRuntime,
} from "../../src/server/runtime-files.js";
import { defaultPolicy, Supervised } from "../../src/server/supervisor.js";
import { OperationStore } from "../../src/server/upgrade-record.js";
import { sha256File } from "../../src/sidecars/hash.js";
import { freePort, waitFor } from "../helpers/net.js";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "openwork-unit-"));
/** dist/ of this build, where the compiled modules are (for tests that run them in a child process) */
const ROOT_DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

function validEnv(): Record<string, string> {
  return {
    OPENWORK_PERSIST: "/persist",
    OPENWORK_RUNTIME_ID: "0123456789abcdef",
    OPENWORK_WORKSPACE: "/workspace",
    OPENWORK_SERVER_PORT: "8787",
    OPENWORK_ENGINE_PID: "1234",
    OPENWORK_ENGINE_PORT: "4096",
    OPENWORK_ENGINE_LOG: "/persist/logs/engine.log",
    OPENWORK_TOKEN_SHA256: "a".repeat(64),
    OPENWORK_HOST_KEY: "b".repeat(64),
    OPENCODE_SERVER_PASSWORD: "engine-password-123",
  };
}

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof UsageError, String(error));
    assert.equal(error.exitCode, 2);
    return error.message;
  }
  assert.fail("expected a UsageError");
}

test("serve environment: valid input parses; each bad variable is named, secrets never echoed", () => {
  const env = parseServeEnv(validEnv());
  assert.equal(env.OPENWORK_ENGINE_PORT, 4096);
  assert.equal(env.OPENWORK_SERVER_HOST, "127.0.0.1");
  assert.equal(env.OPENCODE_SERVER_USERNAME, "opencode");
  assert.equal(
    usageMessage(() => parseServeEnv({ ...validEnv(), OPENWORK_ENGINE_PID: undefined })),
    "OPENWORK_ENGINE_PID is not set",
  );
  assert.match(
    usageMessage(() => parseServeEnv({ ...validEnv(), OPENWORK_ENGINE_PORT: "70000" })),
    /^OPENWORK_ENGINE_PORT: /,
  );
  assert.match(
    usageMessage(() => parseServeEnv({ ...validEnv(), OPENWORK_PERSIST: "relative" })),
    /OPENWORK_PERSIST: must be an absolute path/,
  );
  // A token where its digest belongs is refused without being echoed: the runtime never takes a token.
  const plain = usageMessage(() =>
    parseServeEnv({ ...validEnv(), OPENWORK_TOKEN_SHA256: "owc_a-plain-token" }),
  );
  assert.match(plain, /^OPENWORK_TOKEN_SHA256: .*sha256 digest/);
  assert.doesNotMatch(plain, /owc_a-plain-token/);
  const hostToken = usageMessage(() =>
    parseServeEnv({ ...validEnv(), OPENWORK_HOST_KEY: "owh_a-host-token" }),
  );
  assert.match(hostToken, /^OPENWORK_HOST_KEY: must be an Ed25519 public key/);
  assert.doesNotMatch(hostToken, /owh_a-host-token/);
  assert.match(
    usageMessage(() => parseServeEnv({ ...validEnv(), OPENWORK_ROUTER_ENABLED: "1" })),
    /OPENWORK_ROUTER_PID is required when the router is enabled/,
  );
});

test("probe arguments: secrets only by variable name, strict flags", () => {
  const args = parseProbeArgs(
    ["--url", "http://127.0.0.1:1/global/health", "--basic-auth-env", "PW", "--timeout-ms=500"],
    { PW: "secret-pw" },
  );
  assert.equal(args.password, "secret-pw");
  assert.equal(args.user, "opencode");
  assert.equal(args.timeoutMs, 500);
  assert.match(
    usageMessage(() => parseProbeArgs(["--url", "http://a:b@127.0.0.1/"], {})),
    /must not carry credentials/,
  );
  assert.match(
    usageMessage(() => parseProbeArgs(["--url", "http://127.0.0.1/", "--password", "x"], {})),
    /unknown argument "--password"/,
  );
  assert.match(
    usageMessage(() => parseProbeArgs(["--url", "http://127.0.0.1/", "--basic-auth-env", "NOPE"], {})),
    /NOPE, which is not set/,
  );
  assert.match(
    usageMessage(() => parseProbeArgs([], {})),
    /--url is required/,
  );
});

test("probe: 2xx, a healthy body for /global/health, HTTP errors and timeouts", async (t) => {
  let mode = "healthy";
  const server = http.createServer((req, res) => {
    if (mode === "slow") return;
    if (req.headers.authorization !== `Basic ${Buffer.from("opencode:pw-12345678").toString("base64")}`) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(mode === "error" ? 500 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify({ healthy: mode === "healthy", version: "1.2.3" }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.closeAllConnections());
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/global/health`;
  const withAuth = parseProbeArgs(["--url", url, "--basic-auth-env", "PW", "--timeout-ms", "300"], {
    PW: "pw-12345678",
  });
  assert.deepEqual(await probeOnce(withAuth), { ok: true, detail: "healthy 1.2.3" });
  assert.deepEqual(await probeOnce(parseProbeArgs(["--url", url], {})), {
    ok: false,
    reason: "HTTP 401",
    timedOut: false,
  });
  mode = "unhealthy";
  const unhealthy = await probeOnce(withAuth);
  assert.equal(unhealthy.ok, false);
  assert.match(unhealthy.ok ? "" : unhealthy.reason, /^not healthy: /);
  mode = "error";
  assert.deepEqual(await probeOnce(withAuth), { ok: false, reason: "HTTP 500", timedOut: false });
  mode = "slow";
  assert.deepEqual(await probeOnce(withAuth), {
    ok: false,
    reason: "no answer within 300 ms",
    timedOut: true,
  });
});

test("attempt timeouts while waiting: short first, doubled after each timeout, capped", () => {
  assert.equal(nextAttemptTimeout(undefined, false, 2000), 250);
  assert.equal(nextAttemptTimeout(250, false, 2000), 250, "a refusal keeps attempts short");
  assert.equal(nextAttemptTimeout(250, true, 2000), 500);
  assert.equal(nextAttemptTimeout(1000, true, 2000), 2000);
  assert.equal(nextAttemptTimeout(2000, true, 2000), 2000);
  assert.equal(nextAttemptTimeout(undefined, false, 100), 100, "never above the cap");
});

test("probe --wait-ms: outlasts a request that is never answered, stops when the process is gone, and at the deadline", async (t) => {
  // Like opencode just after it starts listening: the first request is accepted and never answered.
  let requests = 0;
  const server = http.createServer((_req, res) => {
    requests++;
    if (requests === 1) return;
    res.writeHead(200, { "content-type": "application/json" }).end('{"healthy":true,"version":"9.9.9"}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.closeAllConnections());
  t.after(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/global/health`;
  const started = Date.now();
  const healthy = await probeUntil({
    ...parseProbeArgs(["--url", url, "--timeout-ms", "2000", "--wait-ms", "10000"], {}),
    waitMs: 10_000,
  });
  assert.deepEqual(healthy, { ok: true, detail: "healthy 9.9.9" });
  assert.equal(requests, 2);
  assert.ok(Date.now() - started < 1000, `the hung attempt was cut short (${Date.now() - started} ms)`);

  // The watched process exits (gone or an unreaped zombie alike): the wait ends at once.
  const closed = `http://127.0.0.1:${await freePort()}/health`;
  const child = spawnComponent({
    command: "/bin/sh",
    args: ["-c", "exit 0"],
    env: {},
    cwd: os.tmpdir(),
    logFile: path.join(tmp(), "child.log"),
  });
  const gone = await probeUntil({
    ...parseProbeArgs(["--url", closed, "--wait-ms", "60000", "--pid", String(child.pid)], {}),
    waitMs: 60_000,
  });
  assert.deepEqual(gone, { ok: false, reason: `process ${child.pid} exited`, processGone: true });

  const late = Date.now();
  const timedOut = await probeUntil({
    ...parseProbeArgs(["--url", closed, "--wait-ms", "600"], {}),
    waitMs: 600,
  });
  assert.equal(timedOut.ok, false);
  assert.match(timedOut.ok ? "" : timedOut.reason, /connection failed: ECONNREFUSED \(waited 600 ms\)/);
  assert.ok(Date.now() - late < 2000);

  assert.match(
    usageMessage(() => parseProbeArgs(["--url", closed, "--pid", "1"], {})),
    /--pid only makes sense with --wait-ms/,
  );
  assert.match(
    usageMessage(() => parseProbeArgs(["--url", closed, "--wait-ms", "soon"], {})),
    /--wait-ms must be an integer/,
  );
});

test("log tail: bounded ring buffer, redacted lines, rotation by copy-then-truncate", async () => {
  const dir = tmp();
  const file = path.join(dir, "engine.log");
  registerSecret("super-secret-value-42");
  const tail = new LogTail(file, { maxLines: 5, rotateBytes: 400 });
  writeFileSync(file, Array.from({ length: 8 }, (_, i) => `line ${i}\n`).join(""));
  await tail.poll();
  assert.deepEqual(tail.recent(), ["line 3", "line 4", "line 5", "line 6", "line 7"]);
  writeFileSync(file, "token super-secret-value-42 here\npartial", { flag: "a" });
  await tail.poll();
  assert.equal(tail.recent().at(-1), "token [REDACTED] here");
  writeFileSync(file, ` end\n${"x".repeat(500)}\n`, { flag: "a" });
  await tail.poll();
  assert.equal(tail.recent().at(-2), "partial end");
  assert.equal(tail.rotations, 1);
  assert.equal(statSync(file).size, 0);
  assert.match(readFileSync(`${file}.1`, "utf8"), /line 0/);
  writeFileSync(file, "after rotation\n", { flag: "a" });
  await tail.poll();
  assert.equal(tail.recent().at(-1), "after rotation");
  forgetSecrets();
});

/** A runtime staged by hand under `persist`: three small "sidecars" and their runtime.json. */
async function stageSmall(persist: string, bytes: Record<string, string>, version = "1.0.0") {
  const layout = persistLayout(persist);
  const files = { opencode: "opencode", "openwork-server": "openwork-server.mjs", node: "node" } as const;
  const sidecars: Record<string, { file: string; sha256: string; size: number; version: string }> = {};
  const sourceDir = path.join(persist, "sources");
  mkdirSync(sourceDir, { recursive: true });
  for (const [name, file] of Object.entries(files)) {
    writeFileSync(path.join(sourceDir, file), bytes[name] ?? `${name} bytes`);
    sidecars[name] = { file, ...(await sha256File(path.join(sourceDir, file))), version };
  }
  const json = runtimeJsonOf({ target: "linux-x64", runtimeVersion: "0.1.0", sidecars });
  const dir = layout.runtimeDir(json.runtimeId);
  mkdirSync(dir, { recursive: true });
  for (const file of Object.values(files))
    writeFileSync(path.join(dir, file), readFileSync(path.join(sourceDir, file)));
  writeFileSync(layout.runtimeJson(json.runtimeId), serializeRuntimeJson(json));
  return { layout, json, dir, sourceDir };
}

test("a staged runtime is read by the contract's rule: runtime.json must hash to its directory's id", async () => {
  const persist = tmp();
  const { layout, json, dir } = await stageSmall(persist, {});
  const runtime = readRuntime(layout, json.runtimeId);
  await verifyRuntime(runtime, ["opencode"]);
  writeFileSync(path.join(dir, "opencode"), "opencode bytez");
  await assert.rejects(
    verifyRuntime(runtime, ["opencode"]),
    /the opencode sidecar \S+: expected sha256 [0-9a-f]{64}, actual [0-9a-f]{64}/,
  );
  await assert.rejects(
    verifyRuntime(runtime, ["opencode-router"]),
    /none \(runtime.json has no such sidecar\)/,
  );
  // Editing runtime.json to match a tampered file changes what it hashes to: refused, whatever field moved.
  for (const edit of [
    (j: typeof json) => ({
      ...j,
      sidecars: { ...j.sidecars, opencode: { ...j.sidecars.opencode!, version: "9.9.9" } },
    }),
    (j: typeof json) => ({ ...j, runtimeVersion: "0.2.0" }),
    (j: typeof json) => ({
      ...j,
      sidecars: { ...j.sidecars, opencode: { ...j.sidecars.opencode!, file: "../x" } },
    }),
  ]) {
    writeFileSync(layout.runtimeJson(json.runtimeId), JSON.stringify(edit(json)));
    assert.throws(() => readRuntime(layout, json.runtimeId), /not a valid runtime description/);
  }
  assert.throws(() => readRuntime(layout, "0000000000000000"), /has no .*runtime\.json/);
  assert.throws(() => readRuntime(layout, "../x"), /not a runtime id/);
});

test("a manifest upgrade reads Manifest v1, is content-addressed, copies (never links) and never removes what runs", async () => {
  const persist = tmp();
  const current = await stageSmall(persist, {});
  const running = readRuntime(current.layout, current.json.runtimeId);
  // A manifest as `openwork sidecars manifest` prints it: a new opencode for this target; the rest carried over.
  const upgradeDir = path.join(persist, "upgrade");
  mkdirSync(upgradeDir);
  writeFileSync(path.join(upgradeDir, "opencode"), "new opencode bytes");
  const digest = await sha256File(path.join(upgradeDir, "opencode"));
  const entry = (version: string, file: string, sha: { sha256: string; size: number }) => ({
    version,
    file,
    ...sha,
    source: { type: "url", url: `https://example.invalid/${file}` },
  });
  const manifest = {
    manifestVersion: 1,
    runtimeVersion: "0.2.0",
    generatedAt: new Date().toISOString(),
    sidecars: {
      opencode: { targets: { "linux-x64": entry("1.1.0", "opencode", digest) } },
      "openwork-server": { targets: {} },
      node: { targets: {} },
    },
  };
  const manifestFile = path.join(upgradeDir, "manifest.json");
  writeFileSync(manifestFile, JSON.stringify(manifest));
  const plan = planManifest(manifestFile, upgradeDir, running);
  assert.match(plan.runtimeId, /^[0-9a-f]{16}$/);
  assert.equal(plan.content.sidecars.opencode?.version, "1.1.0");
  assert.equal(plan.content.sidecars.node?.sha256, current.json.sidecars.node?.sha256, "carried over");
  const first = await stagePlan(current.layout, plan);
  assert.equal(first.created, true);
  assert.equal(first.runtime.json.runtimeId, plan.runtimeId);
  assert.notEqual(
    statSync(path.join(first.runtime.dir, "opencode")).ino,
    statSync(path.join(upgradeDir, "opencode")).ino,
    "a copy, not a link to the caller's file",
  );
  await verifyRuntime(first.runtime, ["opencode", "openwork-server", "node"]);
  // The same manifest again is the same runtime: used as it is, nothing removed or rewritten.
  const again = await stagePlan(current.layout, planManifest(manifestFile, upgradeDir, running));
  assert.equal(again.created, false);
  assert.equal(again.runtime.json.runtimeId, plan.runtimeId);
  // A manifest that describes the running runtime itself maps onto it and leaves it whole.
  const same = planManifest(manifestFile, upgradeDir, running);
  await removeStaged(current.layout, same.runtimeId);
  const selfManifest = {
    ...manifest,
    runtimeVersion: "0.1.0",
    sidecars: {
      opencode: { targets: { "linux-x64": entry("1.0.0", "opencode", current.json.sidecars.opencode!) } },
      "openwork-server": { targets: {} },
      node: { targets: {} },
    },
  };
  writeFileSync(path.join(upgradeDir, "self.json"), JSON.stringify(selfManifest));
  const self = await stagePlan(
    current.layout,
    planManifest(path.join(upgradeDir, "self.json"), current.sourceDir, running),
  );
  assert.equal(self.created, false);
  assert.equal(self.runtime.json.runtimeId, current.json.runtimeId);
  await verifyRuntime(readRuntime(current.layout, current.json.runtimeId), [
    "opencode",
    "openwork-server",
    "node",
  ]);
  // A file that is not what the manifest pins is refused with both hashes, and nothing is left behind.
  writeFileSync(path.join(upgradeDir, "opencode"), "different bytes, same length!");
  await assert.rejects(
    stagePlan(current.layout, planManifest(manifestFile, upgradeDir, running)),
    /expected sha256 [0-9a-f]{64}, actual [0-9a-f]{64}/,
  );
  assert.deepEqual(
    readdirSync(current.layout.runtimesDir).filter((name) => name.startsWith(".staging-")),
    [],
    "the temporary directory is removed",
  );
  // Two entries naming the same file: each is copied to its own staged name, the caller's file is never written.
  writeFileSync(path.join(upgradeDir, "shared"), "shared bytes");
  const sharedDigest = await sha256File(path.join(upgradeDir, "shared"));
  writeFileSync(
    manifestFile,
    JSON.stringify({
      ...manifest,
      sidecars: {
        opencode: { targets: { "linux-x64": entry("1.1.0", "shared", sharedDigest) } },
        "openwork-server": { targets: {} },
        node: { targets: { "linux-x64": entry("24.21.0", "shared", digest) } },
      },
    }),
  );
  await assert.rejects(stagePlan(current.layout, planManifest(manifestFile, upgradeDir, running)), /node/);
  assert.equal(
    readFileSync(path.join(upgradeDir, "shared"), "utf8"),
    "shared bytes",
    "the caller's file is intact",
  );
  // What the server cannot verify is refused before anything is copied.
  writeFileSync(
    manifestFile,
    JSON.stringify({
      ...manifest,
      sidecars: {
        ...manifest.sidecars,
        opencode: { targets: { "linux-x64": { ...entry("1.1.0", "opencode", digest), sha256: "nothex" } } },
      },
    }),
  );
  assert.throws(
    () => planManifest(manifestFile, upgradeDir, running),
    /sha256: must be 64 lowercase hex digits/,
  );
});

test("an upgrade left running when the server stopped is reported interrupted on the next start", () => {
  const store = new OperationStore(persistLayout(tmp()));
  const op = store.create({
    request: { runtimeId: "000000000000000b" },
    from: { runtimeId: "000000000000000a", versions: {} },
    to: { runtimeId: "000000000000000b", versions: {} },
    components: ["opencode"],
  });
  op.step = "gate-engine";
  store.save(op);
  const done = store.create({
    request: { runtimeId: "000000000000000c" },
    from: op.from,
    to: op.to,
    components: [],
  });
  done.state = "succeeded";
  store.save(done);
  assert.deepEqual(store.markInterrupted(), [op.operationId]);
  const after = store.get(op.operationId);
  assert.equal(after?.state, "interrupted");
  assert.equal(after?.error?.step, "gate-engine");
  assert.equal(store.get(done.operationId)?.state, "succeeded");
  assert.equal(store.get("../../etc/passwd"), undefined);
});

test("terminate: SIGTERM, then SIGKILL on the whole process group after the deadline", async () => {
  const dir = tmp();
  const handle = spawnComponent({
    command: "/bin/sh",
    args: ["-c", 'trap "" TERM; sleep 60 & echo $! > child.pid; wait; wait'],
    env: process.env,
    cwd: dir,
    logFile: path.join(dir, "out.log"),
  });
  const grandchild = await waitFor(
    async () => {
      const text = readFileSync(path.join(dir, "child.pid"), "utf8").trim();
      return text ? Number(text) : undefined;
    },
    { timeoutMs: 5000, what: "the grandchild to start" },
  );
  const started = Date.now();
  assert.equal(await terminate(handle, 300), "killed");
  assert.ok(Date.now() - started >= 300);
  await waitFor(async () => (pidState(grandchild) === "alive" ? undefined : true), {
    timeoutMs: 3000,
    what: "the group to die",
  });
  assert.notEqual(pidState(handle.pid), "alive");
});

test("supervision: restarts with backoff inside a budget, then cools down and tries again", async () => {
  const dir = tmp();
  const port = await freePort();
  // A component that is healthy for 300 ms, then crashes.
  const script = `require("http").createServer((q, s) => s.end("ok")).listen(${port}, "127.0.0.1"); setTimeout(() => process.exit(3), 300);`;
  const policy = {
    ...defaultPolicy(3000),
    pidPollMs: 50,
    probeIntervalMs: 100,
    backoffBaseMs: 50,
    budget: 2,
    windowMs: 60_000,
    cooldownMs: 800,
  };
  const definition = {
    name: "opencode" as const,
    runtimeId: "unit",
    pinnedVersion: undefined,
    url: `http://127.0.0.1:${port}`,
    port,
    logFile: path.join(dir, "c.log"),
    launch: () => ({
      command: process.execPath,
      args: ["-e", script],
      env: process.env,
      cwd: dir,
      logFile: path.join(dir, "c.log"),
    }),
    probe: async () => {
      const ok = await fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.ok,
        () => false,
      );
      return { ok, detail: ok ? "ok" : "down" };
    },
  };
  const component = Supervised.spawn(definition, policy, createLogger({ level: "silent" }));
  await component.waitHealthy();
  component.watch();
  const summary = await waitFor(
    async () => {
      const s = component.summary() as { restarts: { total: number }; events: Array<{ type: string }> };
      return s.restarts.total >= 3 ? s : undefined;
    },
    { timeoutMs: 15_000, what: "three restarts, one after a cool-down" },
  );
  await component.stop("test over");
  const types = summary.events.map((e) => e.type);
  assert.ok(types.includes("cooldown"), types.join(","));
  assert.ok(types.indexOf("cooldown") < types.lastIndexOf("started"), "tried again after the cool-down");
  assert.equal((component.summary().lastExit as { code: number }).code, 3);
});

test("supervision: a process that stops answering (SIGSTOP) is declared hung and replaced", async () => {
  const dir = tmp();
  const port = await freePort();
  const script = `require("http").createServer((q, s) => s.end("ok")).listen(${port}, "127.0.0.1");`;
  const policy = {
    ...defaultPolicy(3000),
    pidPollMs: 50,
    probeIntervalMs: 100,
    probeTimeoutMs: 200,
    failureThreshold: 3,
    backoffBaseMs: 50,
    stopGraceMs: 300,
  };
  const definition = {
    name: "opencode" as const,
    runtimeId: "unit",
    pinnedVersion: undefined,
    url: `http://127.0.0.1:${port}`,
    port,
    logFile: path.join(dir, "c.log"),
    launch: () => ({
      command: process.execPath,
      args: ["-e", script],
      env: process.env,
      cwd: dir,
      logFile: path.join(dir, "c.log"),
    }),
    probe: async (timeoutMs: number) => {
      const ok = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(timeoutMs) }).then(
        (r) => r.ok,
        () => false,
      );
      return { ok, detail: ok ? "ok" : "no answer" };
    },
  };
  const component = Supervised.spawn(definition, policy, createLogger({ level: "silent" }));
  await component.waitHealthy();
  component.watch();
  const frozen = component.handle.pid;
  process.kill(frozen, "SIGSTOP");
  const summary = await waitFor(
    async () => {
      const s = component.summary() as { pid: number; status: string; events: Array<{ type: string }> };
      return s.pid !== frozen && s.status === "healthy" ? s : undefined;
    },
    { timeoutMs: 15_000, what: "the hung process to be replaced" },
  );
  await component.stop("test over");
  assert.ok(summary.events.some((e) => e.type === "hung"));
  assert.notEqual(
    pidState(frozen),
    "alive",
    "the frozen process was killed (SIGKILL reaches a stopped process)",
  );
});

test("a component of ours that exits at once is reported with its exit code, not as someone else's process", async () => {
  const dir = tmp();
  const definition = {
    name: "opencode" as const,
    runtimeId: "0123456789abcdef",
    pinnedVersion: undefined,
    url: "http://127.0.0.1:1",
    port: 1,
    logFile: path.join(dir, "c.log"),
    launch: () => ({
      command: "/bin/sh",
      args: ["-c", "echo about to fail; exit 7"],
      env: process.env,
      cwd: dir,
      logFile: path.join(dir, "c.log"),
    }),
    // the exit is seen through the pid before Node reports the status
    probe: async () => ({ ok: false, detail: "down" }),
  };
  for (let round = 0; round < 5; round++) {
    const component = Supervised.spawn(definition, defaultPolicy(5000), createLogger({ level: "silent" }));
    await assert.rejects(component.waitHealthy(), (error: unknown) => {
      assert.match(String(error), /exited before it was healthy \(exit code 7\)/);
      assert.doesNotMatch(String(error), /not our child/);
      return true;
    });
    component.tail.stop();
  }
});

test("a log of any size is printed as a stream, not read into memory whole", async () => {
  const dir = tmp();
  const file = path.join(dir, "big.log");
  const line = `${"z".repeat(1023)}\n`;
  const { openSync, writeSync, closeSync } = await import("node:fs");
  const fd = openSync(file, "w");
  for (let i = 0; i < 64; i++) writeSync(fd, line.repeat(2048)); // 128 MiB
  closeSync(fd);
  const script = `
    const { eachLine } = await import(${JSON.stringify(path.join(ROOT_DIST, "src", "sandbox", "host", "log-file.js"))});
    let lines = 0;
    await eachLine(${JSON.stringify(file)}, () => { lines++; });
    console.log(JSON.stringify({ lines, maxRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }));
  `;
  const { execa } = await import("execa");
  const result = await execa(process.execPath, ["--input-type=module", "-e", script]);
  const report = JSON.parse(String(result.stdout)) as { lines: number; maxRssMb: number };
  assert.equal(report.lines, 64 * 2048);
  assert.ok(report.maxRssMb < 120, `peak memory ${report.maxRssMb} MiB for a 128 MiB log`);
});

test("watchWrites calls back when the file is written to; a file that is not there cannot be watched", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "ow-watch-"));
  const file = path.join(dir, "engine.log");
  writeFileSync(file, "");
  assert.equal(
    watchWrites(path.join(dir, "missing.log"), () => undefined),
    undefined,
  );
  let calls = 0;
  let written: () => void = () => undefined;
  const seen = new Promise<void>((resolve) => {
    written = resolve;
  });
  const watcher = watchWrites(file, () => {
    calls++;
    written();
  });
  assert.ok(watcher, "an existing file is watched");
  appendFileSync(file, "opencode server listening on http://127.0.0.1:4096\n");
  // (The watch itself does not hold the event loop open: this timer does, until the write is seen.)
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve("timeout"), 5000);
  });
  const outcome = await Promise.race([seen.then(() => "seen"), timeout]);
  clearTimeout(timer);
  watcher?.close();
  assert.equal(outcome, "seen", "the write was seen");
  assert.ok(calls >= 1);
  assert.equal(writtenSince(file, Date.now() - 60_000), true, "written within the last minute");
  assert.equal(writtenSince(file, Date.now() + 60_000), false);
  assert.equal(writtenSince(path.join(dir, "missing.log"), 0), false);
  const created = path.join(dir, "new.log");
  writeFileSync(created, "");
  assert.equal(
    writtenSince(created, Date.now() - 60_000),
    false,
    "created just now, but nothing written to it",
  );
});
