import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { secretEnv } from "../../src/contract/env.js";
import { newHostToken } from "../../src/contract/host-auth.js";
import { shellQuote } from "../../src/entrypoint/quote.js";
import { type EntrypointConfig, renderEntrypoint, writeEntrypoint } from "../../src/entrypoint/write.js";
import { waitFor } from "../helpers/net.js";
import { SERVER_BUNDLE } from "../helpers/runtime.js";

const HOSTILE = [
  "plain",
  "with space",
  "it's quoted",
  'double "quotes"',
  "$(touch /tmp/openwork-pwned)",
  "`touch /tmp/openwork-pwned`",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${…} is the hostile value under test
  "${HOME}",
  "line one\nline two",
  "back\\slash",
  "semi;colon && rm -rf nothing",
  "ünïcödé ☃",
  "'",
  "",
];

test("shellQuote round-trips hostile values through sh", async () => {
  for (const value of HOSTILE) {
    const { stdout } = await execa("sh", ["-c", `printf '%s' ${shellQuote(value)}`], {
      stripFinalNewline: false,
    });
    assert.equal(stdout, value, JSON.stringify(value));
  }
});

/**
 * Fake sidecars in a runtime directory: `opencode` records where and how it
 * was started, `node` answers probes (by default once the engine has started;
 * with `realProbe`, by running the built server's real probe) and, as the
 * "server", records what it was given. Enough to exercise every branch of the
 * script with plain sh.
 */
function fakeRuntime(options: { engine?: string; realProbe?: boolean } = {}) {
  const root = mkdtempSync(path.join(os.tmpdir(), "openwork-entrypoint-"));
  const persist = path.join(root, "persist");
  const runtimeDir = path.join(persist, "runtimes", "rt1");
  const workspace = path.join(root, "workspace");
  mkdirSync(runtimeDir, { recursive: true });
  mkdirSync(workspace);
  const report = path.join(root, "report");
  writeFileSync(
    path.join(runtimeDir, "opencode"),
    options.engine ??
      `#!/bin/sh\n{ echo "engine-pid=$$"; echo "engine-pwd=$(pwd)"; echo "engine-args=$*"; echo "engine-home=$HOME"; } >> ${shellQuote(report)}\necho "engine says hello"\nexec sleep 30\n`,
    { mode: 0o755 },
  );
  writeFileSync(
    path.join(runtimeDir, "node"),
    `#!/bin/sh\ncase "$2" in\n  probe) ${options.realProbe ? `shift 2; exec ${shellQuote(process.execPath)} ${shellQuote(SERVER_BUNDLE)} probe "$@"` : `until grep -q engine-home= ${shellQuote(report)} 2>/dev/null; do sleep 0.05; done; exit 0`} ;;\n  serve) { echo "server-workspace=$OPENWORK_WORKSPACE"; echo "server-engine-pid=$OPENWORK_ENGINE_PID"; echo "server-path=$PATH"; echo "server-token=$OPENWORK_TOKEN_SHA256"; } >> ${shellQuote(report)}; kill "$OPENWORK_ENGINE_PID"; exit 0 ;;\nesac\nexit 9\n`,
    { mode: 0o755 },
  );
  writeFileSync(path.join(runtimeDir, "openwork-server.mjs"), "// fake\n");
  return { root, persist, runtimeDir, workspace, report };
}

function config(
  persist: string,
  workspace: string,
  overrides: Partial<EntrypointConfig> = {},
): EntrypointConfig {
  return {
    persist,
    runtimes: path.join(persist, "runtimes"),
    runtimeId: "rt1",
    workspace,
    serverHost: "127.0.0.1",
    serverPort: 18787,
    enginePort: 14096,
    router: { enabled: false, healthPort: 14097 },
    healthDeadlineS: 5,
    ...overrides,
  };
}

const SECRETS = secretEnv({
  clientToken: "client-token-123456",
  hostToken: newHostToken(),
  enginePassword: "engine-pass-123456",
});

test("the script starts the engine outside the workspace, then execs the server with what it needs to adopt it", async () => {
  const rt = fakeRuntime();
  const hostileWorkspace = path.join(rt.root, "ws $(touch pwned) 'q' \"dq\"\nnl");
  mkdirSync(hostileWorkspace);
  const script = await writeEntrypoint(rt.runtimeDir, config(rt.persist, hostileWorkspace));
  const text = readFileSync(script, "utf8");
  for (const secret of Object.values(SECRETS)) assert.ok(!text.includes(secret), "no secret in the script");
  const result = await execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
    cwd: rt.workspace,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const report = readFileSync(rt.report, "utf8");
  assert.match(report, new RegExp(`engine-pwd=${escapeRegExp(path.join(rt.persist, "home"))}\\n`));
  assert.match(report, /engine-args=serve --hostname 127\.0\.0\.1 --port 14096\n/);
  assert.ok(report.includes(`server-workspace=${hostileWorkspace}\n`), report);
  assert.match(report, /server-engine-pid=\d+\n/);
  assert.ok(report.includes(`server-path=${rt.runtimeDir}:`), "staged sidecars come first on PATH");
  assert.ok(report.includes(`server-token=${SECRETS.OPENWORK_TOKEN_SHA256}`));
  assert.ok(!readFileSync(path.join(rt.persist, "logs", "engine.log"), "utf8").includes("pwned"));
  assert.match(readFileSync(path.join(rt.persist, "logs", "engine.log"), "utf8"), /engine says hello/);
  assert.throws(() => readFileSync(path.join(rt.root, "pwned")), "nothing was executed from a value");
});

test("without a router and with earlyServer, the server is exec'd as soon as the engine is started: it waits for the engine itself", async () => {
  const rt = fakeRuntime();
  // The fake node's "probe" would block until the engine reported: the early path never runs it.
  writeFileSync(
    path.join(rt.runtimeDir, "node"),
    `#!/bin/sh\ncase "$2" in\n  probe) echo probed >> ${shellQuote(rt.report)}; exit 0 ;;\n  serve) { echo "server-booting=$OPENWORK_ENGINE_BOOTING"; echo "server-engine-pid=$OPENWORK_ENGINE_PID"; echo "server-exit-file=$OPENWORK_ENGINE_EXIT_FILE"; } >> ${shellQuote(rt.report)}; kill "$OPENWORK_ENGINE_PID"; exit 0 ;;\nesac\nexit 9\n`,
    { mode: 0o755 },
  );
  const script = await writeEntrypoint(
    rt.runtimeDir,
    config(rt.persist, rt.workspace, { earlyServer: true }),
  );
  const result = await execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.match(result.stderr, /starting the runtime server on 127\.0\.0\.1:18787 while the engine boots/);
  const report = readFileSync(rt.report, "utf8");
  assert.match(report, /server-booting=1\n/);
  assert.match(report, /server-engine-pid=\d+\n/);
  assert.match(
    report,
    new RegExp(`server-exit-file=${escapeRegExp(rt.persist)}/state/entrypoint/\\d+/engine\\.exit\n`),
  );
  assert.ok(!report.includes("probed"), "no probe process: the server does the waiting");
  // The setting is a written default (the environment may override it, like every other).
  const rendered = renderEntrypoint(config(rt.persist, rt.workspace, { earlyServer: true }));
  assert.match(rendered, /OPENWORK_SERVER_EARLY='1'/);
});

test("imports are installed by the entrypoint before the engine starts, unless the start says it installed them", async () => {
  const cases = [
    { importsInstalled: false, given: true, earlier: false, installs: true },
    { importsInstalled: true, given: true, earlier: false, installs: false },
    // A later start with nothing to import still runs the step, to remove what an earlier one imported.
    { importsInstalled: false, given: false, earlier: true, installs: true },
    { importsInstalled: true, given: false, earlier: true, installs: false },
  ];
  for (const c of cases) {
    const rt = fakeRuntime();
    // The fake node records an install-imports call, and how many engines had started by then.
    writeFileSync(
      path.join(rt.runtimeDir, "node"),
      `#!/bin/sh\ncase "$2" in\n  install-imports) { echo "install-imports from=\${OPENWORK_IMPORT:-}"; grep -c engine-home= ${shellQuote(rt.report)} || true; } >> ${shellQuote(rt.report)}; exit 0 ;;\n  probe) until grep -q engine-home= ${shellQuote(rt.report)} 2>/dev/null; do sleep 0.05; done; exit 0 ;;\n  serve) kill "$OPENWORK_ENGINE_PID"; exit 0 ;;\nesac\nexit 9\n`,
      { mode: 0o755 },
    );
    const imports = path.join(rt.root, "imports");
    mkdirSync(imports);
    if (c.earlier) {
      mkdirSync(path.join(rt.persist, "state"), { recursive: true });
      writeFileSync(path.join(rt.persist, "state", "imported.json"), "{}\n");
    }
    const script = await writeEntrypoint(
      rt.runtimeDir,
      config(rt.persist, rt.workspace, { importsInstalled: c.importsInstalled }),
    );
    const result = await execa("sh", [script], {
      env: { ...SECRETS, PATH: process.env.PATH, ...(c.given ? { OPENWORK_IMPORT: imports } : {}) },
      extendEnv: false,
      reject: false,
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const report = readFileSync(rt.report, "utf8");
    if (!c.installs) assert.doesNotMatch(report, /install-imports/, JSON.stringify(c));
    else
      assert.match(
        report,
        new RegExp(`install-imports from=${c.given ? escapeRegExp(imports) : ""}\n0\n`),
        `${JSON.stringify(c)}: installed before the engine started\n${report}`,
      );
  }
});

test("environment values win over the written defaults and are not re-evaluated", async () => {
  const rt = fakeRuntime();
  const script = await writeEntrypoint(rt.runtimeDir, config(rt.persist, rt.workspace));
  const value = "$(echo evaluated) `id` '\"\n";
  const result = await execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH, OPENWORK_WORKSPACE: value },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.ok(readFileSync(rt.report, "utf8").includes(`server-workspace=${value}\n`));
});

test("a missing secret stops the script with its name and exit 2", async () => {
  const rt = fakeRuntime();
  const script = await writeEntrypoint(rt.runtimeDir, config(rt.persist, rt.workspace));
  const { OPENCODE_SERVER_PASSWORD: _omitted, ...partial } = SECRETS;
  const result = await execa("sh", [script], {
    env: { ...partial, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 2);
  assert.match(result.stderr, /OPENCODE_SERVER_PASSWORD must be set in the environment/);
});

test("an engine that exits before it is healthy: non-zero exit naming the engine, with its last output", async () => {
  const rt = fakeRuntime({ engine: "#!/bin/sh\necho 'fatal: cannot bind'\nexit 7\n", realProbe: true });
  const script = await writeEntrypoint(rt.runtimeDir, config(rt.persist, rt.workspace));
  const started = Date.now();
  const result = await execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /engine exited with code 7 before it was healthy/);
  assert.match(result.stderr, /fatal: cannot bind/);
  assert.ok(Date.now() - started < 4000, "fails fast, not at the deadline");
});

test("an engine that never becomes healthy: the deadline names it, and the engine is stopped", async () => {
  const rt = fakeRuntime({ realProbe: true });
  const script = await writeEntrypoint(
    rt.runtimeDir,
    config(rt.persist, rt.workspace, { healthDeadlineS: 1 }),
  );
  const result = await execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  assert.equal(result.exitCode, 1);
  assert.match(result.stderr, /engine was not healthy within 1s/);
  // the probe's last reason comes first
  assert.match(
    result.stderr,
    /probe: http:\/\/127\.0\.0\.1:14096\/global\/health: connection failed: ECONNREFUSED \(waited 1000 ms\)/,
  );
  const pid = Number(/engine-pid=(\d+)/.exec(readFileSync(rt.report, "utf8"))?.[1]);
  assert.ok(pid > 0);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, "the engine was stopped");
});

test("a signal while waiting on the engine runs the trap at once: the engine and the probe are stopped", async () => {
  const rt = fakeRuntime({ realProbe: true });
  const script = await writeEntrypoint(
    rt.runtimeDir,
    config(rt.persist, rt.workspace, { healthDeadlineS: 60 }),
  );
  const child = execa("sh", [script], {
    env: { ...SECRETS, PATH: process.env.PATH },
    extendEnv: false,
    reject: false,
  });
  await waitFor(async () => (readFileSync(rt.report, "utf8").includes("engine-pid=") ? true : undefined), {
    timeoutMs: 10_000,
    what: "the engine to start",
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const signalled = Date.now();
  child.kill("SIGTERM");
  const result = await child;
  assert.equal(result.exitCode, 143, result.stderr);
  assert.match(result.stderr, /stopped by a signal during start-up/);
  assert.ok(
    Date.now() - signalled < 5000,
    `the trap ran within ${Date.now() - signalled} ms, not after the wait`,
  );
  const pid = Number(/engine-pid=(\d+)/.exec(readFileSync(rt.report, "utf8"))?.[1]);
  assert.throws(() => process.kill(pid, 0), /ESRCH/, "the engine was stopped");
  const probes = readdirSync("/proc").filter((entry) => {
    try {
      return readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(`--pid\0${pid}\0`);
    } catch {
      return false;
    }
  });
  assert.deepEqual(probes, [], "the waiting probe was stopped");
});

test("the rendered script is valid sh", async () => {
  const text = renderEntrypoint(config("/persist", "/workspace"));
  const result = await execa("sh", ["-n"], { input: text, reject: false });
  assert.equal(result.exitCode, 0, result.stderr);
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

test("every value that reaches the script comes out as it went in: replacement patterns, quotes, newlines, random text", async () => {
  // `$&`, `$$`, `` $` `` and `$'` are String.replace patterns: a path holding one once served another directory.
  const fixed = ["/tmp/ws$$x", "/tmp/ws$&x", "/tmp/ws$`x", "/tmp/ws$'x", "/tmp/$1$<name>", "a\nb\r\tc"];
  // Random text from the whole Unicode range, control characters and lone surrogates included.
  let seed = 20261130;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  const randomValues = Array.from({ length: 40 }, () =>
    Array.from({ length: 1 + (random() % 24) }, () => String.fromCharCode(1 + (random() % 0xfffe))).join(""),
  );
  for (const value of [...fixed, ...randomValues]) {
    // What the script will see is the UTF-8 of the value (a lone surrogate becomes U+FFFD on the way).
    const expected = Buffer.from(value, "utf8").toString("utf8");
    const text = renderEntrypoint(config(value, value, { runtimeId: value }));
    const block = text.slice(text.indexOf("# Written by openwork"), text.indexOf("log() {"));
    const { stdout } = await execa(
      "sh",
      [
        "-c",
        `${block}\nprintf '%s\\n%s\\n%s' "$OPENWORK_PERSIST" "$OPENWORK_WORKSPACE" "$OPENWORK_RUNTIME_ID"`,
      ],
      { stripFinalNewline: false, env: { PATH: process.env.PATH }, extendEnv: false, encoding: "utf8" },
    );
    assert.equal(stdout, `${expected}\n${expected}\n${expected}`, JSON.stringify(value));
  }
});
