import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ExitCode, OpenworkError } from "../../src/errors/errors.js";
import { silentLogger } from "../../src/logging/logger.js";
import {
  type ConfigProblem,
  loadWorkersConfig,
  parseDuration,
  parseWorkersConfig,
  sameWorker,
  WorkersConfigError,
  WorkersConfigMissingError,
  workersTemplate,
} from "../../src/workers/config.js";

const FILE = "/etc/openwork/workers.json";
const HOME = "/home/ada";

function parse(text: string) {
  return parseWorkersConfig(text, FILE, { home: HOME });
}

/** The problems a text has (fails the test when it parses). */
function problemsOf(text: string): { error: WorkersConfigError; problems: ConfigProblem[] } {
  try {
    parse(text);
  } catch (error) {
    assert.ok(error instanceof WorkersConfigError, `expected a WorkersConfigError, got ${String(error)}`);
    return { error, problems: error.problems };
  }
  assert.fail("the text parsed, but problems were expected");
}

/** 1-based line and column of the n-th occurrence of `needle`, counted by hand for the assertions. */
function where(text: string, needle: string, occurrence = 1): { line: number; column: number } {
  let offset = -1;
  for (let seen = 0; seen < occurrence; seen++) {
    offset = text.indexOf(needle, offset + 1);
    assert.notEqual(offset, -1, `${needle} (#${occurrence}) is not in the text`);
  }
  const lines = text.slice(0, offset).split("\n");
  return { line: lines.length, column: lines[lines.length - 1]!.length + 1 };
}

function problemAt(problems: ConfigProblem[], at: string): ConfigProblem {
  const found = problems.find((problem) => problem.at === at);
  assert.ok(found, `no problem at ${at}; got ${problems.map((p) => p.at).join(", ")}`);
  return found;
}

describe("parseWorkersConfig: a valid file", () => {
  const text = `// a fleet
{
  /* block comment */
  "heartbeatInterval": 2,          // a number is seconds
  "stopTimeout": "1.5m",
  "defaults": {
    "sandbox": "docker",
    "cpus": 1,
    "memory": "2g",
    "env": ["GITHUB_TOKEN"],
    "restart": { "maxRestarts": 3, "backoff": { "factor": 3 }, "maxMemory": "1500m" },
  },
  "workers": [
    {
      "name": "api",
      "workspace": "~/src/api",
      "envFile": ["./secrets/api.env", "~/x.env", "/abs/y.env"],
      "manifest": "../manifests/m.json",
      "mounts": ["~/docs:docs:ro", "shared:shared"],
      "port": 8801,
      "pidsLimit": "512",
      "healthTimeout": "500ms",
      "restart": { "window": "1h", "backoff": { "initial": "2s" } },
    },
    {
      "name": "web.2",
      "workspace": "projects/web",
      "enabled": false,
      "sandbox": "container",
      "env": [],
    },
  ],
}
`;

  it("is read with comments and trailing commas, and resolves paths and durations", () => {
    const config = parse(text);
    assert.equal(config.file, FILE);
    assert.equal(config.heartbeatIntervalMs, 2000);
    assert.equal(config.stopTimeoutMs, 90_000);
    assert.equal(config.workers.length, 2);

    const [api, web] = config.workers;
    assert.ok(api && web);
    assert.equal(api.name, "api");
    assert.equal(api.workspace, "/home/ada/src/api");
    assert.equal(api.enabled, true);
    assert.equal(api.line, where(text, '"name": "api"').line - 1);
    assert.deepEqual(api.start, {
      sandbox: "docker",
      cpus: 1,
      memoryBytes: 2 * 1024 ** 3,
      pids: 512,
      port: 8801,
      env: ["GITHUB_TOKEN"],
      envFiles: ["/etc/openwork/secrets/api.env", "/home/ada/x.env", "/abs/y.env"],
      manifest: "/etc/manifests/m.json",
      mounts: ["/home/ada/docs:docs:ro", "/etc/openwork/shared:shared"],
      healthTimeoutMs: 500,
    });
    // restart: the worker's keys over the defaults' keys over the built-in defaults, field by field
    assert.deepEqual(api.restart, {
      maxRestarts: 3,
      windowMs: 3_600_000,
      minUptimeMs: 30_000,
      backoff: { initialMs: 2000, maxMs: 60_000, factor: 3, jitter: 0.2 },
      maxMemoryBytes: 1500 * 1024 ** 2,
      maxMemoryForMs: 60_000,
    });

    assert.equal(web.workspace, "/etc/openwork/projects/web");
    assert.equal(web.enabled, false);
    // the worker's keys win (an empty env list replaces the default one); the rest come from defaults
    assert.deepEqual(web.start, {
      sandbox: "container",
      cpus: 1,
      memoryBytes: 2 * 1024 ** 3,
      env: [],
      envFiles: [],
      mounts: [],
    });
    assert.equal(web.restart.maxRestarts, 3);
    assert.equal(web.restart.windowMs, 600_000);
    assert.deepEqual(web.restart.backoff, { initialMs: 1000, maxMs: 60_000, factor: 3, jitter: 0.2 });
  });

  it("applies the built-in defaults when the file sets nothing", () => {
    const config = parse('{ "workers": [ { "name": "solo", "workspace": "~" } ] }');
    assert.equal(config.heartbeatIntervalMs, 5000);
    assert.equal(config.stopTimeoutMs, 30_000);
    assert.deepEqual(config.workers[0], {
      name: "solo",
      workspace: HOME,
      enabled: true,
      start: { mounts: [], env: [], envFiles: [] },
      restart: {
        maxRestarts: 5,
        windowMs: 600_000,
        minUptimeMs: 30_000,
        backoff: { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 },
        maxMemoryBytes: null,
        maxMemoryForMs: 60_000,
      },
      line: 1,
    });
  });

  it("keeps an http(s) manifest as written and takes memory as a number of bytes", () => {
    const config = parse(`{ "workers": [ {
      "name": "a", "workspace": "/w/a", "sandbox": "auto",
      "manifest": "https://example.com/m.json", "memory": 536870912, "cpus": "0.5", "port": "9000",
      "source": "npm", "router": true, "proxyEnv": false, "hostConfig": false, "hostAuth": true,
      "caCert": "certs/ca.pem", "restart": { "maxMemory": null, "minUptime": 0 },
    } ] }`);
    assert.deepEqual(config.workers[0]?.start, {
      sandbox: "auto",
      manifest: "https://example.com/m.json",
      memoryBytes: 536870912,
      cpus: 0.5,
      port: 9000,
      source: "npm",
      router: true,
      proxyEnv: false,
      hostConfig: false,
      hostAuth: true,
      caCert: "/etc/openwork/certs/ca.pem",
      mounts: [],
      env: [],
      envFiles: [],
    });
    assert.equal(config.workers[0]?.restart.maxMemoryBytes, null);
    assert.equal(config.workers[0]?.restart.minUptimeMs, 0);
  });

  it("resolves a relative file name against the current directory", () => {
    const config = parseWorkersConfig(
      '{ "workers": [ { "name": "a", "workspace": "ws" } ] }',
      "conf/w.json",
      {
        home: HOME,
      },
    );
    assert.equal(config.file, path.resolve("conf/w.json"));
    assert.equal(config.workers[0]?.workspace, path.resolve("conf/ws"));
  });
});

describe("parseWorkersConfig: problems", () => {
  it("reports a syntax error with its line and column, and nothing else", () => {
    const text = '{\n  "workers": [\n    { "name": "a" "workspace": "/w" },\n  ],\n}\n';
    const { error, problems } = problemsOf(text);
    assert.equal(error.code, "workers_config_invalid");
    assert.equal(error.exitCode, ExitCode.usage);
    assert.equal(problems.length, 1);
    assert.deepEqual(problems[0], {
      file: FILE,
      line: 3,
      column: 19,
      at: "(syntax)",
      message: 'expected a comma, found "workspace" (CommaExpected)',
    });
    assert.equal(
      error.message,
      `${FILE}: 1 problem\n${FILE}:3:19: (syntax): expected a comma, found "workspace" (CommaExpected)`,
    );
  });

  it("reports an unclosed file at its end", () => {
    const { problems } = problemsOf('{ "workers": [\n');
    assert.deepEqual(
      problems.map((p) => [p.line, p.column, p.message]),
      [
        [2, 1, 'expected "]" to close the list, found the end of the file (CloseBracketExpected)'],
        [2, 1, 'expected "}" to close the object, found the end of the file (CloseBraceExpected)'],
      ],
    );
  });

  it("reports every problem of every worker at once, each where it is", () => {
    const text = `{
  "workers": [
    {
      "name": "api",
      "workspace": "~/src/api",
      "port": 8801,
    },
    {
      "name": "worker2",
      "workspace": "/srv/two",
      "enabled": "yes",
      "restart": { "maxRestarts": -1 },
    },
    {
      "name": "api",
      "workspace": "/srv/three",
      "colour": "blue",
    },
    {
      "name": "api-copy",
      "workspace": "~/src/api/",
      "sandbox": "podman",
      "port": 8801,
    },
  ],
}
`;
    const { error, problems } = problemsOf(text);
    assert.deepEqual(
      problems.map((p) => p.at),
      [
        "workers[1].enabled",
        "workers[1].restart.maxRestarts",
        "workers[2].name",
        "workers[2].colour",
        "workers[3].workspace",
        "workers[3].sandbox",
        "workers[3].port",
      ],
    );

    const enabled = problemAt(problems, "workers[1].enabled");
    assert.deepEqual({ line: enabled.line, column: enabled.column }, where(text, '"yes"'));
    assert.equal(enabled.message, 'expected true or false, found "yes"');

    const restarts = problemAt(problems, "workers[1].restart.maxRestarts");
    assert.deepEqual({ line: restarts.line, column: restarts.column }, where(text, "-1"));
    assert.equal(restarts.message, "expected a whole number of 0 or more, found -1");

    const name = problemAt(problems, "workers[2].name");
    assert.deepEqual({ line: name.line, column: name.column }, where(text, '"api"', 2));
    assert.match(name.message, /found "api", already the name of the worker at line 3$/);

    const unknown = problemAt(problems, "workers[2].colour");
    assert.deepEqual({ line: unknown.line, column: unknown.column }, where(text, '"colour"'));
    assert.match(
      unknown.message,
      /^unknown key "colour" \(expected one of: name, workspace, enabled, sandbox,/,
    );
    assert.match(unknown.message, /restart\)$/);

    const workspace = problemAt(problems, "workers[3].workspace");
    assert.deepEqual({ line: workspace.line, column: workspace.column }, where(text, '"~/src/api/"'));
    assert.match(
      workspace.message,
      /found \/home\/ada\/src\/api, already the workspace of worker "api" \(line 3\): one runtime per workspace/,
    );

    const sandbox = problemAt(problems, "workers[3].sandbox");
    assert.deepEqual({ line: sandbox.line, column: sandbox.column }, where(text, '"podman"'));
    assert.equal(sandbox.message, 'expected one of none, auto, docker, container, swarm, found "podman"');

    const port = problemAt(problems, "workers[3].port");
    assert.deepEqual({ line: port.line, column: port.column }, where(text, "8801", 2));
    assert.match(port.message, /found 8801, already the port of worker "api" \(line 3\)$/);

    // The message carries every problem, one per line, after a count.
    const lines = error.message.split("\n");
    assert.equal(lines[0], `${FILE}: 7 problems`);
    assert.equal(lines.length, 8);
    assert.equal(
      lines[1],
      `${FILE}:${enabled.line}:${enabled.column}: workers[1].enabled: ${enabled.message}`,
    );
  });

  it("lets a disabled worker share a workspace, and compares names ignoring case", () => {
    const text = `{ "workers": [
      { "name": "Api", "workspace": "/w" },
      { "name": "other", "workspace": "/w", "enabled": false },
      { "name": "API", "workspace": "/x" },
    ] }`;
    const { problems } = problemsOf(text);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.at, "workers[2].name");
    assert.equal(
      problems[0]?.message,
      'expected a name no other worker has, found "API", already the name of the worker at line 2 (names are compared ignoring case)',
    );
  });

  it("refuses sandbox limits and an image with sandbox none, from the worker or the defaults", () => {
    const text = `{
  "defaults": { "memory": "1g" },
  "workers": [
    { "name": "a", "workspace": "/a", "cpus": 1 },
    { "name": "b", "workspace": "/b", "sandbox": "none", "image": "img:1" },
    { "name": "c", "workspace": "/c", "sandbox": "docker", "cpus": 1 },
  ],
}`;
    const { problems } = problemsOf(text);
    // A key from the defaults is reported at the worker's sandbox, or at the worker when it has none.
    assert.deepEqual(
      problems.map((p) => [p.at, p.line, p.column]),
      [
        ["workers[0].memory", 4, 5],
        ["workers[0].cpus", ...Object.values(where(text, "1 }"))],
        ["workers[1].memory", ...Object.values(where(text, '"none"'))],
        ["workers[1].image", ...Object.values(where(text, '"img:1"'))],
      ],
    );
    assert.equal(
      problemAt(problems, "workers[0].cpus").message,
      'cpus limits a sandbox, but its sandbox is "none" (the default): host processes, which nothing limits or isolates; remove cpus or set sandbox to docker, container or auto',
    );
    assert.match(
      problemAt(problems, "workers[1].memory").message,
      /^memory limits a sandbox \(from defaults\), but its sandbox is "none":/,
    );
  });

  it("checks values with the same rules as the start flags", () => {
    const text = `{ "workers": [ {
      "name": "-bad", "workspace": "~bob/x", "sandbox": "docker",
      "memory": "12", "pidsLimit": 10, "port": 70000, "env": ["OK", "HOME=/x", "1X"],
      "mounts": ["/data"], "manifest": "ftp://x/m.json", "healthTimeout": "soon",
      "restart": { "backoff": { "jitter": 2, "max": "100ms" }, "window": 0 },
    } ], "stopTimeout": "0s" }`;
    const { problems } = problemsOf(text);
    const messages = Object.fromEntries(problems.map((p) => [p.at, p.message]));
    assert.deepEqual(messages, {
      "workers[0].name":
        "expected a name of 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit, found \"-bad\"",
      "workers[0].workspace":
        'expected a path, found "~bob/x": only "~" and "~/..." are expanded, not another user\'s home',
      "workers[0].memory": 'expected a size of at least 256m (bytes, or with k, m, g, t), found "12"',
      "workers[0].pidsLimit": "expected a whole number of at least 64, found 10",
      "workers[0].port": "expected a TCP port (1-65535, digits only), found 70000",
      "workers[0].env[1]":
        'expected KEY (this shell\'s value) or KEY=VALUE, found "HOME=/x": HOME is reserved (the runtime sets it to its own persisted directory)',
      "workers[0].env[2]":
        'expected KEY (this shell\'s value) or KEY=VALUE, found "1X": "1X" is not a valid environment variable name',
      "workers[0].mounts[0]":
        'expected a mount hostPath:subpath[:ro|rw], found "/data": missing container subpath',
      "workers[0].manifest":
        'expected an http(s) URL or a path to a manifest file, found "ftp://x/m.json": only http and https URLs are loaded',
      "workers[0].healthTimeout":
        'expected a duration above zero: seconds as a number, or a string like "500ms", "5s", "10m", "1h", found "soon"',
      "workers[0].restart.backoff.jitter": "expected a number from 0 to 1, found 2",
      "workers[0].restart.backoff.max":
        "expected restart.backoff.max of at least restart.backoff.initial (1s), found 100ms",
      "workers[0].restart.window":
        'expected a duration above zero: seconds as a number, or a string like "500ms", "5s", "10m", "1h", found 0',
      stopTimeout:
        'expected a duration above zero: seconds as a number, or a string like "500ms", "5s", "10m", "1h", found "0s"',
    });
    const env = problemAt(problems, "workers[0].env[2]");
    assert.deepEqual({ line: env.line, column: env.column }, where(text, '"1X"'));
  });

  it("reports a missing key at the object, and keys defaults cannot have", () => {
    const text = `{
  "defaults": { "name": "x", "sandbox": "docker" },
  "workers": [
    { "workspace": "/w" },
  ],
  "extra": 1,
}`;
    const { problems } = problemsOf(text);
    assert.deepEqual(problems, [
      {
        file: FILE,
        line: 2,
        column: 17,
        at: "defaults.name",
        message: '"name" cannot be a default: each worker names itself',
      },
      { file: FILE, line: 4, column: 5, at: "workers[0].name", message: 'missing the required key "name"' },
      {
        file: FILE,
        line: 6,
        column: 3,
        at: "extra",
        message: 'unknown key "extra" (expected one of: heartbeatInterval, stopTimeout, defaults, workers)',
      },
    ]);
    assert.deepEqual(
      problemsOf('{ "heartbeatInterval": "5s" }').problems.map((p) => [p.at, p.message]),
      [["workers", 'missing the required key "workers"']],
    );
    assert.deepEqual(
      problemsOf("[]").problems.map((p) => [p.at, p.line, p.column, p.message]),
      [["(top level)", 1, 1, "expected an object, found an empty list"]],
    );
  });
});

describe("loadWorkersConfig", () => {
  it("reads the file and resolves paths against its directory", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-workers-"));
    const file = path.join(dir, "workers.json");
    writeFileSync(file, '{ "workers": [ { "name": "a", "workspace": "./ws" } ] }');
    const config = await loadWorkersConfig(file);
    assert.equal(config.file, file);
    assert.equal(config.workers[0]?.workspace, path.join(dir, "ws"));
  });

  it("says where it looked when the file is missing (exit 2, with the init hint)", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-workers-"));
    const file = path.join(dir, "nope.json");
    await assert.rejects(loadWorkersConfig(file), (error: unknown) => {
      assert.ok(error instanceof WorkersConfigMissingError);
      assert.equal(error.code, "workers_config_missing");
      assert.equal(error.exitCode, 2);
      assert.equal(error.file, file);
      assert.equal(error.message, `no workers config at ${file}`);
      assert.match(error.hint ?? "", /openwork workers init/);
      assert.match(error.hint ?? "", /--config FILE or OPENWORK_WORKERS_CONFIG/);
      return true;
    });
  });

  it("names the file when it cannot be read", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-workers-"));
    await assert.rejects(loadWorkersConfig(dir), (error: unknown) => {
      assert.ok(error instanceof OpenworkError);
      assert.ok(!(error instanceof WorkersConfigMissingError));
      assert.equal(error.code, "workers_config_unreadable");
      assert.match(error.message, new RegExp(`cannot read the workers config ${dir}: .*EISDIR`));
      return true;
    });
  });
});

describe("workersTemplate", () => {
  it("parses, with one enabled worker on the host", () => {
    const config = parse(workersTemplate());
    assert.equal(config.heartbeatIntervalMs, 5000);
    assert.equal(config.stopTimeoutMs, 30_000);
    const enabled = config.workers.filter((worker) => worker.enabled);
    assert.equal(enabled.length, 1);
    assert.equal(enabled[0]?.name, "my-project");
    assert.equal(enabled[0]?.workspace, "/home/ada/src/my-project");
    assert.equal(enabled[0]?.start.sandbox, "none");
  });

  it("takes the workspace to fill in, and its commented-out Docker worker parses once uncommented", () => {
    assert.equal(parse(workersTemplate({ workspace: "/srv/here" })).workers[0]?.workspace, "/srv/here");
    const uncommented = workersTemplate().replace(/^ {4}\/\/ ([{}"]|\s+")/gm, "    $1");
    const docker = parse(uncommented).workers.find((worker) => worker.name === "api");
    assert.ok(docker, "the Docker example worker is in the template");
    assert.equal(docker.start.sandbox, "docker");
    assert.equal(docker.start.memoryBytes, 2 * 1024 ** 3);
    assert.equal(docker.restart.maxMemoryBytes, 1500 * 1024 ** 2);
  });
});

describe("sameWorker", () => {
  const text = '{ "workers": [ { "name": "a", "workspace": "/w", "env": ["A=1"] } ] }';

  it("ignores where the worker is in the file", () => {
    const [first] = parse(text).workers;
    const [moved] = parse(`\n\n\n${text}`).workers;
    assert.ok(first && moved);
    assert.equal(first.line, 1);
    assert.equal(moved.line, 4);
    assert.equal(sameWorker(first, moved), true);
  });

  it("sees any other change", () => {
    const [first] = parse(text).workers;
    const [changed] = parse(text.replace('"A=1"', '"A=2"')).workers;
    const [restart] = parse(text.replace("}", ', "restart": { "maxRestarts": 6 } }')).workers;
    assert.ok(first && changed && restart);
    assert.equal(sameWorker(first, changed), false);
    assert.equal(sameWorker(first, restart), false);
  });
});

describe("parseDuration", () => {
  it("reads seconds and unit strings to milliseconds", () => {
    assert.equal(parseDuration(5), 5000);
    assert.equal(parseDuration(0.25), 250);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("5s"), 5000);
    assert.equal(parseDuration("7"), 7000);
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    assert.equal(parseDuration(" 2 M "), 120_000);
    assert.equal(parseDuration(0), 0);
  });

  it("is undefined for anything else", () => {
    for (const value of [-1, "-1s", "5 minutes", "1d", "", "s", null, true, [5], {}, Number.NaN, Infinity]) {
      assert.equal(parseDuration(value), undefined, `parseDuration(${JSON.stringify(value)})`);
    }
  });
});

describe("parseWorkersConfig: workers on other engines", () => {
  it("dockerHost, publishAddress, ship and uploadWorkspace reach start as its flags would", async () => {
    const { startOptionsFor } = await import("../../src/workers/options.js");
    const config = parse(`{
      "workers": [
        { "name": "far", "workspace": "~/repo", "dockerHost": "tcp://10.0.0.5:2376",
          "publishAddress": "10.0.0.5", "uploadWorkspace": true },
        { "name": "there", "workspace": "engine:/srv/repo", "dockerHost": "big-box", "publishAddress": "10.0.0.6" },
        { "name": "here", "workspace": "./w", "ship": true },
        { "name": "swarmed", "workspace": "engine:/srv/s", "sandbox": "swarm", "dockerHost": "unix:///m.sock",
          "registry": "10.0.0.1:5000", "constraints": ["node.hostname==n2"], "allowRemote": true }
      ]
    }`);
    const [far, there, here] = config.workers;
    const context = { registry: {} as never, log: silentLogger() };
    const farStart = startOptionsFor(far!, context);
    assert.equal(farStart.workspace, "");
    assert.equal(farStart.workspaceUpload, "/home/ada/repo");
    assert.equal(farStart.dockerHost, "tcp://10.0.0.5:2376");
    assert.equal(farStart.publishAddress, "10.0.0.5");
    const thereStart = startOptionsFor(there!, context);
    assert.equal(thereStart.workspace, "engine:/srv/repo", "an engine path is kept as written");
    assert.equal(thereStart.dockerHost, "big-box");
    assert.equal(thereStart.workspaceUpload, undefined);
    assert.equal(startOptionsFor(here!, context).ship, true);
    const swarmed = startOptionsFor(config.workers[3]!, context);
    assert.equal(swarmed.sandbox, "swarm");
    assert.equal(swarmed.imageRegistry, "10.0.0.1:5000");
    assert.deepEqual(swarmed.constraints, ["node.hostname==n2"]);
    assert.equal(swarmed.allowRemote, true);
  });

  it("a bad endpoint, address or engine path is reported where it is; publishAddress needs Docker", () => {
    const text = `{
  "workers": [
    { "name": "a", "workspace": "/w/a", "dockerHost": "gopher://x" },
    { "name": "b", "workspace": "/w/b", "dockerHost": "tcp://10.0.0.5:2376", "publishAddress": "box.example" },
    { "name": "c", "workspace": "engine:relative", "ship": true },
    { "name": "d", "workspace": "/w/d", "publishAddress": "10.0.0.5" },
    { "name": "e", "workspace": "engine:/w/e", "sandbox": "swarm", "registry": "http://r/x", "constraints": ["node.hostname"] }
  ]
}`;
    const { problems } = problemsOf(text);
    assert.match(problemAt(problems, "workers[0].dockerHost").message, /Docker endpoint/);
    assert.match(problemAt(problems, "workers[1].publishAddress").message, /IP address/);
    assert.match(problemAt(problems, "workers[2].workspace").message, /engine:\/absolute\/path/);
    assert.match(problemAt(problems, "workers[3].publishAddress").message, /Docker sandbox/);
    assert.match(problemAt(problems, "workers[4].registry").message, /HOST\[:PORT\]/);
    assert.match(problemAt(problems, "workers[4].constraints[0]").message, /Swarm constraint/);
  });
});
