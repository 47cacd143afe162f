import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  appleContainerName,
  appleFeatures,
  buildRunArgs,
  decodeAppleLabel,
  encodeAppleLabel,
  parseAppleContainerList,
  parseAppleVersion,
} from "../../src/sandbox/apple/index.js";
import type { LaunchSpec } from "../../src/sandbox/backend.js";

const SECRET = "s3cr3t-'$(touch /tmp/pwned)'-value";

function spec(overrides: Partial<LaunchSpec> = {}): LaunchSpec {
  return {
    runId: "run_01J9",
    image: "openwork-sandbox:abc",
    workspace: "/Users/me/project",
    persistDir: "/Users/me/.local/share/openwork/workspaces/w1/container/persist",
    limits: { cpus: 1.5, memoryBytes: 3 * 1024 ** 3, pids: 100 },
    runtimesDir: "/Users/me/.local/share/openwork/workspaces/w1/container/runtimes",
    mounts: [
      {
        hostPath: "/Users/me/data",
        containerPath: "/workspace/extra/data",
        readOnly: true,
        spec: "/Users/me/data:data",
      },
      {
        hostPath: "/Users/me/out",
        containerPath: "/workspace/extra/out",
        readOnly: false,
        spec: "/Users/me/out:out:rw",
      },
    ],
    command: ["sh", "/runtimes/0123456789abcdef/entrypoint.sh"],
    env: { OPENWORK_TOKEN: SECRET, OPENWORK_SERVER_PORT: "8787" },
    ports: [{ container: 8787, host: 41234, hostIp: "127.0.0.1" }],
    labels: { "openwork.run": "run_01J9", "openwork.workspace": "/Users/me/a=b%c" },
    user: "501:20",
    ...overrides,
  };
}

describe("version probe", () => {
  test("reads Apple's --version line", () => {
    assert.equal(parseAppleVersion("container CLI version 0.9.0 (build: release, commit: 1a2b3c4)"), "0.9.0");
    assert.equal(
      parseAppleVersion("container CLI version 1.0.0-rc.1 (build: debug, commit: unspecified)\n"),
      "1.0.0-rc.1",
    );
    assert.equal(parseAppleVersion("container: command not found"), undefined);
    assert.equal(parseAppleVersion("container CLI version banana"), undefined);
  });

  test("features follow DESIGN §5: -p ≥ 0.3.0, --read-only ≥ 0.8.0, --init ≥ 0.10.0", () => {
    const row = (v: string) => {
      const f = appleFeatures(v);
      return [f.publish, f.readOnly, f.init];
    };
    assert.deepEqual(row("0.2.9"), [false, false, false]);
    assert.deepEqual(row("0.3.0"), [true, false, false]);
    assert.deepEqual(row("0.7.1"), [true, false, false]);
    assert.deepEqual(row("0.8.0"), [true, true, false]);
    assert.deepEqual(row("0.9.0"), [true, true, false]);
    assert.deepEqual(row("0.10.0"), [true, true, true]);
    assert.deepEqual(row("1.0.0"), [true, true, true]);
  });
});

describe("run argv", () => {
  test("1.0.0: the full command line, secrets by name only", () => {
    const command = buildRunArgs(spec(), appleFeatures("1.0.0"));
    assert.equal(command.name, "openwork-run_01J9");
    assert.deepEqual(command.args, [
      "run",
      "--detach",
      "--name",
      "openwork-run_01J9",
      "--init",
      "--label",
      "openwork.run=run_01J9",
      "--label",
      "openwork.workspace=/Users/me/a%3Db%25c",
      "--env",
      "OPENWORK_TOKEN",
      "--env",
      "OPENWORK_SERVER_PORT",
      "--publish",
      "127.0.0.1:41234:8787/tcp",
      "--mount",
      "type=bind,source=/Users/me/project,target=/workspace",
      "--mount",
      "type=bind,source=/Users/me/.local/share/openwork/workspaces/w1/container/persist,target=/persist",
      "--mount",
      "type=bind,source=/Users/me/.local/share/openwork/workspaces/w1/container/runtimes,target=/runtimes,readonly",
      "--mount",
      "type=bind,source=/Users/me/data,target=/workspace/extra/data,readonly",
      "--mount",
      "type=bind,source=/Users/me/out,target=/workspace/extra/out",
      "--user",
      "501:20",
      // whole CPUs (1.5 rounds up) and MiB; Apple's CLI has no process limit
      "--cpus",
      "2",
      "--memory",
      "3072M",
      "--workdir",
      "/persist",
      "openwork-sandbox:abc",
      "sh",
      "/runtimes/0123456789abcdef/entrypoint.sh",
    ]);
    assert.deepEqual(command.env, { OPENWORK_TOKEN: SECRET, OPENWORK_SERVER_PORT: "8787" });
    assert.ok(!command.args.some((arg) => arg.includes("s3cr3t")), "no secret on the command line");
  });

  test("0.9.0 has no --init; a read-only root is asked with --read-only", () => {
    const args = buildRunArgs(spec(), appleFeatures("0.9.0"), { readOnlyRoot: true }).args;
    assert.ok(!args.includes("--init"));
    assert.ok(args.includes("--read-only"));
  });

  test("remote access still names its host IP explicitly", () => {
    const args = buildRunArgs(
      spec({ ports: [{ container: 1, host: 2, hostIp: "0.0.0.0" }] }),
      appleFeatures("1.0.0"),
    ).args;
    assert.ok(args.includes("0.0.0.0:2:1/tcp"));
  });

  test("refusals: too old for -p or --read-only, IPv6, unsayable paths and labels, bad env names", () => {
    assert.throws(
      () => buildRunArgs(spec(), appleFeatures("0.2.0")),
      /cannot publish ports \(-p needs 0\.3\.0\)/,
    );
    assert.throws(
      () => buildRunArgs(spec(), appleFeatures("0.7.1"), { readOnlyRoot: true }),
      /no --read-only \(needs 0\.8\.0\)/,
    );
    assert.throws(
      () => buildRunArgs(spec({ ports: [{ container: 1, host: 2, hostIp: "::1" }] }), appleFeatures("1.0.0")),
      /IPv6/,
    );
    assert.throws(
      () => buildRunArgs(spec({ workspace: "/Users/me/a,b" }), appleFeatures("1.0.0")),
      /splits on "," and "="/,
    );
    assert.throws(
      () => buildRunArgs(spec({ labels: { "a=b": "c" } }), appleFeatures("1.0.0")),
      /label key "a=b"/,
    );
    assert.throws(
      () => buildRunArgs(spec({ env: { "BAD-NAME": "x" } }), appleFeatures("1.0.0")),
      /"BAD-NAME" is not valid/,
    );
    assert.throws(() => buildRunArgs(spec({ command: [] }), appleFeatures("1.0.0")), /no command/);
  });

  test("container names stay within what Apple accepts; labels round-trip", () => {
    assert.equal(appleContainerName("../weird id!"), "openwork-weird-id-");
    for (const value of ["", "plain", "a=b", "100%", "%3D", "=%=", "/path/with=eq%25"])
      assert.equal(decodeAppleLabel(encodeAppleLabel(value)), value);
    assert.ok(!encodeAppleLabel("a=b=c").includes("="));
  });
});

// The three layouts of `inspect` / `ls --format json`, as Swift's JSONEncoder writes them ("/" escaped, dates as
// seconds since 2001-01-01), with an environment that must never be read.
const configuration = (id: string, labels: Record<string, string>) => ({
  id,
  image: { reference: "docker.io/library/debian:bookworm", descriptor: { digest: "sha256:abc" } },
  labels,
  initProcess: { executable: "sh", arguments: [], environment: [`OPENWORK_TOKEN=${SECRET}`] },
});
const pre08 = JSON.stringify([
  {
    status: "running",
    configuration: configuration("a", { "openwork.run": "r1", "openwork.workspace": "/x%3Dy" }),
    networks: [{ network: "default", hostname: "a", address: "192.168.64.3/24", gateway: "192.168.64.1" }],
  },
  { status: "stopped", configuration: configuration("b", {}), networks: [] },
]).replace(/\//g, "\\/");
const v08 = JSON.stringify([
  {
    status: "stopping",
    configuration: configuration("c", { k: "v" }),
    networks: [
      {
        network: "default",
        hostname: "c",
        ipv4Address: "192.168.64.4/24",
        ipv4Gateway: "192.168.64.1",
        macAddress: "x",
      },
    ],
  },
]).replace(/\//g, "\\/");
const v10 = JSON.stringify([
  {
    status: {
      state: "running",
      networks: [{ network: "default", ipv4Address: "192.168.64.5/24", ipv4Gateway: "192.168.64.1" }],
      startedDate: 785_000_000.5,
    },
    configuration: configuration("d", { "openwork.run": "r2" }),
  },
  { status: { state: "stopped", networks: [] }, configuration: configuration("e", {}) },
]).replace(/\//g, "\\/");

describe("inspect / ls JSON", () => {
  test("before 0.8.0: status string, networks[].address/gateway", () => {
    const [a, b] = parseAppleContainerList(pre08);
    assert.equal(a?.schema, "pre-0.8");
    assert.equal(a?.state, "running");
    assert.deepEqual(a?.networks, [
      { network: "default", address: "192.168.64.3/24", gateway: "192.168.64.1" },
    ]);
    assert.deepEqual(a?.labels, { "openwork.run": "r1", "openwork.workspace": "/x=y" });
    assert.equal(a?.image, "docker.io/library/debian:bookworm");
    assert.equal(b?.state, "exited");
    assert.equal(b?.status, "stopped");
  });

  test("0.8.0: networks[].ipv4Address/ipv4Gateway; stopping still counts as running", () => {
    const [c] = parseAppleContainerList(v08);
    assert.equal(c?.schema, "0.8");
    assert.equal(c?.state, "running");
    assert.deepEqual(c?.networks, [
      { network: "default", address: "192.168.64.4/24", gateway: "192.168.64.1" },
    ]);
  });

  test("1.0.0: status {state, networks, startedDate} with Swift reference-date seconds", () => {
    const [d, e] = parseAppleContainerList(v10);
    assert.equal(d?.schema, "1.0");
    assert.equal(d?.state, "running");
    assert.equal(d?.startedAt, new Date(Date.UTC(2001, 0, 1) + 785_000_000_500).toISOString());
    assert.deepEqual(d?.networks, [
      { network: "default", address: "192.168.64.5/24", gateway: "192.168.64.1" },
    ]);
    assert.equal(e?.state, "exited");
    assert.equal(e?.startedAt, undefined);
  });

  test("an ISO date string is read too; no environment value is kept", () => {
    const [x] = parseAppleContainerList(
      JSON.stringify([
        {
          status: { state: "running", startedDate: "2026-11-22T05:00:00Z" },
          configuration: configuration("x", {}),
        },
      ]),
    );
    assert.equal(x?.startedAt, "2026-11-22T05:00:00.000Z");
    assert.ok(!JSON.stringify(x).includes("s3cr3t"));
  });

  test("garbage is an error that says what it read", () => {
    assert.deepEqual(parseAppleContainerList("\n"), []);
    assert.throws(
      () => parseAppleContainerList("Error: something"),
      /cannot read `container ls --format json` output/,
    );
    assert.throws(() => parseAppleContainerList("{}"), /expected a JSON array/);
    assert.throws(() => parseAppleContainerList('[{"status":"running"}]'), /no configuration\.id/);
  });
});
