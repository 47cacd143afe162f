import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { UsageError } from "../../src/errors/errors.js";
import { parseCopyEnd } from "../../src/runs/copy.js";
import { namesRegistry } from "../../src/shipping/image.js";
import { shippedEntrypoint } from "../../src/shipping/runtime.js";
import { enginePath, engineTarget, parseGitWorkspace, publishing } from "../../src/shipping/target.js";
import { gitignoreFilter } from "../../src/shipping/upload.js";
import { volumeNames } from "../../src/shipping/volumes.js";

test(".gitignore files leave out what git would, each below its own directory; .git stays", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "openwork-gitignore-"));
  const make = (file: string) => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), "x");
  };
  writeFileSync(path.join(root, ".gitignore"), "# comment\nnode_modules/\n*.log\n!keep.log\n/build\n");
  mkdirSync(path.join(root, "pkg"), { recursive: true });
  writeFileSync(path.join(root, "pkg", ".gitignore"), "generated.ts\n");
  for (const file of [
    "node_modules/a/index.js",
    "debug.log",
    "keep.log",
    "build/out.js",
    "src/build/kept.js",
    "pkg/generated.ts",
    "generated.ts",
    ".git/HEAD",
    "src/main.ts",
  ])
    make(file);
  const skip = gitignoreFilter(root);
  const verdict = (file: string) => skip(path.join(root, file));
  assert.equal(verdict("node_modules"), true);
  assert.equal(verdict("debug.log"), true);
  assert.equal(verdict("keep.log"), false, "a negated pattern keeps the file");
  assert.equal(verdict("build"), true, "an anchored pattern matches at its own directory");
  assert.equal(verdict("src/build"), false, "…and nowhere below it");
  assert.equal(verdict("pkg/generated.ts"), true, "a nested .gitignore applies below its directory");
  assert.equal(verdict("generated.ts"), false, "…and not above it");
  assert.equal(verdict(".git"), false);
  assert.equal(verdict("src/main.ts"), false);
});

test("engine: workspaces are absolute, normalised paths of the engine's host", () => {
  assert.equal(enginePath("engine:/srv/repo"), "/srv/repo");
  assert.equal(enginePath("/home/me/repo"), undefined);
  for (const bad of ["engine:srv", "engine:/srv/../etc", "engine:/", "engine:"])
    assert.throws(() => enginePath(bad), UsageError, bad);
});

test("publishing: loopback by default, the named address when asked, refused for a remote engine without one", () => {
  const local = engineTarget({ dockerHost: "unix:///var/run/docker.sock" });
  assert.deepEqual(local, {
    endpoint: { source: "--docker-host", host: "unix:///var/run/docker.sock" },
    local: true,
    ship: false,
  });
  assert.equal(engineTarget({ dockerHost: "unix:///var/run/docker.sock", ship: true }).ship, true);
  const remote = engineTarget({ dockerHost: "tcp://10.0.0.5:2376" });
  assert.equal(remote.ship, true, "a tcp engine always ships");
  assert.deepEqual(publishing(local, {}), { hostIp: "127.0.0.1", urlHost: "127.0.0.1" });
  assert.deepEqual(publishing(local, { allowRemote: true }), { hostIp: "0.0.0.0", urlHost: "127.0.0.1" });
  assert.deepEqual(publishing(remote, { publishAddress: "10.0.0.5" }), {
    hostIp: "10.0.0.5",
    urlHost: "10.0.0.5",
  });
  assert.deepEqual(publishing(remote, { publishAddress: "fd00::5" }), {
    hostIp: "fd00::5",
    urlHost: "[fd00::5]",
  });
  const said = (pattern: RegExp) => (error: unknown) =>
    error instanceof UsageError && pattern.test(`${error.message} ${error.hint ?? ""}`);
  assert.throws(() => publishing(remote, {}), said(/not on this machine.*--publish-address/));
  assert.deepEqual(publishing(engineTarget({ dockerHost: "ssh://me@box" }), {}), {
    hostIp: "127.0.0.1",
    urlHost: "127.0.0.1",
    tunnel: true,
  });
  assert.throws(() => publishing(remote, { publishAddress: "box.example" }), /not an IP address/);
  assert.throws(() => publishing(remote, { publishAddress: "10.0.0.5", allowRemote: true }), /give one/);
  assert.throws(() => publishing(undefined, { publishAddress: "10.0.0.5" }), /Docker sandbox/);
});

test("shipped names: per home and workspace; entrypoints content-addressed beside their runtime", () => {
  const names = volumeNames("home1", "ws1");
  assert.deepEqual(names, {
    runtimes: "openwork-home1-runtimes",
    persist: "openwork-home1-persist-ws1",
    workspace: "openwork-home1-workspace-ws1",
  });
  const a = shippedEntrypoint("rt1", "#!/bin/sh\necho a\n");
  assert.match(a, /^\/runtimes\/rt1\/entrypoints\/[0-9a-f]{16}\.sh$/);
  assert.equal(shippedEntrypoint("rt1", "#!/bin/sh\necho a\n"), a);
  assert.notEqual(shippedEntrypoint("rt1", "#!/bin/sh\necho b\n"), a);
});

test("openwork cp ends: RUN:/workspace/… in a run, anything else local; only the workspace is reachable", () => {
  assert.deepEqual(parseCopyEnd("20261201-ab:/workspace/src/a.ts"), {
    kind: "run",
    run: "20261201-ab",
    path: "/workspace/src/a.ts",
  });
  assert.deepEqual(parseCopyEnd("abc:/workspace"), { kind: "run", run: "abc", path: "/workspace" });
  assert.deepEqual(parseCopyEnd("./out"), { kind: "local", path: path.resolve("./out") });
  assert.deepEqual(parseCopyEnd("/tmp/a:b"), { kind: "local", path: "/tmp/a:b" });
  for (const bad of ["abc:/persist/state", "abc:/workspace/../etc", "abc:relative"])
    assert.throws(() => parseCopyEnd(bad), UsageError, bad);
});

test("--workspace-git: git URLs with an optional #branch; anything else refused as usage", () => {
  assert.deepEqual(parseGitWorkspace("https://example.org/org/repo.git"), {
    url: "https://example.org/org/repo.git",
  });
  assert.deepEqual(parseGitWorkspace("git://10.0.0.1:9418/repo.git#main"), {
    url: "git://10.0.0.1:9418/repo.git",
    ref: "main",
  });
  assert.deepEqual(parseGitWorkspace("git@example.org:org/repo.git#release/1.2"), {
    url: "git@example.org:org/repo.git",
    ref: "release/1.2",
  });
  assert.deepEqual(parseGitWorkspace("ssh://git@example.org/repo.git"), {
    url: "ssh://git@example.org/repo.git",
  });
  for (const bad of [
    "not a url",
    "/local/path",
    "file:///etc",
    "https://example.org/r.git#bad ref;rm",
    "ftp://x/y",
  ])
    assert.throws(() => parseGitWorkspace(bad), UsageError, bad);
});

test("an image reference names a registry when its first component is a host", () => {
  for (const ref of ["10.0.0.1:5000/openwork-sandbox@sha256:abc", "registry.example/x/y:1", "localhost/a"])
    assert.equal(namesRegistry(ref), true, ref);
  for (const ref of ["openwork-sandbox:latest", "library/debian:12", "me/image"])
    assert.equal(namesRegistry(ref), false, ref);
});
