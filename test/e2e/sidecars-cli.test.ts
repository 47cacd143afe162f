import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { validateManifest } from "../../src/manifest/parse.js";
import { stageRuntime } from "../../src/staging/stage.js";
import { BlobStore } from "../../src/store/store.js";
import { runCli } from "../helpers/cli.js";
import { publishFakeRuntime } from "../helpers/fake-sidecars.js";
import { Mirror } from "../helpers/mirror.js";

let mirror: Mirror;
before(async () => {
  mirror = await Mirror.start();
});
after(async () => {
  await mirror.close();
});

function home(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-cli-home-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Row {
  name: string;
  target: string;
  status: string;
  source: string;
  path?: string;
  size?: number;
  sha256?: string;
  version?: string | null;
}

test("fetch --manifest downloads from the npm registry npm is configured with and from URLs; verify and list agree", async (t) => {
  const dir = home(t);
  const { manifest } = await publishFakeRuntime(mirror);
  const manifestFile = path.join(dir, "manifest.jsonc");
  writeFileSync(manifestFile, `// a test runtime\n${JSON.stringify(manifest, null, 2)}`);
  const env = { npm_config_registry: mirror.registry };

  const fetched = await runCli(
    ["--json", "sidecars", "fetch", "--manifest", manifestFile, "--target", "linux-x64"],
    { home: dir, env },
  );
  assert.equal(fetched.exitCode, 0, fetched.stderr);
  const rows = (JSON.parse(fetched.stdout) as { sidecars: Array<Row & { bytesDownloaded: number }> })
    .sidecars;
  assert.deepEqual(
    rows.map((r) => [r.name, r.source]),
    [
      ["opencode", "npm"],
      ["openwork-server", "url"],
      ["node", "url"],
    ],
  );
  assert.ok(rows.every((r) => r.path?.startsWith(path.join(dir, "store", "blobs"))));
  assert.match(fetched.stderr, /not bundled .* using the manifest's npm source/);

  const verified = await runCli(["--json", "sidecars", "verify", "--manifest", manifestFile], {
    home: dir,
    env,
  });
  assert.equal(verified.exitCode, 0, verified.stderr);
  assert.equal((JSON.parse(verified.stdout) as { ok: boolean }).ok, true);

  const listed = await runCli(["--json", "sidecars", "list", "--manifest", manifestFile], { home: dir, env });
  assert.equal(listed.exitCode, 0, listed.stderr);
  const listRows = (JSON.parse(listed.stdout) as { sidecars: Row[] }).sidecars;
  const opencode = listRows.find((r) => r.name === "opencode")!;
  for (const field of ["name", "target", "status", "path", "size", "sha256", "version"]) {
    assert.ok(field in opencode, `list keeps the ${field} field`);
  }
  assert.equal(opencode.status, "ok");
  assert.equal(opencode.version, "1.2.3", "the version the fake binary itself reports");

  // corrupt two store blobs: verify exits 1 and lists both
  for (const name of ["opencode", "node"])
    writeFileSync(rows.find((r) => r.name === name)!.path!, "tampered\n");
  const bad = await runCli(["--json", "sidecars", "verify", "--manifest", manifestFile], { home: dir, env });
  assert.equal(bad.exitCode, 1, bad.stderr);
  const report = JSON.parse(bad.stdout) as { ok: boolean; mismatches: Row[] };
  assert.equal(report.ok, false);
  assert.deepEqual(report.mismatches.map((m) => m.name).sort(), ["node", "opencode"]);
  assert.ok(report.mismatches.every((m) => m.status === "mismatch"));
});

test("verify --runtime refuses a tampered staged runtime, listing every mismatch with both hashes", async (t) => {
  const dir = home(t);
  const { manifest } = await publishFakeRuntime(mirror);
  const store = new BlobStore({ dir: path.join(dir, "store"), locksDir: path.join(dir, "locks") });
  const stagingRoot = path.join(dir, "persist");
  const staged = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: { progress: "off" },
  });
  const good = await runCli(["sidecars", "verify", "--runtime", staged.dir], { home: dir });
  assert.equal(good.exitCode, 0, good.stderr);
  assert.match(good.stdout, new RegExp(`runtime ${staged.runtimeId} verified`));

  writeFileSync(path.join(staged.dir, "opencode"), "#!/bin/sh\necho evil\n");
  writeFileSync(path.join(staged.dir, "openwork-server.mjs"), "evil");
  const bad = await runCli(["--json", "sidecars", "verify", "--runtime", staged.dir], { home: dir });
  assert.equal(bad.exitCode, 1);
  const report = JSON.parse(bad.stdout) as {
    ok: boolean;
    mismatches: Array<{ name: string; file: string; expectedSha256: string; actualSha256: string }>;
  };
  assert.equal(report.ok, false);
  assert.deepEqual(report.mismatches.map((m) => m.name).sort(), ["opencode", "openwork-server"]);
  for (const m of report.mismatches) {
    assert.match(m.expectedSha256, /^[0-9a-f]{64}$/);
    assert.match(m.actualSha256, /^[0-9a-f]{64}$/);
    assert.notEqual(m.expectedSha256, m.actualSha256);
    assert.ok(
      bad.stderr.includes(m.file) &&
        bad.stderr.includes(m.expectedSha256) &&
        bad.stderr.includes(m.actualSha256),
    );
  }
  // --full re-hashes everything and agrees
  const full = await runCli(["sidecars", "verify", "--full", "--runtime", staged.dir], { home: dir });
  assert.equal(full.exitCode, 1);
});

test("the default manifest is the bundled one for this host; sidecars manifest prints a valid Manifest v1", async (t) => {
  const dir = home(t);
  const result = await runCli(["--json", "sidecars", "manifest", "--target", "linux-x64"], { home: dir });
  assert.equal(result.exitCode, 0, result.stderr);
  const manifest = validateManifest(JSON.parse(result.stdout), "stdout");
  const opencode = manifest.sidecars.opencode.targets["linux-x64"]!;
  assert.equal(opencode.version, "1.18.34");
  assert.equal(opencode.source.type, "npm");
  assert.match(opencode.sha256 ?? "", /^[0-9a-f]{64}$/);
  assert.equal(manifest.sidecars["openwork-server"].targets["linux-x64"]?.source.type, "bundled");
  assert.equal(manifest.sidecars.node.targets["linux-x64"]?.version, "24.21.0");

  const fetched = await runCli(["--json", "sidecars", "fetch", "--source", "bundled"], { home: dir });
  assert.equal(fetched.exitCode, 0, fetched.stderr);
  const rows = (JSON.parse(fetched.stdout) as { sidecars: Row[] }).sidecars;
  assert.deepEqual(
    rows.map((r) => r.source),
    ["bundled", "bundled", "bundled"],
  );
  assert.equal(rows.find((r) => r.name === "opencode")?.sha256, opencode.sha256);
});

test("bad input exits 2 with one line", async (t) => {
  const dir = home(t);
  for (const args of [
    ["sidecars", "fetch", "--source", "ftp"],
    ["sidecars", "verify", "--manifest", "/nonexistent/m.json"],
    ["sidecars", "list", "--target", "sparc-x64"],
  ]) {
    const result = await runCli(args, { home: dir });
    assert.equal(result.exitCode, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
  }
  const manifestFile = path.join(dir, "bad.json");
  writeFileSync(manifestFile, JSON.stringify({ manifestVersion: 1, sidecars: {} }));
  const invalid = await runCli(["sidecars", "list", "--manifest", manifestFile], { home: dir });
  assert.equal(invalid.exitCode, 2);
  assert.match(invalid.stderr, new RegExp(`manifest ${manifestFile} is invalid: .*runtimeVersion`));
});
