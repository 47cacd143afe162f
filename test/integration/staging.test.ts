import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  accessSync,
  appendFileSync,
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";
import { packageRoot } from "../../src/config/package-root.js";
import { runtimeIdOf, runtimeJsonSchema } from "../../src/contract/runtime.js";
import { OpenworkError } from "../../src/errors/errors.js";
import { silentLogger } from "../../src/logging/logger.js";
import { buildBundledManifest } from "../../src/manifest/bundled.js";
import { manifestEntry } from "../../src/manifest/schema.js";
import { resolveSidecar } from "../../src/sources/resolve.js";
import { gcRuntimes } from "../../src/staging/gc.js";
import { stageRuntime } from "../../src/staging/stage.js";
import { RuntimeTamperedError, verifyStagedRuntime } from "../../src/staging/verify.js";
import { StatCache } from "../../src/store/stat-cache.js";
import { BlobStore } from "../../src/store/store.js";
import { publishFakeRuntime, versionScript } from "../helpers/fake-sidecars.js";
import { captureLogger } from "../helpers/log.js";
import { Mirror } from "../helpers/mirror.js";

let mirror: Mirror;
before(async () => {
  mirror = await Mirror.start();
});
after(async () => {
  await mirror.close();
});

function workspace(): { root: string; store: BlobStore; stagingRoot: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), "openwork-stage-"));
  return {
    root,
    store: new BlobStore({
      dir: path.join(root, "home", "store"),
      locksDir: path.join(root, "home", "locks"),
    }),
    stagingRoot: path.join(root, "persist"),
  };
}

const quick = { retry: { baseDelayMs: 10 }, progress: "off" as const };

test("staging links verified blobs into runtimes/<id>/ with runtime.json; a second staging writes 0 bytes", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest, bytes } = await publishFakeRuntime(mirror);
  const first = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  });
  assert.match(first.runtimeId, /^[0-9a-f]{16}$/);
  assert.equal(first.dir, path.join(stagingRoot, "runtimes", first.runtimeId));
  assert.ok(first.bytesWritten > 0);

  const runtimeJson = JSON.parse(readFileSync(path.join(first.dir, "runtime.json"), "utf8"));
  // The id is the contract's: a hash over everything runtime.json says.
  const { runtimeId: _id, ...content } = runtimeJsonSchema.parse(runtimeJson);
  const expectedId = runtimeIdOf(content);
  assert.equal(first.runtimeId, expectedId);
  assert.deepEqual(Object.keys(runtimeJson), ["runtimeId", "target", "runtimeVersion", "sidecars"]);
  assert.equal(runtimeJson.runtimeId, first.runtimeId);
  assert.equal(runtimeJson.target, "linux-x64");
  assert.equal(runtimeJson.runtimeVersion, "0.1.0");
  assert.deepEqual(runtimeJson.sidecars.opencode, {
    file: "opencode",
    sha256: createHash("sha256").update(bytes.opencode).digest("hex"),
    size: bytes.opencode.length,
    version: "1.2.3",
  });
  assert.equal(runtimeJson.sidecars["openwork-server"].file, "openwork-server.mjs");
  assert.deepEqual(Object.keys(runtimeJson.sidecars).sort(), ["node", "opencode", "openwork-server"]);

  const inodes = () =>
    Object.fromEntries(
      ["opencode", "node", "openwork-server.mjs"].map((file) => {
        const st = statSync(path.join(first.dir, file));
        return [file, { ino: st.ino, nlink: st.nlink, mode: st.mode & 0o777 }];
      }),
    );
  const before = inodes();
  for (const [name, info] of Object.entries(before)) {
    assert.equal(info.mode, 0o755, `${name} is executable`);
    assert.equal(info.nlink, 2, `${name} is a hard link to its blob (store + runtime)`);
  }
  assert.equal(statSync(path.join(first.dir, "opencode")).ino, statSync(first.sidecars.opencode!.path).ino);
  assert.equal(
    statSync(path.join(first.dir, "opencode")).ino,
    statSync(store.blobPath(runtimeJson.sidecars.opencode.sha256)).ino,
  );

  const requestsBefore = [...mirror.requests.values()].reduce((a, b) => a + b, 0);
  const second = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  });
  assert.equal(second.runtimeId, first.runtimeId);
  assert.equal(second.bytesWritten, 0);
  assert.equal(second.bytesDownloaded, 0);
  assert.deepEqual(second.placed, { opencode: "kept", "openwork-server": "kept", node: "kept" });
  assert.deepEqual(inodes(), before, "same inodes and link counts: nothing was rewritten");
  assert.equal(
    [...mirror.requests.values()].reduce((a, b) => a + b, 0),
    requestsBefore,
    "no request to the mirror",
  );
  await verifyStagedRuntime(first.dir, { statCache: store.statCache });
  // verification before exec is cheap: every staged file is vouched for by the stat cache, none is read
  for (const file of ["opencode", "node", "openwork-server.mjs"]) {
    assert.equal((await store.statCache.hash(path.join(first.dir, file))).cached, true, file);
  }
});

test("staging a verified runtime into another directory reads none of its bytes: the blobs' trust carries over the links", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest } = await publishFakeRuntime(mirror);
  const options = { manifest, target: "linux-x64" as const, store, registry: mirror.registry, http: quick };
  await stageRuntime({ ...options, stagingRoot });
  // Another workspace: new hard links to the same blobs, which moves each inode's ctime (the stat cache's key).
  const otherRoot = path.join(root, "other-persist");
  const hash = store.statCache.hash.bind(store.statCache);
  const hashed: string[] = [];
  store.statCache.hash = async (file: string) => {
    hashed.push(file);
    return hash(file);
  };
  const other = await stageRuntime({ ...options, stagingRoot: otherRoot });
  store.statCache.hash = hash;
  assert.deepEqual(other.placed, { opencode: "link", "openwork-server": "link", node: "link" });
  assert.deepEqual(
    hashed.filter((file) => file.startsWith(otherRoot)),
    [],
    "no staged file was read to be vouched for",
  );
  // ...and yet each is vouched for by the stat cache as it is now, so verification before exec reads nothing.
  for (const [name, sidecar] of Object.entries(other.sidecars)) {
    assert.equal(await store.statCache.trusted(statSync(sidecar.path)), sidecar.sha256, name);
  }
  await verifyStagedRuntime(other.dir, { statCache: store.statCache });
});

test("a write to the blob while a sidecar is linked is never trusted: staging fails, nothing vouches for it", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest, bytes } = await publishFakeRuntime(mirror);
  const serverSha = createHash("sha256").update(bytes["openwork-server"]).digest("hex");
  // The race a review found: a process that can write the blob (the same inode as the staged file) writes
  // between the check that the blob is trusted and the link that is made of it. Forced at that exact point:
  // place() asks trusted() about the blob itself (every other call comes from inside hash()).
  const hash = store.statCache.hash.bind(store.statCache);
  const trusted = store.statCache.trusted.bind(store.statCache);
  let inHash = 0;
  let poisoned: string | undefined;
  store.statCache.hash = async (file: string) => {
    inHash++;
    try {
      return await hash(file);
    } finally {
      inHash--;
    }
  };
  store.statCache.trusted = async (st) => {
    const answer = await trusted(st);
    if (!poisoned && inHash === 0 && answer === serverSha) {
      poisoned = store.blobPath(serverSha);
      appendFileSync(poisoned, "\n;console.log('the agent ran here');\n");
    }
    return answer;
  };
  await assert.rejects(
    stageRuntime({
      manifest,
      target: "linux-x64",
      stagingRoot,
      store,
      registry: mirror.registry,
      http: quick,
    }),
    /changed while it was staged/,
  );
  assert.ok(poisoned);
  store.statCache.hash = hash;
  store.statCache.trusted = trusted;
  // Neither the staged file nor the store's blob (the same inode) is vouched for by the stat cache.
  assert.equal(await store.statCache.trusted(statSync(poisoned)), undefined);
  // The next staging finds the poisoned blob, quarantines it and fetches the sidecar again.
  const again = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  });
  await verifyStagedRuntime(again.dir, {
    statCache: new StatCache(mkdtempSync(path.join(root, "fresh-cache-"))),
  });
  assert.doesNotMatch(
    readFileSync(path.join(again.dir, "openwork-server.mjs"), "utf8"),
    /the agent ran here/,
  );
});

test("tamper: one flipped byte in the staged real opencode makes verification refuse, naming the file and both hashes", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const manifest = await buildBundledManifest(["linux-x64"], { store });
  const staged = await stageRuntime({ manifest, target: "linux-x64", stagingRoot, store });
  assert.equal(staged.sidecars.opencode?.source, "bundled");
  const file = path.join(staged.dir, "opencode");
  const expected = staged.sidecars.opencode!.sha256;
  // the store owns its inode: node_modules is not linked into the store (a sandbox write must not reach it)
  const bundled = path.join(packageRoot(), "node_modules", "opencode-linux-x64", "bin", "opencode");
  assert.notEqual(statSync(file).ino, statSync(bundled).ino);
  await verifyStagedRuntime(staged.dir, { statCache: store.statCache });

  const original = statSync(file);
  const fd = openSync(file, "r+");
  const offset = 4096;
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  writeSync(fd, Buffer.from([byte[0]! ^ 0x01]), 0, 1, offset);
  closeSync(fd);
  // a careful tamperer puts the mtime back; the ctime still tells
  utimesSync(file, original.atime, original.mtime);
  const actual = createHash("sha256").update(readFileSync(file)).digest("hex");

  const error = await verifyStagedRuntime(staged.dir, { statCache: store.statCache }).then(
    () => assert.fail("verification must refuse"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof OpenworkError);
  assert.equal(error.code, "runtime_tampered");
  assert.ok(error.message.includes(file), error.message);
  assert.ok(error.message.includes(expected), error.message);
  assert.ok(error.message.includes(actual), error.message);

  // staging again repairs it: the (same-inode) store blob is quarantined and re-ingested, the file replaced
  const { log, messages } = captureLogger();
  const repairing = new BlobStore({ dir: store.dir, locksDir: store.locksDir, log });
  const again = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store: repairing,
    log,
  });
  assert.equal(again.runtimeId, staged.runtimeId);
  assert.ok(
    messages().some((m) => /quarantined/.test(m)),
    messages().join("\n"),
  );
  await verifyStagedRuntime(staged.dir, { statCache: store.statCache });
});

test("runtime.json edited to match a tampered file is refused: the directory's id no longer fits", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest } = await publishFakeRuntime(mirror);
  const staged = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  });
  const file = path.join(staged.dir, "node");
  const evil = versionScript("24.99.0", 10);
  writeFileSync(file, evil);
  const jsonFile = path.join(staged.dir, "runtime.json");
  const json = JSON.parse(readFileSync(jsonFile, "utf8"));
  json.sidecars.node.sha256 = createHash("sha256").update(evil).digest("hex");
  json.sidecars.node.size = evil.length;
  writeFileSync(jsonFile, JSON.stringify(json));
  await assert.rejects(verifyStagedRuntime(staged.dir, { statCache: store.statCache }), (error: unknown) => {
    assert.ok(error instanceof OpenworkError);
    assert.equal(error.code, "runtime_tampered");
    assert.match(error.message, /runtime id/);
    return true;
  });
});

test("a missing staged file is reported with every other mismatch", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest } = await publishFakeRuntime(mirror);
  const staged = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  });
  rmSync(path.join(staged.dir, "node"));
  chmodSync(path.join(staged.dir, "opencode"), 0o755);
  writeFileSync(path.join(staged.dir, "opencode"), "#!/bin/sh\necho hacked\n");
  await assert.rejects(verifyStagedRuntime(staged.dir, { statCache: store.statCache }), (error: unknown) => {
    assert.ok(error instanceof RuntimeTamperedError);
    assert.deepEqual(error.mismatches.map((m) => m.name).sort(), ["node", "opencode"]);
    assert.match(
      error.message,
      /the node sidecar \S+\/node: expected sha256 [0-9a-f]{64}, actual none \(missing\)/,
    );
    return true;
  });
});

test("gcRuntimes keeps the ones in use and the two most recent, removes the rest", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const { manifest } = await publishFakeRuntime(mirror, "linux-x64", { sizes: 256 });
    const staged = await stageRuntime({
      manifest,
      target: "linux-x64",
      stagingRoot,
      store,
      registry: mirror.registry,
      http: quick,
    });
    const when = new Date(Date.now() - (10 - i) * 60_000);
    utimesSync(path.join(staged.dir, "runtime.json"), when, when);
    ids.push(staged.runtimeId);
  }
  const result = await gcRuntimes(stagingRoot, [ids[0]!]);
  assert.deepEqual(result.removed, [ids[1]]);
  assert.deepEqual(
    readdirSync(path.join(stagingRoot, "runtimes"))
      .filter((n) => !n.startsWith("."))
      .sort(),
    [ids[0], ids[2], ids[3]].sort(),
  );
  // the blobs stay in the store: only the links went
  assert.equal(readdirSync(path.join(store.dir, "blobs", "sha256")).length, 12);
});

test("external overrides: need allowExternal, are version-checked, and a mismatch needs allowVersionMismatch", async (t) => {
  const { root, store, stagingRoot } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest } = await publishFakeRuntime(mirror);
  const own = path.join(root, "my-opencode");
  writeFileSync(own, versionScript("1.2.3", 100), { mode: 0o755 });
  const other = path.join(root, "other-opencode");
  writeFileSync(other, versionScript("1.3.0", 100), { mode: 0o755 });
  const base = {
    manifest,
    target: "linux-x64" as const,
    stagingRoot,
    store,
    registry: mirror.registry,
    http: quick,
  };
  await assert.rejects(
    stageRuntime({ ...base, sources: { external: { opencode: own } } }),
    /external opencode binary .* is not allowed/,
  );
  const ok = await stageRuntime({ ...base, sources: { external: { opencode: own }, allowExternal: true } });
  assert.equal(ok.sidecars.opencode?.source, "external");
  assert.equal(ok.sidecars.opencode?.version, "1.2.3");
  await assert.rejects(
    stageRuntime({ ...base, sources: { external: { opencode: other }, allowExternal: true } }),
    /reports version 1\.3\.0, the manifest pins opencode 1\.2\.3/,
  );
  const mismatched = await stageRuntime({
    ...base,
    sources: { external: { opencode: other }, allowExternal: true, allowVersionMismatch: true },
  });
  assert.equal(mismatched.sidecars.opencode?.version, "1.3.0");
  assert.notEqual(mismatched.runtimeId, ok.runtimeId);
  const json = JSON.parse(readFileSync(path.join(mismatched.dir, "runtime.json"), "utf8"));
  assert.equal(json.sidecars.opencode.version, "1.3.0");
});

test("a target this host cannot run is fetched for that target, never replaced by the host's binary", async (t) => {
  const { root, store } = workspace();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { manifest, bytes } = await publishFakeRuntime(mirror, "linux-arm64", { opencodeVersion: "1.18.34" });
  const entry = manifestEntry(manifest, "opencode", "linux-arm64");
  const options = { store, log: silentLogger(), registry: mirror.registry, ...quick };
  await assert.rejects(
    resolveSidecar("opencode", "linux-arm64", entry, { prefer: "bundled" }, options),
    /no usable bundled copy: npm package opencode-linux-arm64 is not installed/,
  );
  const { log, messages } = captureLogger();
  const resolved = await resolveSidecar(
    "opencode",
    "linux-arm64",
    entry,
    { prefer: "auto" },
    { ...options, log },
  );
  assert.equal(resolved.source, "npm");
  assert.equal(resolved.sha256, createHash("sha256").update(bytes.opencode).digest("hex"));
  assert.ok(
    messages().some((m) => /not bundled .* using the manifest's npm source/.test(m)),
    messages().join("\n"),
  );
});

test("a runtime directory on another device gets copies, and says so", async (t) => {
  let shm: string;
  try {
    accessSync("/dev/shm", constants.W_OK);
    shm = mkdtempSync("/dev/shm/openwork-persist-");
  } catch {
    t.skip("no writable /dev/shm (a second file system) on this machine");
    return;
  }
  const { root, store } = workspace();
  t.after(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  });
  if (statSync(shm).dev === statSync(root).dev) {
    t.skip("/dev/shm is on the same device as the temporary directory");
    return;
  }
  const { manifest } = await publishFakeRuntime(mirror, "linux-x64", { sizes: 1024 });
  const { log, messages } = captureLogger();
  const staged = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot: shm,
    store,
    log,
    registry: mirror.registry,
    http: quick,
  });
  assert.deepEqual(Object.values(staged.placed), ["copy", "copy", "copy"]);
  assert.ok(messages().some((m) => /another device .* copied instead of hard-linked/.test(m)));
  await verifyStagedRuntime(staged.dir, { statCache: store.statCache });
  const again = await stageRuntime({
    manifest,
    target: "linux-x64",
    stagingRoot: shm,
    store,
    registry: mirror.registry,
    http: quick,
  });
  assert.equal(again.bytesWritten, 0);
  assert.ok(existsSync(path.join(staged.dir, "runtime.json")));
});
