import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { createOpencodeClient } from "@opencode-ai/sdk/v2/client";
import { FAKE_REPLY, type FakeModel, fakeProviderConfig, startFakeModel } from "../fixtures/fake-model.js";
import { CLI, runCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/net.js";
import { BUNDLED_OPENCODE } from "../helpers/runtime.js";

/*
 * `openwork attach` (opencode's own terminal UI) and `openwork run` (one prompt, streamed) against
 * one real host-mode runtime, shared by the tests of this file. The workspace's opencode.json points
 * a provider at a fake model server on 127.0.0.1 (host mode reaches it), so answers are known and
 * nothing leaves the machine. Terminals come from util-linux `script` (a pty).
 */

const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-attach-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };
const ws = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-attach-"));
const FAKE_KEY = `fake-model-key-${process.pid}-3c9e`;
const hasScript = spawnSync("script", ["--version"], { stdio: "ignore" }).status === 0;

let fake: FakeModel;
let run: { runId: string; url: string; tokens: { client: string; host: string; owner: string } };

before(async () => {
  fake = await startFakeModel();
  writeFileSync(path.join(ws, "opencode.json"), JSON.stringify(fakeProviderConfig(fake.url), null, 2));
  // The provider's API key reaches the engine the way a user's does: from this shell, with --env KEY.
  const started = await runCli(
    ["--json", "start", "--sandbox", "none", "--detach", "--workspace", ws, "--env", "FAKE_KEY"],
    { home, env: { ...env, FAKE_KEY }, timeoutMs: 180_000 },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  run = JSON.parse(started.stdout) as typeof run;
});

after(async () => {
  if (run) await runCli(["stop", run.runId], { home, env });
  await fake?.close();
});

const cli = (args: string[], timeoutMs = 60_000) => runCli(args, { home, env, timeoutMs });

/** A command in a pty (`script`); `onOutput` sees everything it printed so far. */
function inPty(
  command: string,
  childEnv: NodeJS.ProcessEnv,
): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], {
    env: { ...process.env, TERM: "xterm-256color", ...childEnv },
    // stdin stays open (a pipe): the terminal UI reads its keys from it
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (data: Buffer) => {
    out += data.toString("utf8");
  });
  child.stderr?.on("data", (data: Buffer) => {
    out += data.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => out, exited };
}

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** Processes whose command line contains `needle`: their pid, argv and environment. */
function processesWith(needle: string): Array<{ pid: string; argv: string; environ: string }> {
  const found = [];
  for (const pid of readdirSync("/proc").filter((name) => /^[0-9]+$/.test(name))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      if (argv.includes(needle))
        found.push({ pid, argv, environ: readFileSync(`/proc/${pid}/environ`, "utf8") });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

test("openwork run prints the model's answer on stdout and exits 0", async () => {
  const count = fake.requests.length;
  const result = await cli(["run", "--workspace", ws, "say hi", "--model", "fake/m1"]);
  assert.equal(result.exitCode, 0, result.stderr);
  // (the line's final newline is printed; runCli, through execa, strips it)
  assert.equal(result.stdout, FAKE_REPLY.join(""));
  const asked = fake.requests.slice(count).filter((request) => !request.title);
  assert.ok(asked.length >= 1, "the engine asked the fake model");
  assert.equal((asked[0]?.body as { model?: string } | undefined)?.model, "m1");
  assert.equal(asked[0]?.authorization, `Bearer ${FAKE_KEY}`, "the key given with --env reached the engine");
  assert.deepEqual(fake.rejected, [], "every request had the shape the fake model expects");
  // RUN as a whole run id in front of the prompt; the answer again, in the latest session.
  const again = await cli(["run", run.runId, "--continue", "--model", "fake/m1", "and again"]);
  assert.equal(again.exitCode, 0, again.stderr);
  assert.equal(again.stdout, FAKE_REPLY.join(""));
});

test("openwork run --format json prints the session's engine events, one JSON document per line", async () => {
  const result = await cli(["run", "--workspace", ws, "--format", "json", "--model", "fake/m1", "hello"]);
  assert.equal(result.exitCode, 0, result.stderr);
  const events = result.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; properties: { sessionID?: string; delta?: string } });
  const sessions = new Set(events.map((event) => event.properties.sessionID));
  assert.equal(sessions.size, 1, "only this session's events");
  const deltas = events.filter((event) => event.type === "message.part.delta");
  assert.equal(deltas.map((event) => event.properties.delta).join(""), FAKE_REPLY.join(""));
  assert.equal(events.at(-1)?.type, "session.status", "it ends when the session is idle");
});

test("openwork run --shell runs a command in the session and prints its output", async () => {
  const result = await cli(["run", "--workspace", ws, "--shell", "echo marker-$((6*7))"]);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.match(result.stdout, /^marker-42$/m);
});

test("openwork run: usage errors exit 2, a failing session exits 1, no runtime exits 3", async () => {
  const none = await cli(["run", "--workspace", ws]);
  assert.equal(none.exitCode, 2);
  assert.match(none.stderr, /give the prompt/);
  const both = await cli(["run", "--workspace", ws, "--shell", "true", "a prompt"]);
  assert.equal(both.exitCode, 2);
  const badModel = await cli(["run", "--workspace", ws, "--model", "nomodel", "x"]);
  assert.equal(badModel.exitCode, 2);
  assert.match(badModel.stderr, /--model must be PROVIDER\/MODEL/);
  const unknown = await cli(["run", "--workspace", ws, "--model", "fake/nope", "x"]);
  assert.equal(unknown.exitCode, 1, unknown.stderr);
  assert.match(unknown.stderr, /the session failed: .*fake\/nope/);
  const elsewhere = await cli([
    "run",
    "--workspace",
    mkdtempSync(path.join(os.tmpdir(), "openwork-ws-")),
    "x",
  ]);
  assert.equal(elsewhere.exitCode, 3, elsewhere.stderr);
});

test("Ctrl-C during openwork run aborts the session and exits 130", async (t) => {
  fake.set({ delayMs: 1500 });
  t.after(() => fake.set({ delayMs: 0 }));
  const child = spawn(
    process.execPath,
    [CLI, "run", "--workspace", ws, "--format", "json", "--model", "fake/m1", "slowly"],
    { env: { ...process.env, OPENWORK_HOME: home, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  child.stdout.on("data", (data: Buffer) => {
    out += data.toString("utf8");
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const sessionId = await waitFor(
    async () => {
      const delta = out.split("\n").find((line) => line.includes('"message.part.delta"'));
      return delta
        ? (JSON.parse(delta) as { properties: { sessionID: string } }).properties.sessionID
        : undefined;
    },
    { what: "the first piece of the answer", timeoutMs: 30_000 },
  );
  child.kill("SIGINT");
  assert.equal(await exited, 130);
  // The engine stopped working on it: the session is idle and its answer ends aborted.
  const headers = { authorization: `Bearer ${run.tokens.client}` };
  const messages = await waitFor(
    async () => {
      const response = await fetch(`${run.url}/opencode/session/${sessionId}/message`, { headers });
      const list = (await response.json()) as Array<{ info: { role: string; error?: { name: string } } }>;
      const last = list.at(-1)?.info;
      return last?.role === "assistant" && last.error ? list : undefined;
    },
    { what: "the assistant message to end", timeoutMs: 20_000 },
  );
  assert.equal(messages.at(-1)?.info.error?.name, "MessageAbortedError");
});

test("openwork attach without a terminal is one line and exit 2", async () => {
  const result = await cli(["attach", run.runId]);
  assert.equal(result.exitCode, 2);
  assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  assert.match(result.stderr, /^openwork: openwork attach needs a terminal/);
});

test("openwork attach opens opencode's terminal UI through the proxy, the token in its environment only", {
  skip: hasScript ? false : "util-linux `script` is not installed (it provides the pty)",
}, async (t) => {
  const pty = inPty(`${shellQuote(process.execPath)} ${shellQuote(CLI)} attach ${run.runId}`, {
    OPENWORK_HOME: home,
    ...env,
  });
  t.after(() => pty.child.kill("SIGKILL"));
  await waitFor(async () => (pty.output().includes("Ask anything") ? true : undefined), {
    what: 'opencode\'s UI to show "Ask anything"',
    timeoutMs: 60_000,
  });
  const [attached] = processesWith(`${run.url}/opencode`);
  assert.ok(attached, "an opencode attach process runs");
  assert.match(attached.argv, /attach\0/);
  assert.ok(!attached.argv.includes(run.tokens.client), "the token is not on its command line");
  assert.ok(attached.environ.split("\0").includes(`OPENCODE_SERVER_PASSWORD=${run.tokens.client}`));
  // Ctrl-C (twice: the first may only clear the prompt) ends the UI; its exit code is ours.
  for (let i = 0; i < 5 && pty.child.exitCode === null; i++) {
    pty.child.stdin?.write("\u0003");
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  assert.equal(await pty.exited, 0, pty.output().slice(-500));
});

test("opencode attach with a wrong password is refused by the proxy (401)", {
  skip: hasScript ? false : "util-linux `script` is not installed (it provides the pty)",
}, async (t) => {
  const pty = inPty(`${shellQuote(BUNDLED_OPENCODE)} attach ${run.url}/opencode`, {
    OPENCODE_SERVER_PASSWORD: "owc_not-the-client-token",
  });
  t.after(() => pty.child.kill("SIGKILL"));
  const timeout = setTimeout(() => pty.child.kill("SIGKILL"), 60_000);
  const code = await pty.exited;
  clearTimeout(timeout);
  assert.match(pty.output(), /401 Unauthorized/);
  assert.ok(!pty.output().includes("Ask anything"));
  assert.notEqual(code, null, "it exited by itself");
});

test("the OpenCode SDK works through the proxy with basic auth; a wrong password gets 401", async () => {
  const sdk = (password: string) =>
    createOpencodeClient({
      baseUrl: `${run.url}/opencode`,
      headers: { authorization: `Basic ${Buffer.from(`opencode:${password}`).toString("base64")}` },
    });
  const health = await sdk(run.tokens.client).global.health();
  assert.equal(health.response.status, 200);
  assert.equal(health.data?.healthy, true);
  const created = await sdk(run.tokens.client).session.create({});
  assert.match(created.data?.id ?? "", /^ses/);
  const listed = await sdk(run.tokens.owner).session.list();
  assert.ok(
    listed.data?.some((session) => session.id === created.data?.id),
    "an owner token works too",
  );
  for (const password of ["owc_wrong", run.tokens.host]) {
    const refused = await sdk(password).session.list();
    assert.equal(refused.response.status, 401, "a wrong password, or the host token, is refused");
    assert.match(refused.response.headers.get("www-authenticate") ?? "", /Basic realm="openwork"/);
  }
});
