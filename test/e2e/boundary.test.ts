import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { request } from "undici";
import { openworkPaths } from "../../src/config/paths.js";
import { HOST_TOKEN_PREFIX } from "../../src/contract/host-auth.js";
import { persistLayout } from "../../src/contract/layout.js";
import { readProcess } from "../../src/processes/inspect.js";
import { RuntimeClient } from "../../src/runs/client.js";
import { RunRegistry } from "../../src/runs/registry.js";
import { AgentShell } from "../helpers/agent.js";
import { runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { waitFor } from "../helpers/net.js";
import { SANDBOX_TEST_USER, sandboxWorkspace } from "../helpers/workspace.js";

/**
 * The sandbox boundary, attacked from the agent's own shell (through the
 * proxy, with only the client token) on a real Docker run, then checked from
 * the host: the store, the host, another workspace's run and later runs are
 * untouched. Each attack is one the adversarial review of issue 10 won
 * against an earlier tree; they stay here as regression tests.
 */

const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-boundary-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };

interface StartDoc {
  runId: string;
  url: string;
  tokens: { client: string; host: string; owner: string };
}

async function start(workspace: string, ...flags: string[]): Promise<StartDoc> {
  const started = await runCli(["--json", "start", "--detach", "--workspace", workspace, ...flags], {
    home,
    env,
    timeoutMs: 300_000,
  });
  assert.equal(started.exitCode, 0, started.stderr);
  return JSON.parse(started.stdout) as StartDoc;
}

/** sha256 of every file under `dir` (the store: blobs and whatever else it keeps). */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const file = path.join(d, name);
      const st = lstatSync(file);
      if (st.isDirectory()) walk(file);
      else if (st.isFile() && st.size > 4096)
        out[path.relative(dir, file)] = createHash("sha256").update(readFileSync(file)).digest("hex");
    }
  };
  walk(dir);
  return out;
}

/*
 * Scripts the agent runs with the runtime's own node. opencode's shell tool
 * runs a command through `bash -c '... eval "<command>"'`, so a command may
 * hold no newline, no backslash and no shell variable: these are one line.
 */
const NUL = "String.fromCharCode(0)";
const NL = "String.fromCharCode(10)";
const SERVER_PIDS = [
  'const fs = require("fs");',
  "const pids = [];",
  'for (const p of fs.readdirSync("/proc")) {',
  "  if (Number.isNaN(Number(p)) || p === String(process.pid)) continue;",
  '  let a = []; try { a = fs.readFileSync("/proc/" + p + "/cmdline", "utf8").split(' +
    NUL +
    "); } catch { continue; }",
  '  if ((a[1] || "").endsWith("/openwork-server.mjs") && a[2] === "serve") pids.push(Number(p));',
  "}",
].join(" ");

/**
 * How often argv[1]+argv[2] is in the server's memory (needles in two halves: see below). Every
 * readable mapping, whatever its size (V8's heap cage is GiBs of reservation), but only its pages
 * that are in memory (the present bit of /proc/<pid>/pagemap, readable without privileges): reading
 * a page that is not would fault it in, and enough of that gets the sandbox OOM-killed.
 */
const MEMORY_SCAN = [
  SERVER_PIDS,
  "const needle = process.argv[1] + process.argv[2]; let found = 0, scanned = 0; const PAGE = 4096;",
  "const count = (buf) => { for (let i = buf.indexOf(needle); i !== -1; i = buf.indexOf(needle, i + 1)) found++; };",
  "for (const pid of pids) {",
  '  const mem = fs.openSync("/proc/" + pid + "/mem", "r"), pagemap = fs.openSync("/proc/" + pid + "/pagemap", "r");',
  "  const entries = Buffer.alloc(8 * 4096), run = Buffer.alloc(PAGE * 256);",
  '  for (const line of fs.readFileSync("/proc/" + pid + "/maps", "utf8").split(' + NL + ")) {",
  "    const m = /^([0-9a-f]+)-([0-9a-f]+) r/.exec(line); if (!m) continue;",
  "    const end = parseInt(m[2], 16); let page = parseInt(m[1], 16) / PAGE;",
  // runs of present pages, read up to 1 MiB at a time; a run continues across reads by the needle's length
  "    let runStart = -1, runLength = 0; let tail = Buffer.alloc(0);",
  "    const flush = () => { if (runLength > 0) { let n = 0; try { n = fs.readSync(mem, run, 0, runLength * PAGE, runStart * PAGE); } catch {} scanned += n; const piece = Buffer.concat([tail, run.subarray(0, n)]); count(piece); tail = piece.subarray(Math.max(0, piece.length - needle.length + 1)); } runStart = -1; runLength = 0; };",
  "    while (page < end / PAGE) {",
  "      const want = Math.min(4096, end / PAGE - page); const got = fs.readSync(pagemap, entries, 0, want * 8, page * 8) / 8;",
  "      if (got <= 0) break;",
  "      for (let i = 0; i < got; i++) {",
  "        const present = (entries[i * 8 + 7] & 0x80) !== 0;",
  "        if (!present) { flush(); tail = Buffer.alloc(0); continue; }",
  "        if (runStart < 0) runStart = page + i;",
  "        runLength++; if (runLength === 256) flush();",
  "      }",
  "      page += got;",
  "    }",
  "    flush();",
  "  }",
  "}",
  'console.log("scanned=" + scanned + " found=" + found);',
].join(" ");

/** The agent's way to make its run look dead while its sandbox lives on: SIGSTOP the server. */
const FREEZE_SERVER = [
  SERVER_PIDS,
  'setTimeout(() => { for (const pid of pids) { process.kill(pid, "SIGSTOP"); console.log("stopped " + pid); } }, 1000);',
].join(" ");

test("the sandbox boundary holds against the agent's own shell", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  const registry = new RunRegistry(openworkPaths({ OPENWORK_HOME: home }));
  const workspace = sandboxWorkspace("openwork-ws-boundary-a-");
  const other = sandboxWorkspace("openwork-ws-boundary-b-");
  const hostFile = path.join(
    mkdtempSync(path.join(os.tmpdir(), "openwork-boundary-host-")),
    "host-secret.txt",
  );
  writeFileSync(hostFile, "a host file the agent wants\n".repeat(1000));
  const hostFileBefore = readFileSync(hostFile, "utf8");
  const marker = path.join(path.dirname(hostFile), "plugin-ran-on-the-host");
  // A host process the agent would like killed: its own group leader, with the identity a ledger would record.
  const victim = spawn("sleep", ["600"], { detached: true, stdio: "ignore" });
  const victimStart = readProcess(victim.pid as number)?.startTime;
  const cleanups: Array<() => Promise<unknown>> = [];
  t.after(async () => {
    victim.kill("SIGKILL");
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
    await runCli(["stop", "--all"], { home, env });
  });

  const a = await start(workspace, "--sandbox", "docker", "--memory", "1g", "--pids-limit", "512");
  const b = await start(other, "--sandbox", "docker");
  const storeBefore = hashTree(path.join(home, "store"));
  assert.ok(Object.keys(storeBefore).length >= 3, "the store holds the sidecars");

  const containerOf = async (runId: string) => {
    const [info] = await docker.listContainers({ all: true, filters: { label: [`openwork.run=${runId}`] } });
    assert.ok(info, `run ${runId} has a container`);
    return docker.getContainer(info.Id).inspect();
  };
  const infoA = await containerOf(a.runId);
  const infoB = await containerOf(b.runId);

  await t.test(
    "isolation defaults: no capabilities, no new privileges, non-root, read-only root, limits, own network",
    () => {
      assert.deepEqual(infoA.HostConfig.CapDrop, ["ALL"]);
      assert.deepEqual(infoA.HostConfig.CapAdd ?? [], []);
      assert.ok(infoA.HostConfig.SecurityOpt?.includes("no-new-privileges"));
      assert.equal(infoA.Config.User, `${SANDBOX_TEST_USER.uid}:${SANDBOX_TEST_USER.gid}`);
      assert.equal(infoA.HostConfig.ReadonlyRootfs, true);
      assert.equal(infoA.HostConfig.Memory, 1024 ** 3);
      assert.equal(infoA.HostConfig.PidsLimit, 512);
      assert.ok((infoA.HostConfig.NanoCpus ?? 0) > 0, "a CPU limit");
      assert.deepEqual(infoA.HostConfig.LogConfig, {
        Type: "json-file",
        Config: { "max-file": "3", "max-size": "10m" },
      });
      assert.equal(infoA.HostConfig.NetworkMode, `openwork-${a.runId}`);
      assert.equal(infoB.HostConfig.NetworkMode, `openwork-${b.runId}`);
      const runtimes = infoA.Mounts.find((m) => m.Destination === "/runtimes");
      assert.equal(runtimes?.RW, false, "the staged runtime is mounted read-only");
    },
  );

  const agent = new AgentShell(a.url, a.tokens.client);
  const dockerPersist = (await registry.read(a.runId))?.persistDir as string;
  const runtimeId = (await registry.read(a.runId))?.runtimeId as string;
  const node = `/runtimes/${runtimeId}/node`;

  await t.test(
    "the agent is nobody special: not root, no capabilities, cannot write the root or the runtime",
    async () => {
      const out = await agent.run(
        [
          "echo uid=$(id -u)",
          "grep CapEff /proc/self/status",
          "touch /etc/pwned 2>/dev/null && echo etc=written || echo etc=refused",
          `echo pwned >> /runtimes/${runtimeId}/openwork-server.mjs 2>/dev/null && echo runtime=written || echo runtime=refused`,
          `mv /runtimes/${runtimeId}/node /runtimes/${runtimeId}/n 2>/dev/null && echo rename=done || echo rename=refused`,
          "echo links=$(find /persist /workspace -xdev -type f -links +1 | wc -l)",
          "cp /bin/sh /workspace/suid-sh && chmod u+s /workspace/suid-sh; echo copied",
        ].join("; "),
      );
      assert.match(out, /uid=1000\n/);
      assert.match(out, /CapEff:\s+0000000000000000/);
      assert.match(out, /etc=refused/);
      assert.match(out, /runtime=refused/);
      assert.match(out, /rename=refused/);
      assert.match(
        out,
        /links=0\n/,
        "no path the sandbox can write is a hard link (to the store or anything)",
      );
      const suid = statSync(path.join(workspace, "suid-sh"));
      assert.notEqual(suid.uid, 0, "a setuid file the agent makes is never root's on the host");
    },
  );

  await t.test(
    "no token in the sandbox: not in any environment, not in the server's memory after host requests",
    async (sub) => {
      // A host-scope request now (signed by the CLI's client), so that a token sent would still be in memory.
      const owner = await new RuntimeClient(a.url, {
        client: a.tokens.client,
        host: a.tokens.host,
      }).mintOwnerToken("boundary");
      assert.ok(owner.token);
      // Each needle goes in as two halves joined in the sandbox: the command itself passes through the
      // server and is kept in the engine's session, and must not be what is found.
      const seed = a.tokens.host.slice(HOST_TOKEN_PREFIX.length);
      const halves = (needle: string) => [needle.slice(0, 10), needle.slice(10)] as const;
      const joined = (needle: string) => {
        const [h1, h2] = halves(needle);
        return `"$(printf %s%s '${h1}' '${h2}')"`;
      };
      const environ = await agent.run(
        `grep -l -a -e ${joined(seed)} -e ${joined(a.tokens.client)} /proc/[0-9]*/environ 2>/dev/null | wc -l; ls /persist/state; grep -r -l -e ${joined(seed)} /persist 2>/dev/null | wc -l`,
      );
      assert.match(environ, /^0\n/, `no environment holds a token: ${environ}`);
      assert.match(environ, /\n0\n$/, `no persisted file holds the host token: ${environ}`);
      assert.doesNotMatch(environ, /tokens\.json/, "owner tokens are not on disk");
      const digest = createHash("sha256").update(a.tokens.client).digest("hex");
      const scan = async (needle: string) => {
        const [n1, n2] = halves(needle);
        return agent.run(`${node} -e '${MEMORY_SCAN}' ${n1} ${n2}`);
      };
      // Positive control: the scan does read the server's memory (the client token's digest is in its environment).
      const control = await scan(digest);
      const host = await scan(seed);
      sub.diagnostic(`client token digest: ${control.trim()}; host token seed: ${host.trim()}`);
      assert.match(control, /scanned=[1-9]\d* found=[1-9]/);
      assert.match(host, /scanned=[1-9]\d* found=0\n/, "the host token never reached the server");
    },
  );

  await t.test("no run reaches another run's server", async () => {
    const networkB = Object.values(infoB.NetworkSettings.Networks)[0];
    const networkA = Object.values(infoA.NetworkSettings.Networks)[0];
    assert.ok(networkB?.IPAddress && networkA?.Gateway);
    const hostPortB = new URL(b.url).port;
    const probe = (url: string) =>
      `${node} -e 'fetch("${url}", { signal: AbortSignal.timeout(3000) }).then((r) => console.log("reached", r.status), (e) => console.log("refused", e.cause?.code ?? e.name))'`;
    const direct = await agent.run(probe(`http://${networkB.IPAddress}:8787/system/health`));
    assert.match(direct, /^refused/, `B's container from A: ${direct}`);
    const viaHost = await agent.run(probe(`http://${networkA.Gateway}:${hostPortB}/system/health`));
    assert.match(viaHost, /^refused/, `B's published port through A's gateway: ${viaHost}`);
    // and B answers where it should (the host's loopback), so the refusals above are the boundary's
    assert.equal((await request(`${b.url}/system/health`)).statusCode, 200);
  });

  // What the agent leaves for whoever comes next: planted control state, a plugin, links to host files, escapes.
  const plugin = `import fs from "node:fs"; fs.writeFileSync(${JSON.stringify(marker)}, "ran"); export const P = async () => ({});`;
  const planted = `owt_${"p".repeat(32)}`;
  await agent.run(
    [
      `printf '%s' '[{"pid":${victim.pid},"identity":"${victimStart}","command":"opencode","startedAt":"2026-01-01T00:00:00Z"}]' > /persist/state/children.json`,
      `printf '%s' '{"owners":[{"id":"x","sha256":"${createHash("sha256").update(planted).digest("hex")}","createdAt":"2026-01-01T00:00:00Z"}]}' > /persist/state/tokens.json`,
      "mkdir -p /persist/home/.config/opencode/plugin",
      `printf '%s' '${plugin}' > /persist/home/.config/opencode/plugin/p.js`,
      `rm -f /persist/logs/engine.log && ln -s ${hostFile} /persist/logs/engine.log`,
      `rm -f /persist/state/current-runtime && ln -s ${hostFile} /persist/state/current-runtime`,
      `printf 'before \\033]52;c;cHduZWQ=\\007\\033]0;title\\007\\033[2J\\033[1A after\\n' > /persist/logs/router.log`,
      "echo planted",
    ].join("; "),
  );

  await t.test(
    "the host reads nothing through a link the agent planted, and prints no escape it wrote",
    async () => {
      const engineLog = await runCli(["logs", a.runId, "--component", "engine", "--tail", "5"], {
        home,
        env,
      });
      assert.notEqual(engineLog.exitCode, 0);
      assert.match(engineLog.stderr, /is a link, which a sandbox may have planted/);
      assert.doesNotMatch(engineLog.stdout + engineLog.stderr, /a host file the agent wants/);
      const routerLog = await runCli(["logs", a.runId, "--component", "router"], { home, env });
      assert.equal(routerLog.exitCode, 0, routerLog.stderr);
      assert.ok(
        !routerLog.stdout.includes("\u001b") && !routerLog.stdout.includes("\u0007"),
        "no raw control byte",
      );
      assert.match(routerLog.stdout, /before \\x1b\]52;c;cHduZWQ=\\x07/);
      // The server's log rotation and tail leave the host file alone (give it a few polls).
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(readFileSync(hostFile, "utf8"), hostFileBefore);
    },
  );

  await t.test(
    "a host run of the same workspace uses none of it, even when it replaces a stopped sandbox",
    async () => {
      // The agent freezes its own server: the run looks unhealthy, and a plain start replaces it on the host.
      // (A second later, from a process of its own: the request that asks for it goes through that server.)
      await agent.run(`setsid -f ${node} -e '${FREEZE_SERVER}' > /persist/frozen 2>&1`);
      await waitFor(async () => ((await new RuntimeClient(a.url).healthy(500)).ok ? undefined : true), {
        timeoutMs: 15_000,
        what: "the agent to freeze its server",
      });
      assert.match(readFileSync(path.join(dockerPersist, "frozen"), "utf8"), /stopped \d+/);
      const host = await start(workspace);
      const hostRecord = await registry.read(host.runId);
      const dockerRecord = await registry.read(a.runId);
      assert.equal(hostRecord?.sandbox, "none");
      assert.notEqual(hostRecord?.persistDir, dockerRecord?.persistDir, "persisted state is per substrate");
      // The engine loads plugins when a session opens a directory: open one.
      const session = await request(`${host.url}/opencode/session`, {
        method: "POST",
        headers: { authorization: `Bearer ${host.tokens.client}`, "content-type": "application/json" },
        body: "{}",
      });
      assert.equal(session.statusCode, 200, await session.body.text());
      assert.ok(!existsSync(marker), "the agent's plugin never ran on the host");
      assert.ok(
        !existsSync(
          path.join(persistLayout(hostRecord?.persistDir as string).homeDir, ".config", "opencode", "plugin"),
        ),
      );
      assert.ok(readProcess(victim.pid as number), "the planted ledger killed no host process");
      assert.equal(
        readFileSync(hostFile, "utf8"),
        hostFileBefore,
        "no host file was appended to, copied or truncated",
      );
      assert.equal((await registry.read(a.runId))?.state, "stopped", "the frozen sandbox was retired");
      await runCli(["stop", host.runId], { home, env });
    },
  );

  await t.test("tokens the agent planted, and tokens of a stopped run, open nothing", async () => {
    const next = await start(workspace, "--sandbox", "docker");
    const summary = (token: string) =>
      request(`${next.url}/system/runtime/summary`, { headers: { authorization: `Bearer ${token}` } }).then(
        async (r) => {
          await r.body.text();
          return r.statusCode;
        },
      );
    assert.equal(await summary(next.tokens.owner), 200, "the run's own owner token works");
    assert.equal(await summary(a.tokens.owner), 401, "an owner token of a stopped run does not");
    assert.equal(await summary(planted), 401, "a token the agent planted does not");
  });

  await t.test("the store and the staged runtime are exactly what was verified", async () => {
    assert.deepEqual(hashTree(path.join(home, "store")), storeBefore);
    const verified = await runCli(
      [
        "--json",
        "sidecars",
        "verify",
        "--full",
        "--runtime",
        path.join(
          home,
          "workspaces",
          (await registry.read(a.runId))?.workspaceId as string,
          "docker",
          "runtimes",
          runtimeId,
        ),
      ],
      { home, env },
    );
    assert.equal(verified.exitCode, 0, verified.stdout + verified.stderr);
  });
});
