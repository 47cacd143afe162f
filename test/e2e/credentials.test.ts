import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { request } from "undici";
import { FAKE_REPLY, type FakeModel, fakeProviderConfig, startFakeModel } from "../fixtures/fake-model.js";
import { AgentShell } from "../helpers/agent.js";
import { emulatorEnv } from "../helpers/apple-emulator.js";
import { CLI, type CliResult, runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/**
 * Credentials reach the runtime, and only the runtime: a distinctive value
 * through each path (flag, inherited flag, env file, env store) is in the
 * engine's environment (read from the agent's own shell), and in no log,
 * status document, container setting, image, workspace or file others may
 * read. The user's opencode config and login are imported; the opt-outs
 * leave them out; a login made inside survives a restart.
 */

const FIXTURES = path.join(
  path.dirname(new URL(import.meta.url).pathname),
  "..",
  "..",
  "..",
  "test",
  "fixtures",
);
const labels = { OPENWORK_LABELS: "openwork.test=1" };

interface Scenario {
  home: string;
  /** the fake HOME holding the user's opencode config and login */
  userHome: string;
  store: string;
  envFile: string;
  env: NodeJS.ProcessEnv;
  secrets: Record<
    "FLAG_SECRET" | "INHERITED_SECRET" | "FILE_SECRET" | "STORE_SECRET" | "ANTHROPIC_KEY",
    string
  >;
  marker: string;
}

function scenario(tag: string): Scenario {
  const root = mkdtempSync(path.join(os.tmpdir(), `openwork-e2e-cred-${tag}-`));
  const userHome = path.join(root, "user");
  mkdirSync(path.join(userHome, ".config", "opencode"), { recursive: true });
  mkdirSync(path.join(userHome, ".local", "share", "opencode"), { recursive: true });
  const marker = `marker-${tag}-${process.pid}`;
  const secrets = {
    FLAG_SECRET: `flag-value-${tag}-7f3a9c`,
    INHERITED_SECRET: `inherited-value-${tag}-2b8e1d`,
    FILE_SECRET: `file-value-${tag}-9c4d2a`,
    STORE_SECRET: `store-value-${tag}-5e6f7a`,
    ANTHROPIC_KEY: `sk-ant-api03-${tag}-4d5e6f7a8b9c`,
  };
  writeFileSync(
    path.join(userHome, ".config", "opencode", "opencode.json"),
    JSON.stringify({ $schema: "https://opencode.ai/config.json", username: marker }),
  );
  writeFileSync(
    path.join(userHome, ".local", "share", "opencode", "auth.json"),
    JSON.stringify({ anthropic: { type: "api", key: secrets.ANTHROPIC_KEY } }),
    { mode: 0o600 },
  );
  const envFile = path.join(root, "creds.env");
  writeFileSync(envFile, `# test credentials\nFILE_SECRET=${secrets.FILE_SECRET}\nSHARED=from-the-file\n`, {
    mode: 0o600,
  });
  const store = path.join(root, "config", "openwork", "env");
  return {
    home: path.join(root, "openwork-home"),
    userHome,
    store,
    envFile,
    env: {
      ...labels,
      HOME: userHome,
      XDG_CONFIG_HOME: "",
      XDG_DATA_HOME: "",
      OPENWORK_ENV_STORE: store,
      INHERITED_SECRET: secrets.INHERITED_SECRET,
    },
    secrets,
    marker,
  };
}

async function cli(s: Scenario, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(args, { home: s.home, env: { ...s.env, ...extraEnv }, timeoutMs: 300_000 });
}

/** `openwork env set NAME` with the value on stdin, as a user keeps it off the command line. */
async function storeSet(s: Scenario, name: string, value: string): Promise<void> {
  const result = await execa(process.execPath, [CLI, "env", "set", name], {
    env: { OPENWORK_HOME: s.home, ...s.env },
    input: `${value}\n`,
    reject: false,
  });
  assert.equal(result.exitCode, 0, String(result.stderr));
}

interface StartDoc {
  runId: string;
  runtimeId: string;
  url: string;
  tokens: { client: string };
  credentials: {
    env: Array<{ name: string; source: string }>;
    hostConfig: { dir: string | null; files: number } | null;
    hostAuth: string[] | null;
  };
}

/**
 * One engine call through the proxy. A 502/503 (the engine restarting) is retried for a while:
 * on two loaded cores the supervisor may restart an engine it found unresponsive (seen once in
 * CI, 10 s after a start, while another file spawned CLI processes), which is not what this file tests.
 */
async function api(doc: StartDoc, method: string, apiPath: string, body?: unknown): Promise<unknown> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const response = await request(`${doc.url}/opencode${apiPath}`, {
      method: method as "GET",
      headers: { authorization: `Bearer ${doc.tokens.client}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.body.text();
    if ((response.statusCode === 502 || response.statusCode === 503) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    assert.equal(response.statusCode, 200, `${method} ${apiPath}: ${text}`);
    return JSON.parse(text);
  }
}

/** Every file under `dir` that holds one of `values` (files above 16 MiB are the sidecar binaries). */
function filesHolding(dir: string, values: readonly string[]): Array<{ file: string; mode: number }> {
  const out: Array<{ file: string; mode: number }> = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const file = path.join(d, name);
      const st = lstatSync(file);
      if (st.isDirectory()) walk(file);
      else if (st.isFile() && st.size < 16 * 1024 * 1024) {
        const text = readFileSync(file, "latin1");
        if (values.some((value) => text.includes(value))) out.push({ file, mode: st.mode & 0o777 });
      }
    }
  };
  walk(dir);
  return out;
}

/**
 * A model provider over HTTPS whose certificate only the test CA vouches for, added to the
 * user's opencode.json (so it arrives by the config import), its API key the flag's secret:
 * an answer through it shows --ca-cert reached the engine's TLS and --env its requests.
 */
async function tlsModel(s: Scenario, host: string, urlHost: string): Promise<FakeModel> {
  const model = await startFakeModel({
    host,
    tls: {
      key: readFileSync(path.join(FIXTURES, "test-server.key"), "utf8"),
      cert: readFileSync(path.join(FIXTURES, "test-server.pem"), "utf8"),
    },
  });
  const file = path.join(s.userHome, ".config", "opencode", "opencode.json");
  const config = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  const url = `https://${urlHost}:${model.port}/v1`;
  const { provider } = fakeProviderConfig(url, "FLAG_SECRET") as { provider: { fake: unknown } };
  writeFileSync(file, JSON.stringify({ ...config, provider: { tls: provider.fake } }));
  return model;
}

async function assertAnswerOverTls(
  s: Scenario,
  workspace: string,
  model: FakeModel,
  env: NodeJS.ProcessEnv = {},
) {
  const answer = await cli(s, ["run", "--workspace", workspace, "--model", "tls/m1", "say hi"], env);
  assert.equal(answer.exitCode, 0, answer.stderr);
  assert.equal(answer.stdout, FAKE_REPLY.join(""), "the answer came over TLS the test CA vouches for");
  assert.ok(
    model.requests.some((request) => request.authorization === `Bearer ${s.secrets.FLAG_SECRET}`),
    "the provider got the key given with --env",
  );
  assertNoSecret("openwork run", answer.stdout + answer.stderr, s.secrets);
}

/** Each path's secret is in the engine's environment, read from the agent's own shell. */
async function assertEachPathArrived(shell: AgentShell, s: Scenario): Promise<void> {
  for (const name of ["FLAG_SECRET", "INHERITED_SECRET", "FILE_SECRET", "STORE_SECRET"] as const)
    assert.equal(
      (await shell.run(`printenv ${name}`)).trim(),
      s.secrets[name],
      `${name} in the engine's environment`,
    );
}

/** The flag, inherited-flag and file paths of a scenario's secrets (the store's is set beforehand). */
function secretFlags(s: Scenario, workspace: string): string[] {
  return [
    "--workspace",
    workspace,
    "--env",
    `FLAG_SECRET=${s.secrets.FLAG_SECRET}`,
    "--env",
    "INHERITED_SECRET",
    "--env-file",
    s.envFile,
  ];
}

/**
 * A "proxy" on the host, on every interface: a sandbox must reach it through the rewritten
 * address. (The engine uses it too, for its own fetches: those connections may end in a reset.)
 */
async function hostProxy(): Promise<{ proxy: net.Server; proxyPort: number }> {
  const proxy = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.end("proxy-banner-ok\n");
  });
  await new Promise<void>((resolve) => proxy.listen(0, "0.0.0.0", resolve));
  return { proxy, proxyPort: (proxy.address() as net.AddressInfo).port };
}

function assertNoSecret(where: string, text: string, secrets: Record<string, string>): void {
  for (const [name, value] of Object.entries(secrets))
    assert.ok(!text.includes(value), `${name}'s value appears in ${where}`);
}

test("refusals: an env file open to others, a reserved name, an unset inherited name — exit 2, nothing started", async () => {
  const s = scenario("refuse");
  const workspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-cred-refuse-"));
  chmodSync(s.envFile, 0o640);
  const open = await cli(s, ["start", "--detach", "--workspace", workspace, "--env-file", s.envFile]);
  assert.equal(open.exitCode, 2, open.stderr);
  assert.match(open.stderr, new RegExp(`chmod 600 ${s.envFile.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
  assert.equal(open.stderr.trim().split("\n").length, 1, open.stderr);
  chmodSync(s.envFile, 0o600);
  for (const [args, pattern] of [
    [["--env", "OPENWORK_TOKEN=x"], /OPENWORK_TOKEN is reserved/],
    [["--env", "OPENCODE_SERVER_PASSWORD=x"], /OPENCODE_SERVER_PASSWORD is reserved/],
    [["--env", "NOT_SET_HERE_XYZ"], /NOT_SET_HERE_XYZ is not set/],
    [["--env", "1BAD=x"], /"1BAD" is not a valid environment variable name/],
  ] as const) {
    const refused = await cli(s, ["start", "--detach", "--workspace", workspace, ...args]);
    assert.equal(refused.exitCode, 2, refused.stderr);
    assert.match(refused.stderr, pattern);
  }
  writeFileSync(s.envFile, "OK=1\nHOME=/elsewhere\n", { mode: 0o600 });
  const reserved = await cli(s, ["start", "--detach", "--workspace", workspace, "--env-file", s.envFile]);
  assert.equal(reserved.exitCode, 2, reserved.stderr);
  assert.match(reserved.stderr, /creds\.env:2: HOME is reserved/);
  const status = await cli(s, ["--json", "status", "--all"]);
  assert.deepEqual((JSON.parse(status.stdout) as { runs: unknown[] }).runs, [], "no run was recorded");
});

test("host: every path reaches the engine, nothing leaks, config and login imported, a login made inside survives", async (t) => {
  const s = scenario("host");
  const workspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-cred-host-"));
  const model = await tlsModel(s, "127.0.0.1", "127.0.0.1");
  t.after(async () => {
    await cli(s, ["stop", "--all"]);
    await model.close();
  });
  await storeSet(s, "STORE_SECRET", s.secrets.STORE_SECRET);
  await storeSet(s, "SHARED", "from-the-store");
  const list = await cli(s, ["env", "list"]);
  assert.match(list.stdout, /STORE_SECRET\s+\*\*\*\*/);
  assertNoSecret("env list", list.stdout + list.stderr, s.secrets);
  const flags = [
    ...secretFlags(s, workspace),
    "--env",
    "SHARED=from-the-flag",
    "--ca-cert",
    path.join(FIXTURES, "test-ca.pem"),
  ];

  const dry = await cli(s, ["--json", "start", "--dry-run", ...flags]);
  assert.equal(dry.exitCode, 0, dry.stderr);
  assertNoSecret("start --dry-run --json", dry.stdout + dry.stderr, s.secrets);
  const plan = JSON.parse(dry.stdout) as {
    credentials: { env: Array<{ name: string; value: string; source: string; overrides?: string[] }> };
  };
  const shared = plan.credentials.env.find((entry) => entry.name === "SHARED");
  assert.equal(shared?.source, "--env");
  assert.deepEqual(
    shared?.overrides?.map((o) => o.split(" ")[0]),
    ["--env-file", "env"],
    "the flag wins over the file, which wins over the store",
  );
  assert.ok(plan.credentials.env.every((entry) => entry.value === "[REDACTED]"));
  assert.deepEqual(
    readdirSync(s.home).filter((d) => d === "runs" || d === "workspaces"),
    [],
    "a dry run starts nothing",
  );

  const started = await cli(s, ["--json", "--log-format", "pretty", "start", "--detach", ...flags]);
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as StartDoc;
  assert.deepEqual(doc.credentials.hostAuth, [
    path.join(s.userHome, ".local", "share", "opencode", "auth.json"),
  ]);
  assert.equal(doc.credentials.hostConfig?.files, 1);

  const shell = new AgentShell(doc.url, doc.tokens.client);
  await assertEachPathArrived(shell, s);
  assert.equal((await shell.run("printenv SHARED")).trim(), "from-the-flag");
  const config = (await api(doc, "GET", "/config")) as { username?: string };
  assert.equal(config.username, s.marker, "the engine sees the user's config");
  await assertAnswerOverTls(s, workspace, model);
  const providers = (await api(doc, "GET", "/provider")) as { connected: string[] };
  assert.ok(providers.connected.includes("anthropic"), `connected: ${providers.connected.join(", ")}`);

  const status = await cli(s, ["--json", "status", doc.runId]);
  const statusHuman = await cli(s, ["status", doc.runId]);
  const logs = await cli(s, ["logs", doc.runId, "--tail", "500"]);
  assert.match(statusHuman.stdout, /opencode logins: .*auth\.json/);
  for (const [where, result] of [
    ["start (pretty logs)", started],
    ["status --json", status],
    ["status", statusHuman],
    ["logs", logs],
  ] as const)
    assertNoSecret(where, result.stdout + result.stderr, s.secrets);

  // A login made inside the runtime, then a restart of the run: it is still there.
  await api(doc, "PUT", "/auth/openai", { type: "api", key: "sk-inside-login-0123456789" });
  assert.equal((await cli(s, ["stop", doc.runId])).exitCode, 0);
  const again = await cli(s, ["--json", "--log-format", "json", "start", "--detach", ...flags]);
  assert.equal(again.exitCode, 0, again.stderr);
  assertNoSecret("start (json logs)", again.stdout + again.stderr, s.secrets);
  const doc2 = JSON.parse(again.stdout) as StartDoc;
  // The same start again returns the run; other values are not silently ignored.
  const same = await cli(s, ["--json", "start", "--detach", ...flags]);
  assert.equal(same.exitCode, 0, same.stderr);
  assert.equal((JSON.parse(same.stdout) as StartDoc).runId, doc2.runId);
  const other = await cli(s, ["start", "--detach", ...flags, "--env", "FLAG_SECRET=another-value-123"]);
  assert.equal(other.exitCode, 2, other.stderr);
  assert.match(other.stderr, /env FLAG_SECRET changed.*--replace/);
  assertNoSecret("a refused start", other.stderr, s.secrets);
  assert.ok(!other.stderr.includes("another-value-123"));
  const connected = ((await api(doc2, "GET", "/provider")) as { connected: string[] }).connected;
  assert.ok(connected.includes("openai") && connected.includes("anthropic"), connected.join(", "));

  // Opted out: the user's config and login are left out; the login made inside stays.
  const out = await cli(s, [
    "--json",
    "start",
    "--detach",
    "--replace",
    "--no-host-config",
    "--no-host-auth",
    ...flags,
  ]);
  assert.equal(out.exitCode, 0, out.stderr);
  const doc3 = JSON.parse(out.stdout) as StartDoc;
  assert.equal(doc3.credentials.hostConfig, null);
  assert.equal(doc3.credentials.hostAuth, null);
  assert.notEqual(((await api(doc3, "GET", "/config")) as { username?: string }).username, s.marker);
  const left = ((await api(doc3, "GET", "/provider")) as { connected: string[] }).connected;
  assert.ok(!left.includes("anthropic"), left.join(", "));
  assert.ok(left.includes("openai"), left.join(", "));

  const holding = filesHolding(s.home, Object.values(s.secrets));
  assert.ok(holding.length > 0, "the runtime's auth file holds the imported key");
  for (const { file, mode } of holding)
    assert.equal(mode, 0o600, `${file} holds a secret and is mode ${mode.toString(8)}`);
  assert.deepEqual(filesHolding(workspace, Object.values(s.secrets)), [], "nothing in the workspace");
  assert.deepEqual(
    filesHolding(s.userHome, [s.secrets.FLAG_SECRET, "sk-inside-login"]),
    [],
    "the user's files are not written",
  );
});

test("docker: every path reaches the engine, nothing leaks into the container's settings or image, proxy and CA", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = await sharedSandboxImage(docker);
  const s = scenario("docker");
  const workspace = sandboxWorkspace("openwork-ws-cred-docker-");
  const { proxy, proxyPort } = await hostProxy();
  const model = await tlsModel(s, "0.0.0.0", "host.docker.internal");
  t.after(async () => {
    proxy.close();
    await cli(s, ["stop", "--all"]);
    await model.close();
  });
  await storeSet(s, "STORE_SECRET", s.secrets.STORE_SECRET);
  const ca = path.join(FIXTURES, "test-ca.pem");
  const started = await cli(
    s,
    [
      "--json",
      "--log-format",
      "json",
      "start",
      "--detach",
      "--sandbox",
      "docker",
      ...secretFlags(s, workspace),
      "--ca-cert",
      ca,
    ],
    // (The model is reached directly: the "proxy" only answers a banner.)
    { HTTPS_PROXY: `http://127.0.0.1:${proxyPort}`, http_proxy: "", NO_PROXY: "host.docker.internal" },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  assertNoSecret("start (json logs)", started.stdout + started.stderr, s.secrets);
  assert.match(started.stderr, /HTTPS_PROXY names this machine's loopback/);
  const doc = JSON.parse(started.stdout) as StartDoc;
  const shell = new AgentShell(doc.url, doc.tokens.client);
  await assertEachPathArrived(shell, s);
  assert.equal((await shell.run("printenv HTTPS_PROXY")).trim(), `http://host.docker.internal:${proxyPort}`);
  const reached = await shell.run(
    `/runtimes/${doc.runtimeId}/node -e 'require("net").connect(${proxyPort}, "host.docker.internal").on("data", (d) => { process.stdout.write(String(d)); process.exit(0); }).on("error", (e) => { console.log("error " + e.message); process.exit(1); })'`,
  );
  assert.match(reached, /proxy-banner-ok/, "the rewritten proxy address reaches the host");
  const caPath = (await shell.run("printenv NODE_EXTRA_CA_CERTS")).trim();
  assert.equal(
    (await shell.run(`cat ${caPath}`)).trim(),
    readFileSync(ca, "utf8").trim(),
    "the CA bundle is there",
  );
  assert.match((await shell.run("printenv SSL_CERT_FILE")).trim(), /^\/persist\//);
  const config = (await api(doc, "GET", "/config")) as { username?: string };
  assert.equal(config.username, s.marker);
  await assertAnswerOverTls(s, workspace, model);
  const providers = (await api(doc, "GET", "/provider")) as { connected: string[] };
  assert.ok(providers.connected.includes("anthropic"), providers.connected.join(", "));
  assert.equal((await shell.run("ls -A /import")).trim(), "", "the imports are gone once the run is up");

  const [info] = await docker.listContainers({ filters: { label: [`openwork.run=${doc.runId}`] } });
  assert.ok(info);
  const inspect = await docker.getContainer(info.Id).inspect();
  assertNoSecret(
    "docker inspect (command, args, labels, entrypoint)",
    JSON.stringify([
      inspect.Config.Cmd,
      inspect.Args,
      inspect.Path,
      inspect.Config.Labels,
      inspect.Config.Entrypoint,
    ]),
    s.secrets,
  );
  const imageInfo = await docker.getImage(image.tag).inspect();
  const history = await docker.getImage(image.tag).history();
  assertNoSecret("the image", JSON.stringify([imageInfo, history]), s.secrets);
  const status = await cli(s, ["--json", "status", doc.runId]);
  assertNoSecret("status --json", status.stdout + status.stderr, s.secrets);
  const logs = await cli(s, ["logs", doc.runId, "--tail", "500"]);
  assertNoSecret("logs", logs.stdout + logs.stderr, s.secrets);
  const holding = filesHolding(s.home, Object.values(s.secrets));
  for (const { file, mode } of holding)
    assert.equal(mode, 0o600, `${file} holds a secret and is mode ${mode.toString(8)}`);
  assert.deepEqual(filesHolding(workspace, Object.values(s.secrets)), [], "nothing in the workspace");
  // The entrypoint script holds no value either (it is among the files scanned, and here by name).
  const entrypoints = execFileSync("find", [s.home, "-name", "entrypoint.sh"], { encoding: "utf8" })
    .trim()
    .split("\n");
  for (const file of entrypoints) assertNoSecret(file, readFileSync(file, "utf8"), s.secrets);
});

test("Apple container (emulated on Docker): env, config and login reach the engine; a loopback proxy is the VM's gateway", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  const s = scenario("apple");
  const workspace = sandboxWorkspace("openwork-ws-cred-apple-");
  const { proxy, proxyPort } = await hostProxy();
  const env = { ...emulatorEnv(), HTTPS_PROXY: `http://localhost:${proxyPort}` };
  t.after(async () => {
    proxy.close();
    await cli(s, ["stop", "--all"], env);
  });
  const started = await cli(
    s,
    [
      "--json",
      "start",
      "--detach",
      "--sandbox",
      "container",
      "--workspace",
      workspace,
      "--env",
      `FLAG_SECRET=${s.secrets.FLAG_SECRET}`,
    ],
    env,
  );
  assert.equal(started.exitCode, 0, started.stderr);
  assertNoSecret("start", started.stdout + started.stderr, s.secrets);
  const doc = JSON.parse(started.stdout) as StartDoc;
  const shell = new AgentShell(doc.url, doc.tokens.client);
  assert.equal((await shell.run("printenv FLAG_SECRET")).trim(), s.secrets.FLAG_SECRET);
  const [info] = await docker.listContainers({ filters: { label: [`openwork.run=${doc.runId}`] } });
  assert.ok(info);
  const networks = (await docker.getContainer(info.Id).inspect()).NetworkSettings.Networks;
  const gateways = Object.values(networks).map((n) => n.Gateway);
  const proxyInside = (await shell.run("printenv HTTPS_PROXY")).trim();
  assert.ok(
    gateways.some((gateway) => proxyInside === `http://${gateway}:${proxyPort}`),
    `${proxyInside} names the VM's gateway (${gateways.join(", ")})`,
  );
  const reached = await shell.run(
    `/runtimes/${doc.runtimeId}/node -e 'const u = new URL(process.env.HTTPS_PROXY); require("net").connect(Number(u.port), u.hostname).on("data", (d) => { process.stdout.write(String(d)); process.exit(0); }).on("error", (e) => { console.log("error " + e.message); process.exit(1); })'`,
  );
  assert.match(reached, /proxy-banner-ok/);
  assert.equal(((await api(doc, "GET", "/config")) as { username?: string }).username, s.marker);
  assert.ok(
    ((await api(doc, "GET", "/provider")) as { connected: string[] }).connected.includes("anthropic"),
  );
});
