import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { request } from "undici";
import { packageRoot } from "../../src/config/package-root.js";
import { openworkPaths } from "../../src/config/paths.js";
import { silentLogger } from "../../src/logging/logger.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { startRun } from "../../src/runs/start.js";
import { emulatorEnv } from "../helpers/apple-emulator.js";
import { runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/**
 * The same end-to-end flow on every substrate, with the real opencode engine
 * and the router double: start, all three healthy, the proxy answers, stop,
 * nothing left.
 */
const ROUTER_DOUBLE = path.join(packageRoot(), "dist", "test", "fixtures", "router-double.js");
const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-substrates-"));

interface StartDoc {
  runId: string;
  url: string;
  state: string;
  sandbox: string;
  versions: Record<string, string | null>;
  tokens: { client: string };
}

async function flow(sandbox: "none" | "docker" | "container", env: Record<string, string>) {
  const workspace =
    sandbox === "none"
      ? mkdtempSync(path.join(os.tmpdir(), "openwork-ws-none-"))
      : sandboxWorkspace(`openwork-ws-${sandbox}-`);
  const started = await runCli(
    [
      "--json",
      "start",
      "--detach",
      "--sandbox",
      sandbox,
      "--workspace",
      workspace,
      "--router",
      "--router-bin",
      ROUTER_DOUBLE,
      "--allow-external",
    ],
    { home, env, timeoutMs: 300_000 },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as StartDoc;
  assert.equal(doc.state, "running");
  assert.equal(doc.sandbox, sandbox);
  try {
    const auth = { authorization: `Bearer ${doc.tokens.client}` };
    const summary = await request(`${doc.url}/system/runtime/summary`, { headers: auth });
    const body = (await summary.body.json()) as {
      ok: boolean;
      data: { components: Record<string, { status: string }> };
    };
    assert.equal(summary.statusCode, 200);
    for (const name of ["opencode", "opencode-router"]) {
      assert.equal(
        body.data.components[name]?.status,
        "healthy",
        `${name}: ${JSON.stringify(body.data.components[name])}`,
      );
    }
    const proxied = await request(`${doc.url}/opencode/global/health`, { headers: auth });
    assert.deepEqual(await proxied.body.json(), { healthy: true, version: "1.18.34" });
    const status = await runCli(["--json", "status", doc.runId], { home, env });
    assert.equal(status.exitCode, 0, status.stdout);
    return doc;
  } finally {
    const stopped = await runCli(["stop", doc.runId], { home, env });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    const after = await runCli(["--json", "status", doc.runId], { home, env });
    assert.equal(after.exitCode, 3);
    assert.deepEqual((JSON.parse(after.stdout) as { orphans: unknown[] }).orphans, []);
  }
}

test("host processes: start, all healthy, proxy, stop, nothing left", async () => {
  const doc = await flow("none", { OPENWORK_LABELS: "openwork.test=1" });
  const { stdout } = await execa("sh", [
    "-c",
    'grep -l -a "$1" /proc/[0-9]*/environ 2>/dev/null || true',
    "sh",
    doc.runId,
  ]);
  assert.equal(String(stdout).trim(), "", "no process of the run remains");
});

test("docker: start, all healthy, proxy, stop, nothing left; inspect shows loopback ports, labels, Init, no secret in Cmd", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  const env = { OPENWORK_LABELS: "openwork.test=1" };
  const workspace = sandboxWorkspace("openwork-ws-docker-inspect-");
  const started = await runCli(
    ["--json", "start", "--detach", "--sandbox", "docker", "--workspace", workspace],
    { home, env, timeoutMs: 300_000 },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as StartDoc & {
    tokens: { client: string; host: string };
    timings: Record<string, number>;
  };
  // The image check and the container's creation are timed (they ran while the runtime was staged).
  for (const phase of ["image", "create", "stage", "launch", "serverHealthy", "ready", "recorded"])
    assert.ok(Number.isFinite(doc.timings[phase]), `timings.${phase}: ${JSON.stringify(doc.timings)}`);
  try {
    const [container] = await docker.listContainers({
      all: true,
      filters: { label: [`openwork.run=${doc.runId}`] },
    });
    assert.ok(container, "the run's container carries its label");
    const info = await docker.getContainer(container.Id).inspect();
    assert.equal(info.HostConfig.Init, true);
    const bindings = Object.values(info.HostConfig.PortBindings ?? {}).flat() as Array<{ HostIp: string }>;
    assert.ok(
      bindings.length > 0 && bindings.every((binding) => binding.HostIp === "127.0.0.1"),
      JSON.stringify(bindings),
    );
    for (const label of ["openwork.run", "openwork.workspace", "openwork.runtime"])
      assert.ok(info.Config.Labels[label], label);
    const cmd = JSON.stringify([info.Config.Cmd, info.Config.Entrypoint, info.Args, info.Path]);
    for (const secret of [doc.tokens.client, doc.tokens.host])
      assert.ok(!cmd.includes(secret), "no secret in the command");
  } finally {
    assert.equal((await runCli(["stop", doc.runId], { home, env })).exitCode, 0);
  }
  await flow("docker", env);
  const left = await docker.listContainers({
    all: true,
    // This home's containers only: other test files run Docker runtimes at the same time.
    filters: {
      label: [
        "openwork.managed=1",
        `openwork.home=${new RunRegistry(openworkPaths({ OPENWORK_HOME: home })).homeId()}`,
      ],
    },
  });
  assert.deepEqual(
    left.map((item) => item.Names),
    [],
  );
  const volumes = (await docker.listVolumes()).Volumes ?? [];
  assert.deepEqual(
    volumes.filter((volume) => volume.Labels?.["openwork.test"]).map((volume) => volume.Name),
    [],
  );
});

test("docker: staging that fails while the container is being created leaves no container, network or run behind", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const { tag: image } = await sharedSandboxImage(docker);
  const registry = new RunRegistry(openworkPaths({ OPENWORK_HOME: home }));
  const workspace = sandboxWorkspace("openwork-ws-docker-rollback-");
  await assert.rejects(
    startRun({
      workspace,
      sandbox: "docker",
      image,
      mounts: [],
      replace: false,
      runtime: {},
      registry,
      log: silentLogger(),
      extraLabels: { "openwork.test": "1" },
      faults: { failStaging: true },
    }),
    /staging failed \(fault injected/,
  );
  const records = (await registry.list()).records.filter((record) => record.workspace === workspace);
  assert.equal(records.length, 1);
  assert.equal(records[0]?.state, "failed");
  const runId = records[0]?.runId as string;
  const containers = await docker.listContainers({
    all: true,
    filters: { label: [`openwork.run=${runId}`] },
  });
  assert.deepEqual(containers, [], "the container created beside the staging was removed");
  const networks = await docker.listNetworks({ filters: { label: [`openwork.run=${runId}`] } });
  assert.deepEqual(
    networks.map((network) => network.Name),
    [],
  );
});

test("Apple container (emulated on Docker): start, all healthy, proxy, stop, nothing left", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  await flow("container", { ...emulatorEnv(), OPENWORK_TEST_RUN: "1", OPENWORK_LABELS: "openwork.test=1" });
  const left = await docker.listContainers({
    all: true,
    filters: { label: ["openwork.emulated=apple-container", "openwork.test=1"] },
  });
  assert.deepEqual(
    left.map((item) => item.Names),
    [],
  );
});

test("Apple container service down: start says how to fix it; --start-service starts it and the runtime comes up", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "openwork-apple-state-"));
  const env = {
    ...emulatorEnv(),
    OPENWORK_TEST_RUN: "1",
    OPENWORK_LABELS: "openwork.test=1",
    OPENWORK_EMULATED_APPLE_SERVICE: "down",
    OPENWORK_EMULATED_APPLE_STATE_DIR: stateDir,
  };
  const workspace = sandboxWorkspace("openwork-ws-apple-down-");
  const refused = await runCli(["start", "--detach", "--sandbox", "container", "--workspace", workspace], {
    home,
    env,
  });
  assert.equal(refused.exitCode, 1, refused.stderr);
  assert.match(refused.stderr, /container service is not running.*--start-service/);
  const started = await runCli(
    ["--json", "start", "--detach", "--sandbox", "container", "--start-service", "--workspace", workspace],
    {
      home,
      env,
      timeoutMs: 300_000,
    },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as StartDoc;
  assert.equal(doc.state, "running");
  assert.equal((await runCli(["stop", doc.runId], { home, env })).exitCode, 0);
});
