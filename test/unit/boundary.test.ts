import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import type http from "node:http";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { tokenDigest } from "../../src/contract/api.js";
import {
  HOST_SIGNATURE_HEADER,
  HOST_TOKEN_PREFIX,
  hostKeyOf,
  newHostToken,
  signHostRequest,
} from "../../src/contract/host-auth.js";
import { persistLayout } from "../../src/contract/layout.js";
import { LinkRefusedError, readFileInside } from "../../src/files/inside.js";
import { printable } from "../../src/logging/terminal.js";
import { validateSandboxWorkspace } from "../../src/mounts/validate.js";
import { readProcess } from "../../src/processes/inspect.js";
import { defaultLimits, parseCpus, parseMemory, parsePids } from "../../src/sandbox/limits.js";
import { sandboxUser } from "../../src/sandbox/user.js";
import { LogTail } from "../../src/server/logtail.js";
import { reapStaleChildren } from "../../src/server/proc.js";
import { TokenStore } from "../../src/server/tokens.js";
import { readCurrentRuntime } from "../../src/staging/current-runtime.js";

/*
 * The sandbox boundary's host-side rules, each forced with the input a
 * hostile sandbox would leave (docs/sandbox-boundary.md). The same attacks
 * run end to end from an agent's shell in test/e2e/boundary.test.ts.
 */

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "openwork-boundary-"));

function request(method: string, url: string, headers: Record<string, string>): http.IncomingMessage {
  return { method, url, headers } as unknown as http.IncomingMessage;
}

test("a planted child ledger stops nothing but the server's own group leaders", async (t) => {
  const dir = tmp();
  const file = path.join(dir, "children.json");
  // A host process that is not a group leader of its own (the shell's child), and one that is.
  const notLeader = spawn("sh", ["-c", "sleep 300 & wait"], { stdio: "ignore" });
  const leader = spawn("sleep", ["300"], { detached: true, stdio: "ignore" });
  t.after(() => {
    for (const child of [notLeader, leader]) child.kill("SIGKILL");
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const identity = (pid: number) => readProcess(pid)?.startTime as string;
  const entry = (pid: unknown, id: unknown) => ({ pid, identity: id, command: "opencode", startedAt: "x" });

  for (const planted of [
    [entry(-3311, "1")], // a negative pid is a process group: kill(-(-3311)) would hit pid 3311's group
    [entry("1", identity(1))], // a string: process.kill(-"1") is kill(-1), every process of the user
    [entry(1, identity(1))], // init
    [entry(leader.pid, "0")], // the right pid, but not the recorded process (pid reuse)
    [{ pid: leader.pid }], // no identity at all
  ]) {
    writeFileSync(file, JSON.stringify(planted));
    assert.deepEqual(reapStaleChildren(file), [], JSON.stringify(planted));
  }
  // The exact identity of a process that does not lead its own group: not one the server spawned.
  const grandchild = Number(
    readFileSync(`/proc/${notLeader.pid}/task/${notLeader.pid}/children`, "utf8").trim(),
  );
  writeFileSync(file, JSON.stringify([entry(grandchild, identity(grandchild))]));
  assert.deepEqual(reapStaleChildren(file), []);
  assert.ok(readProcess(grandchild), "the process survives");
  // Positive control: a group leader of this user, exactly as recorded, is what a stale ledger means.
  writeFileSync(file, JSON.stringify([entry(leader.pid, identity(leader.pid as number))]));
  assert.equal(reapStaleChildren(file).length, 1);
  await new Promise((resolve) => leader.once("exit", resolve));
});

test("the log tail never reads, copies or truncates through a link", async () => {
  const dir = tmp();
  const hostFile = path.join(dir, "host-file");
  const content = "host data\n".repeat(200);
  writeFileSync(hostFile, content);
  const logs = path.join(dir, "logs");
  mkdirSync(logs);
  const file = path.join(logs, "engine.log");
  symlinkSync(hostFile, file);
  // and a link where the rotated copy goes
  const elsewhere = path.join(dir, "elsewhere");
  writeFileSync(elsewhere, "keep me\n");
  symlinkSync(elsewhere, `${file}.1`);
  const tail = new LogTail(file, { rotateBytes: 4096 });
  await tail.poll();
  assert.deepEqual(tail.recent(), [], "nothing is read through the link");
  assert.equal(tail.rotations, 0);
  assert.equal(readFileSync(hostFile, "utf8"), content, "the link's target is neither truncated nor copied");
  // A real log is rotated into a fresh .1: the planted link there is replaced, its target untouched.
  const real = path.join(logs, "router.log");
  writeFileSync(real, "x".repeat(5000));
  symlinkSync(elsewhere, `${real}.1`);
  const realTail = new LogTail(real, { rotateBytes: 4096 });
  await realTail.poll();
  assert.equal(realTail.rotations, 1);
  assert.equal(readFileSync(elsewhere, "utf8"), "keep me\n");
  assert.equal(readFileSync(`${real}.1`, "utf8").length, 5000);
  assert.equal(statSync(real).size, 0);
});

test("a sandbox's persisted files are read without following links, anywhere on the way", () => {
  const root = tmp();
  const layout = persistLayout(root);
  const hostDir = tmp();
  writeFileSync(path.join(hostDir, "current-runtime"), "0123456789abcdef\n");
  // state itself a link to a host directory
  symlinkSync(hostDir, layout.stateDir);
  assert.throws(() => readFileInside(root, layout.currentRuntimeFile), LinkRefusedError);
  assert.equal(readCurrentRuntime(layout), undefined, "a planted link is read as nothing");
  // a real state directory with the file a link
  const root2 = tmp();
  const layout2 = persistLayout(root2);
  mkdirSync(layout2.stateDir);
  symlinkSync(path.join(hostDir, "current-runtime"), layout2.currentRuntimeFile);
  assert.throws(
    () => readFileInside(root2, layout2.currentRuntimeFile),
    /is a link, which a sandbox may have planted/,
  );
  assert.throws(() => readFileInside(root2, path.join(root2, "..", "escape")), LinkRefusedError);
  writeFileSync(layout2.currentRuntimeFile.replace("current-runtime", "real"), "ok");
  assert.equal(readFileInside(root2, path.join(layout2.stateDir, "real")), "ok");
});

test("a sandbox's workspace passes the mount rules", () => {
  const home = tmp();
  const openworkHome = path.join(tmp(), "openwork-home");
  mkdirSync(openworkHome);
  const env = { OPENWORK_HOME: openworkHome, HOME: home };
  const options = { home, env, allowlistPath: path.join(tmp(), "allowlist.json") };
  const project = path.join(home, "project");
  mkdirSync(project);
  validateSandboxWorkspace(project, options);
  const refused: Array<[string, RegExp]> = [
    [home, /is your home directory/],
    ["/", /is the root directory/],
    ["/etc", /is a system directory/],
    ["/var/run", /(system directory|container-engine socket)/],
    [openworkHome, /openwork's own state/],
    [path.join(home, ".ssh"), /credential directory/],
  ];
  mkdirSync(path.join(home, ".ssh"));
  for (const [workspace, reason] of refused) {
    assert.throws(
      () => validateSandboxWorkspace(workspace, options),
      (error: Error & { exitCode?: number; hint?: string }) => {
        assert.match(error.message, /^the workspace cannot be given to a sandbox: /);
        assert.match(error.message, reason);
        assert.equal(error.exitCode, 2);
        assert.match(error.hint ?? "", /--sandbox none, which is no sandbox/);
        return true;
      },
      workspace,
    );
  }
  // through a link, too
  const link = path.join(tmp(), "innocent");
  symlinkSync(home, link);
  assert.throws(() => validateSandboxWorkspace(link, options), /is your home directory/);
  // a workspace holding the mount allowlist could grant itself more
  const withAllowlist = path.join(home, "p2");
  mkdirSync(withAllowlist);
  assert.throws(
    () =>
      validateSandboxWorkspace(withAllowlist, {
        ...options,
        allowlistPath: path.join(withAllowlist, "a.json"),
      }),
    /holds the mount allowlist/,
  );
});

test("host requests are signed: the public key checks them, a signature serves one request once", () => {
  const token = newHostToken();
  const key = hostKeyOf(token) as string;
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.equal(hostKeyOf(`${HOST_TOKEN_PREFIX}short`), undefined);
  // A run started before host tokens were keys: the CLI says how to move on instead of sending the token.
  assert.throws(
    () => signHostRequest(`${HOST_TOKEN_PREFIX}${"x".repeat(32)}`, "POST", "/tokens"),
    (error: Error & { code?: string; hint?: string }) =>
      error.code === "host_token_unsupported" && /--replace/.test(error.hint ?? ""),
  );
  const clientToken = "owc_client-token-0123456789";
  const store = new TokenStore(tokenDigest(clientToken).toString("hex"), key);
  const signed = (method: string, url: string, now?: number) =>
    request(method, url, { [HOST_SIGNATURE_HEADER]: signHostRequest(token, method, url, now) });

  const first = signed("POST", "/tokens");
  assert.equal(store.authenticate(first), "host");
  assert.equal(store.authenticate(first), undefined, "a replayed signature (the same nonce) is refused");
  const header = signHostRequest(token, "POST", "/tokens");
  assert.equal(
    store.authenticate(request("POST", "/system/runtime/upgrade", { [HOST_SIGNATURE_HEADER]: header })),
    undefined,
    "a signature is bound to its path",
  );
  assert.equal(
    store.authenticate(
      request("GET", "/tokens", { [HOST_SIGNATURE_HEADER]: signHostRequest(token, "POST", "/tokens") }),
    ),
    undefined,
    "and to its method",
  );
  assert.equal(store.authenticate(signed("POST", "/tokens", Date.now() - 5 * 60_000)), undefined, "too old");
  const other = newHostToken();
  assert.equal(
    store.authenticate(
      request("POST", "/tokens", { [HOST_SIGNATURE_HEADER]: signHostRequest(other, "POST", "/tokens") }),
    ),
    undefined,
    "another key's signature",
  );
  // The token itself still works for a client that sends it (curl), and a client token is only a client.
  assert.equal(store.authenticate(request("GET", "/x", { "x-openwork-host-token": token })), "host");
  assert.equal(
    store.authenticate(request("GET", "/x", { authorization: `Bearer ${clientToken}` })),
    "client",
  );
  assert.equal(store.authenticate(request("GET", "/x", { authorization: `Bearer ${other}` })), undefined);
  // Owner tokens live in this process only.
  const minted = store.mintOwner("t");
  assert.equal(
    store.authenticate(request("GET", "/x", { authorization: `Bearer ${minted.token}` })),
    "owner",
  );
});

test("control characters from a sandbox are shown, never sent to the terminal", () => {
  const evil = "ok \u001b]52;c;cHduZWQ=\u0007 \u001b[2J\u001b[1A \r\n\u009b31m \u202e txt.exe \t tab";
  const shown = printable(evil);
  assert.doesNotMatch(shown, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/);
  assert.equal(shown, "ok \\x1b]52;c;cHduZWQ=\\x07 \\x1b[2J\\x1b[1A \n\\x9b31m \\u202e txt.exe \t tab");
});

test("limits: defaults, and flags parsed strictly", () => {
  const limits = defaultLimits();
  assert.equal(limits.memoryBytes, 4 * 1024 ** 3);
  assert.equal(limits.pids, 1024);
  assert.ok(limits.cpus > 0 && limits.cpus <= 2);
  assert.equal(parseMemory("512m"), 512 * 1024 ** 2);
  assert.equal(parseMemory("2g"), 2 * 1024 ** 3);
  assert.equal(parseMemory("1.5GiB"), 1.5 * 1024 ** 3);
  assert.throws(() => parseMemory("100m"), /at least 256m/);
  assert.throws(() => parseMemory("lots"), /--memory must be a size/);
  assert.equal(parseCpus("1"), 1);
  assert.throws(() => parseCpus("0"), /--cpus must be/);
  assert.throws(() => parseCpus("9999"), /at most this host's/);
  assert.equal(parsePids("2048"), 2048);
  assert.throws(() => parsePids("10"), /at least 64/);
});

test("a sandbox never runs as root: the workspace owner's uid when the caller is root", (t) => {
  if (process.getuid?.() !== 0) {
    assert.deepEqual(sandboxUser(tmp()), { uid: process.getuid?.(), gid: process.getgid?.() });
    t.diagnostic("not root: a sandbox runs as the caller");
    return;
  }
  const rootOwned = tmp();
  assert.throws(() => sandboxUser(rootOwned), /belongs to root, and a sandbox never runs as root/);
  const userOwned = tmp();
  chownSync(userOwned, 1234, 5678);
  assert.deepEqual(sandboxUser(userOwned), { uid: 1234, gid: 5678 });
});
