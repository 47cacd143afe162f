import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { request } from "undici";
import { groupAlive } from "../../src/processes/groups.js";
import { parseProcessId } from "../../src/processes/identity.js";
import { describeExit, type LaunchSpec } from "../../src/sandbox/backend.js";
import { DockerBackend } from "../../src/sandbox/docker/docker-backend.js";
import { HostBackend } from "../../src/sandbox/host/host-backend.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { TEST_LABELS } from "../helpers/labels.js";
import { freePort, waitFor } from "../helpers/net.js";

const SECRET = "s3cret-value-that-must-not-leak";

function spec(overrides: Partial<LaunchSpec>): LaunchSpec {
  const root = mkdtempSync(path.join(os.tmpdir(), "openwork-backend-"));
  return {
    runId: `t${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`,
    image: "",
    workspace: root,
    persistDir: root,
    runtimesDir: root,
    mounts: [],
    command: ["sh", "-c", "echo started; echo to-stderr >&2; sleep 300 & sleep 300"],
    env: { OPENWORK_TOKEN: SECRET },
    ports: [],
    labels: { "openwork.managed": "1", "openwork.run": "x", ...TEST_LABELS },
    logFile: path.join(root, "runtime.log"),
    ...overrides,
  };
}

test("host backend: a detached process group, found by its labels, stopped as a whole", async () => {
  const backend = new HostBackend();
  const launchSpec = spec({});
  launchSpec.labels["openwork.run"] = launchSpec.runId;
  const handle = await backend.launch(launchSpec);
  const identity = parseProcessId(handle.id);
  assert.ok(identity);
  try {
    assert.equal((await backend.status(handle)).state, "running");
    const listed = await backend.list({ "openwork.run": launchSpec.runId });
    assert.deepEqual(
      listed.map((item) => item.id),
      [handle.id],
    );
    await waitFor(
      async () =>
        readFileSync(launchSpec.logFile as string, "utf8").includes("to-stderr") ? true : undefined,
      {
        timeoutMs: 5000,
        what: "output in the log file",
      },
    );
    const lines: string[] = [];
    await backend.logs(handle, { tail: 10 }, (_stream, line) => lines.push(line));
    assert.deepEqual(lines, ["started", "to-stderr"]);
  } finally {
    await backend.stop(handle, 2000);
  }
  assert.equal(groupAlive(identity.pid), false, "no process of the group survives");
  assert.notEqual((await backend.status(handle)).state, "running");
  await backend.stop(handle, 2000); // idempotent
  assert.deepEqual(await backend.list({ "openwork.run": launchSpec.runId }), []);
});

test("host backend: a pid that was reused by another process is not ours", async () => {
  const backend = new HostBackend();
  const fake = { kind: "none" as const, id: `${process.pid}@0` };
  assert.equal((await backend.status(fake)).state, "exited");
  await backend.stop(fake, 100); // must not signal this test process
});

test("docker backend: loopback ports, labels, Init, secrets only in Env, logs demultiplexed", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = await sharedSandboxImage(docker);
  const backend = new DockerBackend(docker);
  const port = await freePort();
  const launchSpec = spec({
    image: image.tag,
    command: ["sh", "-c", "echo out-line; echo err-line >&2; exec sleep 300"],
    ports: [{ container: 8787, host: port, hostIp: "127.0.0.1" }],
  });
  launchSpec.labels["openwork.run"] = launchSpec.runId;
  const handle = await backend.launch(launchSpec);
  t.after(() => backend.remove(handle));
  const info = await docker.getContainer(handle.id).inspect();
  assert.equal(info.HostConfig.Init, true);
  assert.deepEqual(info.HostConfig.PortBindings?.["8787/tcp"], [
    { HostIp: "127.0.0.1", HostPort: String(port) },
  ]);
  assert.equal(info.Config.Labels["openwork.run"], launchSpec.runId);
  assert.equal(info.Config.Labels["openwork.managed"], "1");
  assert.ok(!JSON.stringify(info.Config.Cmd).includes(SECRET), "no secret in Cmd");
  assert.ok(!JSON.stringify(info.Args).includes(SECRET), "no secret in Args");
  assert.ok(info.Config.Env.includes(`OPENWORK_TOKEN=${SECRET}`));
  const mounts = info.Mounts.map((mount) => [mount.Source, mount.Destination, mount.RW]);
  assert.deepEqual(
    mounts.sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
    [
      [launchSpec.persistDir, "/persist", true],
      [launchSpec.runtimesDir, "/runtimes", false],
      [launchSpec.workspace, "/workspace", true],
    ],
  );

  const seen: Array<[string, string]> = [];
  await waitFor(
    async () => {
      seen.length = 0;
      await backend.logs(handle, {}, (stream, line) => seen.push([stream, line]));
      return seen.length >= 2 ? true : undefined;
    },
    { timeoutMs: 10_000, what: "container output" },
  );
  // Docker keeps the two streams apart; their relative order is not preserved, each line's stream is.
  assert.deepEqual(
    [...seen].sort((a, b) => a[0].localeCompare(b[0])),
    [
      ["stderr", "err-line"],
      ["stdout", "out-line"],
    ],
  );
  assert.deepEqual(
    (await backend.list({ "openwork.run": launchSpec.runId })).map((item) => item.id),
    [handle.id],
  );
  // Nothing listens in the container, so the published port refuses: but only on loopback.
  await assert.rejects(request(`http://127.0.0.1:${port}/`, { headersTimeout: 1000 }));
  const started = Date.now();
  await backend.stop(handle, 1000);
  assert.ok(Date.now() - started < 8000, "stop uses the grace period, then kills");
  assert.equal((await backend.status(handle)).state, "exited");
  await backend.stop(handle, 1000); // idempotent
  await backend.remove(handle);
  await backend.remove(handle); // idempotent
  assert.equal((await backend.status(handle)).state, "missing");
});

test("docker backend: a missing image is a clear error, not a hang", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const backend = new DockerBackend(docker);
  await assert.rejects(
    backend.launch(spec({ image: "openwork-no-such-image:never" })),
    /openwork-no-such-image:never is not on the Docker engine/,
  );
});

test("docker backend: a sandbox killed for memory is reported OOM-killed, and its network goes with it", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = (await sharedSandboxImage(docker)).tag;
  const backend = new DockerBackend(docker);
  const launchSpec = spec({
    image,
    // a tail of a line that never ends holds all of it: far past the limit
    command: ["sh", "-c", "head -c 700m /dev/zero | tail > /dev/null"],
    limits: { cpus: 1, memoryBytes: 256 * 1024 ** 2, pids: 64 },
  });
  launchSpec.labels["openwork.run"] = launchSpec.runId;
  const handle = await backend.launch(launchSpec);
  try {
    assert.equal(await handle.exited, 137);
    const status = await backend.status(handle);
    assert.equal(status.oomKilled, true);
    assert.match(
      describeExit(status),
      /^OOM-killed: it went over its memory limit \(code 137; raise it with --memory\)/,
    );
    const info = await docker.getContainer(handle.id).inspect();
    assert.equal(info.HostConfig.PidsLimit, 64);
    assert.equal(info.HostConfig.NetworkMode, `openwork-${launchSpec.runId}`);
  } finally {
    await backend.remove(handle);
  }
  const networks = await docker.listNetworks({ filters: { name: [`openwork-${launchSpec.runId}`] } });
  assert.deepEqual(networks, [], "the run's network is removed with its container");
});
