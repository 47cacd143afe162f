import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { execa } from "execa";
import { packageRoot } from "../../src/config/package-root.js";
import { runCli } from "../helpers/cli.js";

test("--help and --version exit 0 and describe the program", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.exitCode, 0);
  for (const word of ["sidecars", "image", "--json", "--log-format", "--verbose", "Exit codes"]) {
    assert.ok(help.stdout.includes(word), `--help mentions ${word}`);
  }
  const version = await runCli(["--version"]);
  assert.equal(version.exitCode, 0);
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as {
    version: string;
  };
  assert.equal(version.stdout.trim(), pkg.version);
});

test("every command has real help text", async () => {
  for (const command of [
    ["sidecars"],
    ["sidecars", "list"],
    ["sidecars", "fetch"],
    ["sidecars", "verify"],
    ["sidecars", "manifest"],
    ["image"],
    ["image", "build"],
  ]) {
    const result = await runCli([...command, "--help"]);
    assert.equal(result.exitCode, 0, command.join(" "));
    assert.match(result.stdout, /Usage: openwork /);
    const description = result.stdout.split("\n").slice(1).join("\n").trim();
    assert.ok(description.length > 40, `${command.join(" ")} --help describes the command`);
  }
});

test("usage errors exit 2 with one line and no stack trace", async () => {
  const cases = [
    ["bogus"],
    ["sidecars", "list", "--target", "sparc-x64"],
    ["--log-format", "xml", "sidecars", "list"],
    ["sidecars", "list", "--nope"],
    // a port is digits: no exponent, no hex, no sign
    ["start", "--port", "1e3"],
    ["start", "--port", "0x50"],
    ["start", "--port", "+80"],
    ["start", "--port", "65536"],
    ["logs", "--tail", "1e3"],
    ["runtime", "upgrade", "--manifest", "m.json", "--components", "opencode,bogus"],
    // a sandbox's workspace passes the mount rules; limits are a sandbox's
    ["start", "--sandbox", "docker", "--workspace", "/"],
    ["start", "--sandbox", "docker", "--workspace", "/etc"],
    ["start", "--sandbox", "docker", "--workspace", os.homedir()],
    ["start", "--sandbox", "docker", "--memory", "lots"],
    ["start", "--cpus", "1"],
  ];
  for (const args of cases) {
    const result = await runCli(args);
    assert.equal(result.exitCode, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(
      result.stderr.trim().split("\n").length,
      1,
      `one line for ${args.join(" ")}: ${result.stderr}`,
    );
    assert.match(result.stderr, /^openwork: /);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  }
});

test("sidecars list --json: one JSON document on stdout; the opencode row reports the binary's own version", async () => {
  const result = await runCli(["--json", "sidecars", "list"]);
  assert.equal(result.exitCode, 0, result.stderr);
  const doc = JSON.parse(result.stdout) as {
    sidecars: Array<{
      name: string;
      status: string;
      path?: string;
      version?: string;
      sha256?: string;
      size?: number;
    }>;
  };
  const opencode = doc.sidecars.find((row) => row.name === "opencode");
  assert.ok(opencode?.path, "opencode has a path");
  assert.equal(opencode.status, "ok");
  const own = String((await execa(opencode.path, ["--version"])).stdout).trim();
  assert.equal(opencode.version, own);
  assert.match(opencode.sha256 ?? "", /^[0-9a-f]{64}$/);
  assert.ok((opencode.size ?? 0) > 1_000_000);
  const server = doc.sidecars.find((row) => row.name === "openwork-server");
  assert.equal(server?.status, "ok");
});

test("--json on every command that has no run to act on: stdout is exactly one JSON document", async () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "openwork-json-"));
  const cases: string[][] = [
    ["--json", "status", "--all"],
    ["--json", "status", "--workspace", home],
    ["--json", "stop", "--all"],
    ["--json", "stop", "--orphans"],
    ["--json", "sidecars", "list"],
    ["--json", "sidecars", "manifest"],
  ];
  for (const args of cases) {
    const result = await runCli(args, { home });
    assert.ok([0, 3].includes(result.exitCode), `${args.join(" ")}: ${result.stderr}`);
    assert.doesNotThrow(
      () => JSON.parse(result.stdout),
      `${args.join(" ")} printed: ${result.stdout.slice(0, 200)}`,
    );
  }
  const missing = await runCli(["--json", "check", "--workspace", home], { home });
  assert.equal(missing.exitCode, 3);
  assert.equal(missing.stdout, "", "an error prints nothing on stdout");
});
