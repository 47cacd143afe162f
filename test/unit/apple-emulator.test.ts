import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { AppleContainerBackend } from "../../src/sandbox/apple/index.js";
import { emulator, emulatorEnv } from "../helpers/apple-emulator.js";

// Every case here is refused before the emulator would touch the Docker engine: no engine needed.
const scratch = mkdtempSync(path.join(os.tmpdir(), "openwork-apple-emu-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const aFile = path.join(scratch, "file.txt");
writeFileSync(aFile, "x");
const aDir = path.join(scratch, "dir");
mkdirSync(aDir);

function assertUsage(result: { exitCode: number; stderr: string }, error: string, usage: string): void {
  assert.equal(result.exitCode, 64, result.stderr);
  const lines = result.stderr.split("\n");
  assert.equal(lines[0], `Error: ${error}`);
  assert.ok(lines[1]?.startsWith(`Usage: ${usage}`), lines[1]);
  assert.match(lines[2] ?? "", /^ {2}See 'container( [a-z ]+)? --help' for more information\.$/);
}

describe("emulator: grammar", () => {
  test("--version prints Apple's line for the selected version", async () => {
    for (const v of ["0.7.1", "0.9.0", "1.0.0"]) {
      const r = await emulator(["--version"], { OPENWORK_EMULATED_APPLE_VERSION: v });
      assert.equal(r.exitCode, 0);
      assert.equal(r.stdout, `container CLI version ${v} (build: release, commit: unspecified)`);
    }
  });

  test("ls has no --filter", async () => {
    assertUsage(
      await emulator(["ls", "--filter", "label=a=b"]),
      "Unknown option '--filter'",
      "container list [--all]",
    );
  });

  test("ls --format takes json or table only", async () => {
    assertUsage(
      await emulator(["ls", "--format", "yaml"]),
      "The value 'yaml' is invalid for '--format <format>'",
      "container list",
    );
    assertUsage(
      await emulator(["ls", "--format"]),
      "Missing value for '--format <format>'",
      "container list",
    );
  });

  test("ls takes no arguments", async () => {
    assertUsage(await emulator(["ls", "extra"]), "Unexpected argument 'extra'", "container list");
  });

  test("-p/--publish does not exist before 0.3.0", async () => {
    assertUsage(
      await emulator(["run", "-d", "-p", "127.0.0.1:1:1", "img"], {
        OPENWORK_EMULATED_APPLE_VERSION: "0.2.0",
      }),
      "Unknown option '-p'",
      "container run",
    );
  });

  test("--read-only does not exist before 0.8.0, --init before 0.10.0", async () => {
    assertUsage(
      await emulator(["run", "-d", "--read-only", "img"], { OPENWORK_EMULATED_APPLE_VERSION: "0.7.1" }),
      "Unknown option '--read-only'",
      "container run",
    );
    assertUsage(
      await emulator(["run", "-d", "--init", "img"], { OPENWORK_EMULATED_APPLE_VERSION: "0.9.0" }),
      "Unknown option '--init'",
      "container run",
    );
  });

  test("docker-only flags are unknown", async () => {
    assertUsage(
      await emulator(["run", "-d", "--privileged", "img"]),
      "Unknown option '--privileged'",
      "container run",
    );
    assertUsage(await emulator(["rm", "--volumes", "x"]), "Unknown option '--volumes'", "container delete");
    assertUsage(
      await emulator(["stop", "--timeout", "3", "x"]),
      "Unknown option '--timeout'",
      "container stop",
    );
  });

  test("integer options refuse non-integers; required arguments are required", async () => {
    assertUsage(
      await emulator(["logs", "-n", "ten", "x"]),
      "The value 'ten' is invalid for '-n <n>'",
      "container logs",
    );
    assertUsage(
      await emulator(["stop", "-t", "soon", "x"]),
      "The value 'soon' is invalid for '-t <time>'",
      "container stop",
    );
    assertUsage(await emulator(["logs"]), "Missing expected argument '<container-id>'", "container logs");
    assertUsage(
      await emulator(["inspect"]),
      "Missing expected argument '<container-ids> ...'",
      "container inspect",
    );
    assertUsage(
      await emulator(["run", "-d"]),
      "Missing expected argument '<image> <arguments> ...'",
      "container run",
    );
    assertUsage(await emulator(["logs", "a", "b"]), "Unexpected argument 'b'", "container logs");
  });

  test("unknown subcommands are usage errors; Apple's unemulated ones say so", async () => {
    assertUsage(await emulator(["frobnicate"]), "Unexpected argument 'frobnicate'", "container [--debug]");
    const exec = await emulator(["exec", "x", "sh"]);
    assert.equal(exec.exitCode, 70);
    assert.match(exec.stderr, /`container exec` is Apple's, but this emulator does not carry it out/);
    const attached = await emulator(["run", "img"]);
    assert.equal(attached.exitCode, 70);
  });

  test("--mount type=bind takes directories only, split on ',' and '='", async () => {
    const file = await emulator(["run", "-d", "--mount", `type=bind,source=${aFile},target=/x`, "img"]);
    assert.equal(file.exitCode, 1);
    assert.equal(file.stderr.trim(), `Error: invalidArgument: "path '${aFile}' is not a directory"`);
    const comma = await emulator(["run", "-d", "--mount", `type=bind,source=${aDir},b,target=/x`, "img"]);
    assert.equal(comma.exitCode, 1);
    assert.match(comma.stderr, /unknown directive b when parsing mount/);
    const missing = await emulator([
      "run",
      "-d",
      "--mount",
      `type=bind,source=${aDir}/nope,target=/x`,
      "img",
    ]);
    assert.match(missing.stderr, /does not exist/);
    const kind = await emulator(["run", "-d", "--mount", `type=nfs,source=${aDir},target=/x`, "img"]);
    assert.match(kind.stderr, /unsupported mount type nfs/);
  });

  test("labels and publish specs are checked like Apple's parser", async () => {
    const label = await emulator(["run", "-d", "--label", "a=b=c", "img"]);
    assert.equal(label.exitCode, 1);
    assert.match(label.stderr, /invalid label format a=b=c/);
    const publish = await emulator(["run", "-d", "-p", "127.0.0.1:http:80", "img"]);
    assert.match(publish.stderr, /invalid publish port/);
  });
});

describe("emulator: service", () => {
  test("system status exits 1 when the service is down, and other commands fail with the XPC error", async () => {
    const down = { OPENWORK_EMULATED_APPLE_SERVICE: "down" };
    const status = await emulator(["system", "status"], down);
    assert.equal(status.exitCode, 1);
    assert.equal(status.stdout, "apiserver is not running and not registered with launchd");
    const ls = await emulator(["ls", "--all", "--format", "json"], down);
    assert.equal(ls.exitCode, 1);
    assert.match(ls.stderr, /XPC connection error.*container system start/s);
  });

  test("system start prompts for a kernel without a terminal and fails; --enable-kernel-install does not", async () => {
    const state = mkdtempSync(path.join(scratch, "state-"));
    const env = {
      OPENWORK_EMULATED_APPLE_SERVICE: "down",
      OPENWORK_EMULATED_APPLE_KERNEL: "missing",
      OPENWORK_EMULATED_APPLE_STATE_DIR: state,
    };
    const prompted = await emulator(["system", "start"], env);
    assert.equal(prompted.exitCode, 1);
    assert.match(prompted.stdout, /Install the recommended default kernel\? \[Y\/n\]/);
    assert.equal((await emulator(["system", "status"], env)).exitCode, 1);
    const started = await emulator(["system", "start", "--enable-kernel-install"], env);
    assert.equal(started.exitCode, 0, started.stderr);
    assert.equal((await emulator(["system", "status"], env)).exitCode, 0);
  });
});

describe("Apple backend against the emulator (no engine needed)", () => {
  test("probe reports the version", async () => {
    const backend = new AppleContainerBackend({
      env: emulatorEnv({ OPENWORK_EMULATED_APPLE_VERSION: "0.9.0" }),
    });
    assert.deepEqual(await backend.probe(), { ok: true, version: "0.9.0" });
  });

  test("probe below the minimum says what is needed", async () => {
    const backend = new AppleContainerBackend({
      env: emulatorEnv({ OPENWORK_EMULATED_APPLE_VERSION: "0.2.0" }),
    });
    const probe = await backend.probe();
    assert.equal(probe.ok, false);
    assert.match(probe.ok ? "" : probe.reason, /0\.2\.0 is too old: openwork needs 0\.3\.0 or later/);
  });

  test("a stopped service is a clear error, or is started when asked", async () => {
    const state = mkdtempSync(path.join(scratch, "svc-"));
    const env = emulatorEnv({
      OPENWORK_EMULATED_APPLE_SERVICE: "down",
      OPENWORK_EMULATED_APPLE_KERNEL: "missing",
      OPENWORK_EMULATED_APPLE_STATE_DIR: state,
    });
    const refused = await new AppleContainerBackend({ env }).probe();
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? "" : refused.reason, /service is not running \(run `container system start`/);
    const started = await new AppleContainerBackend({ env, startService: true }).probe();
    assert.deepEqual(started, { ok: true, version: "1.0.0" });
  });

  test("a missing CLI says how to install it", async () => {
    const probe = await new AppleContainerBackend({ bin: path.join(scratch, "no-such-container") }).probe();
    assert.equal(probe.ok, false);
    assert.match(
      probe.ok ? "" : probe.reason,
      /Apple's container CLI was not found.*github\.com\/apple\/container/,
    );
  });

  test("a file cannot be bind-mounted: refused before anything runs", async () => {
    const backend = new AppleContainerBackend({ env: emulatorEnv() });
    await assert.rejects(
      backend.launch({
        runId: "file-mount",
        image: "img",
        workspace: aDir,
        persistDir: aDir,
        runtimesDir: aDir,
        mounts: [
          { hostPath: aFile, containerPath: "/workspace/extra/f", readOnly: true, spec: `${aFile}:f` },
        ],
        command: ["true"],
        env: {},
        ports: [],
        labels: {},
      }),
      /Apple's container mounts directories only, and .*file\.txt \(for \/workspace\/extra\/f\) is a file/,
    );
  });
});
