import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, type TestContext, test } from "node:test";
import Docker from "dockerode";
import { execa } from "execa";
import { pidState } from "../../src/processes/inspect.js";
import { runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { closedLoop } from "../helpers/load.js";
import { upgradeManifests } from "../helpers/manifests.js";
import { sshdOnNode1OrSkip } from "../helpers/sshd.js";
import {
  NODE1,
  NODE2,
  pullOnNodes,
  SWARM_REGISTRY,
  swarmDown,
  swarmStartArgs,
  swarmUpOrSkip,
} from "../helpers/swarm.js";

/**
 * A runtime on a second Docker engine that shares none of our paths as far as openwork knows
 * (`--ship`): its own dockerd in its own network namespace, reached on its node address. The
 * image, the runtime and the workspace go there through the Engine API only.
 */
const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-remote-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };
const remote = new Docker({ socketPath: NODE1.engine.slice("unix://".length) });
let ready: Promise<boolean> | undefined;
let up = false;

/** The sandbox image here and the second engine up, once for the file. */
function engines(t: TestContext): Promise<boolean> {
  ready ??= (async () => {
    const docker = await dockerOrSkip(t);
    if (!docker) return false;
    await sharedSandboxImage(docker);
    up = await swarmUpOrSkip(t, { registry: true });
    return up;
  })();
  return ready;
}

after(async () => {
  if (up) await runCli(["stop", "--all", "--orphans"], { home, env, timeoutMs: 120_000 });
  await swarmDown();
});

interface StartDoc {
  runId: string;
  url: string;
  engine: string;
  shippedBytes: number;
  versions: { opencode: string };
  tokens: { client: string };
}

function project(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-remote-ws-"));
  writeFileSync(path.join(dir, "README.md"), "# a project\n");
  writeFileSync(path.join(dir, ".gitignore"), "node_modules/\n*.log\n");
  mkdirSync(path.join(dir, "node_modules", "left-out"), { recursive: true });
  writeFileSync(path.join(dir, "node_modules", "left-out", "index.js"), "x");
  writeFileSync(path.join(dir, "debug.log"), "noise");
  mkdirSync(path.join(dir, "src"));
  writeFileSync(path.join(dir, "src", "main.ts"), "export {};\n");
  return dir;
}

async function sh(containerId: string, command: string): Promise<string> {
  const exec = await remote.getContainer(containerId).exec({
    Cmd: ["sh", "-c", command],
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  // Strip the 8-byte frame headers.
  const raw = Buffer.concat(chunks);
  let out = "";
  for (let at = 0; at + 8 <= raw.length; ) {
    const size = raw.readUInt32BE(at + 4);
    out += raw.subarray(at + 8, at + 8 + size).toString("utf8");
    at += 8 + size;
  }
  return out;
}

async function runContainer(runId: string): Promise<Docker.ContainerInspectInfo> {
  const [found] = await remote.listContainers({ filters: { label: [`openwork.run=${runId}`] } });
  assert.ok(found, `run ${runId} has a container on the second engine`);
  return remote.getContainer(found.Id).inspect();
}

test("wrong remote requests are refused up front with one line and exit 2", async (t) => {
  if (!(await engines(t))) return;
  const cases: Array<[string[], RegExp]> = [
    [["--docker-host", "tcp://10.77.0.11:2375", "--workspace", "engine:/srv"], /--publish-address/],
    [["--docker-host", "gopher://x"], /unix:\/\/, npipe:\/\/, tcp:\/\/, ssh:\/\//],
    [["--docker-host", NODE1.engine, "--ship", "--workspace", os.tmpdir()], /--workspace-upload DIR/],
    [["--workspace-upload", os.tmpdir()], /does not share this machine's files/],
    [["--docker-host", NODE1.engine, "--ship", "--workspace", "engine:relative"], /absolute path/],
    [["--sandbox", "none", "--docker-host", NODE1.engine], /Docker sandbox/],
    [["--sandbox", "swarm", "--docker-host", NODE1.engine, "--workspace", "engine:/srv"], /--registry/],
    [
      [
        "--sandbox",
        "swarm",
        "--docker-host",
        NODE1.engine,
        "--registry",
        SWARM_REGISTRY,
        "--workspace",
        "engine:/srv",
      ],
      /every interface.*--allow-remote/s,
    ],
    [
      [
        "--sandbox",
        "swarm",
        "--docker-host",
        NODE1.engine,
        "--registry",
        SWARM_REGISTRY,
        "--allow-remote",
        "--workspace-upload",
        os.tmpdir(),
      ],
      /engine:\/path/,
    ],
    [["--sandbox", "docker", "--registry", SWARM_REGISTRY], /--sandbox swarm/],
    [
      [
        "--sandbox",
        "swarm",
        "--docker-host",
        NODE1.engine,
        "--registry",
        "http://x/y",
        "--allow-remote",
        "--workspace",
        "engine:/srv",
      ],
      /HOST\[:PORT\]/,
    ],
    [
      [
        "--docker-host",
        NODE1.engine,
        "--ship",
        "--workspace-upload",
        os.tmpdir(),
        "--mount",
        `${os.tmpdir()}:x`,
      ],
      /--mount/,
    ],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(["start", "--detach", ...args], { home, env });
    assert.equal(result.exitCode, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(" "));
    assert.equal(
      result.stderr
        .trim()
        .split("\n")
        .filter((line) => line.startsWith("openwork:")).length,
      1,
    );
  }
  assert.deepEqual(await remote.listContainers({ all: true }), [], "nothing was started on the engine");
});

test("a shipped runtime on a second engine: no host path, checked, stopped, restarted with 0 sidecar bytes, upgraded under load", async (t) => {
  if (!(await engines(t))) return;
  const { oldFile, newFile } = await upgradeManifests(home, env);
  const dir = project();
  const startArgs = [
    "--json",
    "start",
    "--detach",
    "--docker-host",
    NODE1.engine,
    "--ship",
    "--publish-address",
    NODE1.address,
    "--workspace-upload",
    dir,
    "--manifest",
    oldFile,
  ];
  // The engine starts without the sandbox image: it is streamed there from the main engine.
  assert.equal((await remote.listImages()).length, 0);
  const first = await runCli(startArgs, { home, env, timeoutMs: 300_000 });
  assert.equal(first.exitCode, 0, first.stderr);
  const doc = JSON.parse(first.stdout) as StartDoc;
  assert.equal(doc.engine, NODE1.engine);
  assert.equal(new URL(doc.url).hostname, NODE1.address, "the URL is formed from the published address");
  assert.ok(doc.shippedBytes > 100e6, `the runtime was shipped (${doc.shippedBytes} bytes)`);
  assert.match(first.stderr, /streamed to the engine/);
  assert.equal(doc.versions.opencode, "1.18.33");

  const info = await runContainer(doc.runId);
  assert.deepEqual(
    info.Mounts.map((mount) => mount.Type),
    ["volume", "volume", "volume"],
    `no bind mount of any host path: ${JSON.stringify(info.Mounts)}`,
  );
  assert.equal(info.HostConfig.Binds, null);
  assert.deepEqual(
    Object.values((info.HostConfig.PortBindings ?? {}) as Record<string, Array<{ HostIp: string }>>)
      .flat()
      .map((binding) => binding.HostIp),
    [NODE1.address],
    "published on the named address only",
  );
  const auth = { authorization: `Bearer ${doc.tokens.client}` };
  const health = await fetch(`${doc.url}/opencode/global/health`, { headers: auth });
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { healthy: boolean }).healthy, true);

  // The upload left out what .gitignore names; the runtime's user owns the workspace and its state.
  const listing = await sh(info.Id, "cd /workspace && find . -type f | sort && stat -c '%u %a' /persist");
  assert.deepEqual(listing.trim().split("\n"), ["./.gitignore", "./README.md", "./src/main.ts", "1000 700"]);
  await sh(info.Id, "echo made-by-the-agent > /workspace/NOTES.md && ln -s /etc /workspace/escape");

  // openwork cp, both ways, through the Engine API; what comes out of the sandbox is kept inside the destination.
  const out = mkdtempSync(path.join(os.tmpdir(), "openwork-cp-out-"));
  const one = await runCli(["--json", "cp", `${doc.runId}:/workspace/NOTES.md`, path.join(out, "notes.md")], {
    home,
    env,
  });
  assert.equal(one.exitCode, 0, one.stderr);
  assert.equal(readFileSync(path.join(out, "notes.md"), "utf8"), "made-by-the-agent\n");
  const tree = await runCli(["--json", "cp", `${doc.runId.slice(0, 20)}:/workspace`, out], { home, env });
  assert.equal(tree.exitCode, 0, tree.stderr);
  const treeReport = JSON.parse(tree.stdout) as { files: number; skippedLinks: number };
  assert.equal(readFileSync(path.join(out, "workspace", "src", "main.ts"), "utf8"), "export {};\n");
  assert.equal(treeReport.skippedLinks, 1, "the sandbox's link to /etc is not recreated here");
  assert.equal(existsSync(path.join(out, "workspace", "escape")), false);
  const local = path.join(out, "added.ts");
  writeFileSync(local, "export const added = 1;\n");
  const into = await runCli(["cp", local, `${doc.runId}:/workspace/src`], { home, env });
  assert.equal(into.exitCode, 0, into.stderr);
  assert.equal(
    (await sh(info.Id, "cat /workspace/src/added.ts && stat -c %u /workspace/src/added.ts")).trim(),
    "export const added = 1;\n1000",
  );
  const outside = await runCli(["cp", `${doc.runId}:/persist/state`, out], { home, env });
  assert.equal(outside.exitCode, 2, "only the workspace is copied");

  const status = await runCli(["--json", "status", doc.runId], { home, env });
  const statusDoc = JSON.parse(status.stdout) as { healthy: boolean; engine: string; state: string };
  assert.equal(statusDoc.state, "running");
  assert.equal(statusDoc.healthy, true);
  assert.equal(statusDoc.engine, NODE1.engine);
  const human = await runCli(["status", doc.runId], { home, env });
  assert.match(human.stdout, new RegExp(`engine: +${NODE1.engine.replace(/[/.]/g, "\\$&")}`));
  const engineLog = await runCli(["logs", doc.runId, "--component", "engine"], { home, env });
  assert.equal(engineLog.exitCode, 0, engineLog.stderr);
  assert.match(engineLog.stdout, /opencode server listening/);
  const runtimeLog = await runCli(["logs", doc.runId, "--tail", "50"], { home, env });
  assert.match(runtimeLog.stdout, /openwork-server listening/);
  const check = await runCli(["check", doc.runId], { home, env, timeoutMs: 120_000 });
  assert.equal(check.exitCode, 0, `${check.stdout}\n${check.stderr}`);

  const stopped = await runCli(["stop", doc.runId], { home, env });
  assert.equal(stopped.exitCode, 0, stopped.stderr);
  assert.deepEqual(
    await remote.listContainers({ all: true, filters: { label: ["openwork.managed=1"] } }),
    [],
  );
  const volumes = (await remote.listVolumes()).Volumes.map((volume) => volume.Name);
  assert.equal(volumes.length, 3, `the workspace's state, its files and the runtimes stay: ${volumes}`);

  // Again: the engine has the runtime and the workspace; nothing is sent but the entrypoint's settings.
  const second = await runCli(startArgs, { home, env, timeoutMs: 300_000 });
  assert.equal(second.exitCode, 0, second.stderr);
  const again = JSON.parse(second.stdout) as StartDoc;
  assert.equal(again.shippedBytes, 0, "the second start on the same engine ships 0 sidecar bytes");
  const info2 = await runContainer(again.runId);
  assert.equal((await sh(info2.Id, "cat /workspace/NOTES.md")).trim(), "made-by-the-agent");

  // A rolling upgrade: the new runtime is shipped the same way; no request fails meanwhile.
  const loop = closedLoop(again.url, again.tokens.client, ["/system/health", "/opencode/global/health"], {
    workers: 2,
    intervalMs: 20,
  });
  const upgraded = await runCli(["--json", "runtime", "upgrade", again.runId, "--manifest", newFile], {
    home,
    env,
    timeoutMs: 300_000,
  });
  const load = await loop.stop();
  assert.equal(upgraded.exitCode, 0, `${upgraded.stdout}\n${upgraded.stderr}`);
  assert.equal((JSON.parse(upgraded.stdout) as { state: string }).state, "succeeded");
  assert.match(upgraded.stderr, /new runtime shipped to the engine/);
  assert.equal(load.failed, 0, load.failures.slice(0, 5).join("\n"));
  assert.ok(load.total > 20, `the loop ran throughout (${load.total} requests)`);
  const after = JSON.parse((await runCli(["--json", "status", again.runId], { home, env })).stdout) as {
    versions: { opencode: string };
  };
  assert.equal(after.versions.opencode, "1.18.34");

  assert.equal((await runCli(["stop", again.runId], { home, env })).exitCode, 0);
  const orphans = await runCli(["--json", "stop", "--orphans"], { home, env });
  assert.equal(orphans.exitCode, 0, orphans.stderr);
  assert.deepEqual(
    await remote.listContainers({ all: true, filters: { label: ["openwork.managed=1"] } }),
    [],
  );
  for (const volume of (await remote.listVolumes()).Volumes) {
    assert.equal(volume.Labels?.["openwork.test"], "1", `${volume.Name} carries the test label`);
    await remote.getVolume(volume.Name).remove();
  }
});

function nodeEngine(hostname: string): Docker {
  const node = hostname === NODE1.hostname ? NODE1 : NODE2;
  return new Docker({ socketPath: node.engine.slice("unix://".length) });
}

async function taskContainer(runId: string, hostname: string): Promise<string | undefined> {
  const [found] = await nodeEngine(hostname).listContainers({
    filters: { label: [`openwork.run=${runId}`] },
  });
  return found?.Id;
}

test("Swarm: two runtimes on two nodes, a killed task restarted by Swarm, a rolling update, stop removes only ours", async (t) => {
  if (!(await engines(t))) return;
  const { oldFile, newFile } = await upgradeManifests(home, env);
  // The swarm's agents here never pull (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 in swarm-2node.sh), so the
  // images are baked and pushed first, then pulled by digest on each node as an agent would.
  const pinnedImages: string[] = [];
  for (const manifest of [oldFile, newFile]) {
    const baked = await runCli(
      [
        "--json",
        "image",
        "bake",
        "--manifest",
        manifest,
        "--registry",
        SWARM_REGISTRY,
        "--docker-host",
        NODE1.engine,
      ],
      { home, env, timeoutMs: 600_000 },
    );
    assert.equal(baked.exitCode, 0, baked.stderr);
    const doc = JSON.parse(baked.stdout) as { tag: string; runtimeId: string; pushed: { pinned: string } };
    assert.match(
      doc.pushed.pinned,
      new RegExp(`^${SWARM_REGISTRY.replace(/\./g, "\\.")}/openwork-runtime@sha256:[0-9a-f]{64}$`),
    );
    await pullOnNodes(doc.pushed.pinned);
    pinnedImages.push(doc.pushed.pinned);
  }
  // Something of someone else's on the cluster, which nothing of ours may touch.
  const manager = remote;
  const canary = await manager.createService({
    Name: "not-openwork",
    TaskTemplate: { ContainerSpec: { Image: "openwork-sandbox:latest", Command: ["sleep", "600"] } },
    Mode: { Replicated: { Replicas: 0 } },
  } as unknown as Docker.CreateServiceOptions);

  const runs: Array<{ doc: StartDoc; node: typeof NODE1 }> = [];
  for (const [node, manifest] of [
    [NODE1, newFile],
    [NODE2, oldFile],
  ] as const) {
    const dir = mkdtempSync(path.join(os.tmpdir(), `owsw-ws-${node.hostname}-`));
    const { chownSync } = await import("node:fs");
    chownSync(dir, 1000, 1000);
    const started = await runCli(
      [
        "--json",
        "start",
        "--detach",
        ...swarmStartArgs(dir),
        "--constraint",
        `node.hostname==${node.hostname}`,
        "--manifest",
        manifest,
      ],
      { home, env, timeoutMs: 600_000 },
    );
    assert.equal(started.exitCode, 0, started.stderr);
    runs.push({ doc: JSON.parse(started.stdout) as StartDoc, node });
    process.stderr.write(
      `swarm start on ${node.hostname}: ${JSON.stringify(JSON.parse(started.stdout).timings)}\n`,
    );
  }
  for (const { doc, node } of runs) {
    assert.equal(new URL(doc.url).hostname, node.address, `published on ${node.hostname}'s address`);
    const health = await fetch(`${doc.url}/opencode/global/health`, {
      headers: { authorization: `Bearer ${doc.tokens.client}` },
    });
    assert.equal(health.status, 200, `${node.hostname} answers from the host`);
    const status = JSON.parse((await runCli(["--json", "status", doc.runId], { home, env })).stdout) as {
      healthy: boolean;
      local: { where?: string };
      sandbox: string;
    };
    assert.equal(status.sandbox, "swarm");
    assert.equal(status.healthy, true);
    assert.equal(status.local.where, node.hostname, "status names the node");
  }
  const [first, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
  assert.equal(second.doc.versions.opencode, "1.18.33");

  // docker kill of a task's container: Swarm starts another task; the run comes back healthy.
  const killed = await taskContainer(second.doc.runId, NODE2.hostname);
  assert.ok(killed);
  await nodeEngine(NODE2.hostname).getContainer(killed).kill();
  let back = false;
  for (let i = 0; i < 120 && !back; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = await taskContainer(second.doc.runId, NODE2.hostname);
    const status = JSON.parse(
      (await runCli(["--json", "status", second.doc.runId], { home, env })).stdout,
    ) as {
      healthy: boolean;
      state: string;
    };
    assert.equal(status.state, "running", "the run stays running while Swarm restarts its task");
    back = status.healthy && now !== undefined && now !== killed;
  }
  assert.ok(back, "Swarm restarted the killed task and the runtime answers again");

  // A rolling Swarm update of the second runtime, under a steady request loop (failures are counted).
  const loop = closedLoop(second.doc.url, second.doc.tokens.client, ["/system/health"], {
    workers: 2,
    intervalMs: 20,
  });
  const upgraded = await runCli(["--json", "runtime", "upgrade", second.doc.runId, "--manifest", newFile], {
    home,
    env,
    timeoutMs: 600_000,
  });
  const load = await loop.stop();
  assert.equal(upgraded.exitCode, 0, `${upgraded.stdout}\n${upgraded.stderr}`);
  const result = JSON.parse(upgraded.stdout) as { state: string; durationMs: number; node: string };
  assert.equal(result.state, "succeeded");
  const after = JSON.parse((await runCli(["--json", "status", second.doc.runId], { home, env })).stdout) as {
    versions: { opencode: string };
    healthy: boolean;
  };
  assert.equal(after.versions.opencode, "1.18.34");
  assert.equal(after.healthy, true);
  process.stderr.write(
    `swarm update: ${result.durationMs} ms, ${load.failed} of ${load.total} requests failed during it (stop-first)\n`,
  );

  // stop: the services and their secrets go, and nothing else.
  for (const run of [first, second]) {
    const stopped = await runCli(["stop", run.doc.runId], { home, env, timeoutMs: 120_000 });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
  }
  const ours = await manager.listServices({ filters: { label: ["openwork.managed=1"] } });
  assert.deepEqual(ours, []);
  assert.deepEqual(await manager.listSecrets({ filters: { label: ["openwork.managed=1"] } }), []);
  for (const node of [NODE1, NODE2]) {
    const running = await nodeEngine(node.hostname).listContainers({
      filters: { label: ["openwork.managed=1"] },
    });
    assert.deepEqual(running, [], `nothing of ours runs on ${node.hostname}`);
  }
  assert.ok(await manager.getService(canary.id).inspect(), "another service is left alone");
  await manager.getService(canary.id).remove();

  // A plain (shipped) Docker start on an engine that lacks the image named by a registry reference: the
  // engine pulls it from that registry itself (the image baked above is a sandbox image with a runtime in it).
  const image = pinnedImages[1] as string;
  const node2 = nodeEngine(NODE2.hostname);
  for (const found of await node2.listContainers({ all: true }))
    await node2.getContainer(found.Id).remove({ force: true });
  await node2.getImage(image).remove({ force: true });
  const pulled = await runCli(
    [
      "--json",
      "start",
      "--detach",
      "--docker-host",
      NODE2.engine,
      "--ship",
      "--publish-address",
      NODE2.address,
      "--workspace-upload",
      project(),
      "--image",
      image,
    ],
    { home, env, timeoutMs: 300_000 },
  );
  assert.equal(pulled.exitCode, 0, pulled.stderr);
  assert.match(pulled.stderr, /pulls the sandbox image from its registry/);
  const pulledDoc = JSON.parse(pulled.stdout) as StartDoc;
  assert.equal(
    (
      await fetch(`${pulledDoc.url}/opencode/global/health`, {
        headers: { authorization: `Bearer ${pulledDoc.tokens.client}` },
      })
    ).status,
    200,
  );
  assert.equal((await runCli(["stop", pulledDoc.runId], { home, env })).exitCode, 0);
});

test("a workspace cloned from a git URL on the second engine, at the first start only", async (t) => {
  if (!(await engines(t))) return;
  const base = mkdtempSync(path.join(os.tmpdir(), "openwork-git-"));
  const work = path.join(base, "work");
  const git = (cwd: string, ...argv: string[]) =>
    execa("git", ["-c", "user.name=t", "-c", "user.email=t@example.invalid", ...argv], { cwd });
  await execa("git", ["init", "--quiet", "--bare", "-b", "main", path.join(base, "repo.git")]);
  await execa("git", ["init", "--quiet", "-b", "main", work]);
  writeFileSync(path.join(work, "hello.txt"), "from git\n");
  await git(work, "add", ".");
  await git(work, "commit", "--quiet", "-m", "first");
  await git(work, "push", "--quiet", path.join(base, "repo.git"), "main");
  // A real git server on the host's leg of the nodes' network.
  const port = 9418 + Math.floor(Math.random() * 500);
  const daemon = execa(
    "git",
    [
      "daemon",
      "--export-all",
      "--reuseaddr",
      `--base-path=${base}`,
      `--listen=10.77.0.1`,
      `--port=${port}`,
      base,
    ],
    { reject: false },
  );
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const args = [
      "--json",
      "start",
      "--detach",
      "--docker-host",
      NODE1.engine,
      "--ship",
      "--publish-address",
      NODE1.address,
      "--workspace-git",
      `git://10.77.0.1:${port}/repo.git#main`,
    ];
    const started = await runCli(args, { home, env, timeoutMs: 300_000 });
    assert.equal(started.exitCode, 0, started.stderr);
    const doc = JSON.parse(started.stdout) as StartDoc & { workspace: string };
    assert.equal(doc.workspace, `git://10.77.0.1:${port}/repo.git#main`);
    const info = await runContainer(doc.runId);
    assert.equal(
      (
        await sh(info.Id, "cd /workspace && git log --format=%s && cat hello.txt && stat -c %u hello.txt")
      ).trim(),
      "first\nfrom git\n1000",
    );
    await sh(info.Id, "echo work > /workspace/wip.txt");
    assert.equal((await runCli(["stop", doc.runId], { home, env })).exitCode, 0);
    // Again: the engine's copy is the workspace now; nothing is cloned over it.
    const again = await runCli(args, { home, env, timeoutMs: 300_000 });
    assert.equal(again.exitCode, 0, again.stderr);
    const second = JSON.parse(again.stdout) as StartDoc;
    assert.doesNotMatch(again.stderr, /cloning the workspace/);
    assert.equal((await sh((await runContainer(second.runId)).Id, "cat /workspace/wip.txt")).trim(), "work");
    assert.equal((await runCli(["stop", second.runId], { home, env })).exitCode, 0);
    const bad = await runCli(
      ["start", "--docker-host", NODE1.engine, "--ship", "--workspace-git", "not a url"],
      {
        home,
        env,
      },
    );
    assert.equal(bad.exitCode, 2, bad.stderr);
    assert.match(bad.stderr, /not a git URL/);
  } finally {
    daemon.kill();
  }
});

test("an ssh:// engine: published on its loopback, reached through an SSH tunnel that is reopened when it dies and closed by stop", async (t) => {
  if (!(await engines(t))) return;
  const ssh = await sshdOnNode1OrSkip(t);
  if (!ssh) return;
  try {
    const sshEnv = { ...env, ...ssh.env };
    const started = await runCli(
      ["--json", "start", "--detach", "--docker-host", ssh.endpoint, "--workspace-upload", project()],
      { home, env: sshEnv, timeoutMs: 600_000 },
    );
    assert.equal(started.exitCode, 0, started.stderr);
    const doc = JSON.parse(started.stdout) as StartDoc;
    assert.equal(doc.engine, ssh.endpoint);
    assert.equal(new URL(doc.url).hostname, "127.0.0.1", "the URL is this machine's end of the tunnel");
    const info = await runContainer(doc.runId);
    assert.deepEqual(
      Object.values((info.HostConfig.PortBindings ?? {}) as Record<string, Array<{ HostIp: string }>>)
        .flat()
        .map((binding) => binding.HostIp),
      ["127.0.0.1"],
      "published on the engine host's loopback only",
    );
    const auth = { authorization: `Bearer ${doc.tokens.client}` };
    assert.equal((await fetch(`${doc.url}/opencode/global/health`, { headers: auth })).status, 200);
    const tunnelOf = () =>
      (
        JSON.parse(readFileSync(path.join(home, "runs", doc.runId, "run.json"), "utf8")) as {
          tunnel: { pid: number };
        }
      ).tunnel;
    const first = tunnelOf();
    process.kill(first.pid, "SIGKILL");
    // Any later command finds the tunnel dead and reopens it on the same port: the URL holds.
    const status = JSON.parse(
      (await runCli(["--json", "status", doc.runId], { home, env: sshEnv })).stdout,
    ) as {
      healthy: boolean;
      url: string;
    };
    assert.equal(status.healthy, true, "healthy again through a reopened tunnel");
    assert.equal(status.url, doc.url);
    const second = tunnelOf();
    assert.notEqual(second.pid, first.pid);
    assert.equal((await fetch(`${doc.url}/opencode/global/health`, { headers: auth })).status, 200);
    const stopped = await runCli(["stop", doc.runId], { home, env: sshEnv, timeoutMs: 120_000 });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      // (an unreaped zombie counts as gone: it forwards nothing)
      gone = pidState(second.pid) !== "alive";
      if (!gone) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(gone, "stop closes the tunnel");
  } finally {
    ssh.stop();
  }
});
