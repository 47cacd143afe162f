import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, beforeEach, test } from "node:test";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { downloadToStore } from "../../src/download/http.js";
import { fetchNpmBinary } from "../../src/download/npm.js";
import { OpenworkError } from "../../src/errors/errors.js";
import { silentLogger } from "../../src/logging/logger.js";
import { BlobStore } from "../../src/store/store.js";
import { captureLogger } from "../helpers/log.js";
import { Mirror } from "../helpers/mirror.js";

const payload = randomBytes(256 * 1024);
const sha256 = createHash("sha256").update(payload).digest("hex");
const size = payload.length;
// generous against a loaded machine: a stall must last far longer than the read timeout to count as one
const fast = {
  retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 40 },
  readTimeoutMs: 1000,
  progress: "off" as const,
};

let mirror: Mirror;
let root: string;
let store: BlobStore;

before(async () => {
  mirror = await Mirror.start();
});
after(async () => {
  await mirror.close();
});
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), "openwork-dl-"));
  store = new BlobStore({ dir: path.join(root, "store"), locksDir: path.join(root, "locks") });
  mirror.clearFaults();
});

let counter = 0;
/** A fresh path on the mirror for each test, so request counts are per test. */
function serve(bytes: Buffer = payload): { url: string; path: string } {
  const urlPath = `files/${++counter}/opencode`;
  return { url: mirror.addFile(urlPath, bytes), path: urlPath };
}

function assertNothingLeft(): void {
  assert.equal(existsSync(store.blobPath(sha256)), false, "no file at the final path");
  const tmp = path.join(root, "store", "tmp");
  assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], "no temporary file left");
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  pattern?: RegExp,
): Promise<OpenworkError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof OpenworkError, `an OpenworkError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return error;
  }
  assert.fail(`expected a ${code} failure`);
}

test("a URL download lands verified, 0755, and a second fetch uses the store", async () => {
  const { url, path: p } = serve();
  const first = await downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" });
  assert.equal(first.path, store.blobPath(sha256));
  assert.equal(first.bytesDownloaded, size);
  assert.equal(statSync(first.path).mode & 0o777, 0o755);
  assert.equal(createHash("sha256").update(payload).digest("hex"), sha256);
  const second = await downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" });
  assert.equal(second.bytesDownloaded, 0);
  assert.equal(mirror.count(p), 1);
});

test("wrong sha256: refused at once (not retried), nothing left behind", async () => {
  const { url, path: p } = serve();
  mirror.fault(p, { kind: "wrong-sha" });
  const error = await rejectsWith(
    downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" }),
    "sha256_mismatch",
  );
  assert.match(error.message, new RegExp(sha256));
  assert.equal(mirror.count(p), 1);
  assertNothingLeft();
});

test("wrong size: refused from Content-Length before the body is read, not retried", async () => {
  const { url, path: p } = serve();
  mirror.fault(p, { kind: "wrong-size" });
  await rejectsWith(
    downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" }),
    "size_mismatch",
    /262149 bytes, the manifest says 262144/,
  );
  assert.equal(mirror.count(p), 1);
  assertNothingLeft();
});

test("truncated body: retried; a persistent truncation fails after the attempts, nothing left", async () => {
  const once = serve();
  mirror.fault(once.path, { kind: "truncate" }, 1);
  const ok = await downloadToStore({ ...fast, store, url: once.url, sha256, size, what: "opencode test" });
  assert.equal(ok.sha256, sha256);
  assert.equal(mirror.count(once.path), 2);

  rmSync(path.join(root, "store"), { recursive: true });
  const always = serve();
  mirror.fault(always.path, { kind: "truncate" });
  await rejectsWith(
    downloadToStore({ ...fast, store, url: always.url, sha256, size, what: "opencode test" }),
    "download_failed",
    /after 3 attempts/,
  );
  assert.equal(mirror.count(always.path), 3);
  assertNothingLeft();
});

test("slow body: a stall past the read timeout is retried; a body that always stalls fails", async () => {
  const once = serve();
  mirror.fault(once.path, { kind: "slow", stallMs: 3000 }, 1);
  const ok = await downloadToStore({ ...fast, store, url: once.url, sha256, size, what: "opencode test" });
  assert.equal(ok.sha256, sha256);
  assert.equal(mirror.count(once.path), 2);

  // a stall shorter than the read timeout is just slow: one request, success
  rmSync(path.join(root, "store"), { recursive: true });
  const slow = serve();
  mirror.fault(slow.path, { kind: "slow", stallMs: 100 });
  await downloadToStore({ ...fast, store, url: slow.url, sha256, size, what: "opencode test" });
  assert.equal(mirror.count(slow.path), 1);

  rmSync(path.join(root, "store"), { recursive: true });
  const always = serve();
  mirror.fault(always.path, { kind: "slow", stallMs: 3000 });
  await rejectsWith(
    downloadToStore({
      ...fast,
      retry: { ...fast.retry, attempts: 2 },
      store,
      url: always.url,
      sha256,
      size,
      what: "opencode test",
    }),
    "download_failed",
    /stalled longer than the read timeout/,
  );
  assertNothingLeft();
});

test("HTTP 500 then 200: retried and succeeds; 404 is final", async () => {
  const flaky = serve();
  mirror.fault(flaky.path, { kind: "status", status: 500 }, 2);
  const { log, messages } = captureLogger();
  const ok = await downloadToStore({
    ...fast,
    log,
    store,
    url: flaky.url,
    sha256,
    size,
    what: "opencode test",
  });
  assert.equal(ok.attempts, 3);
  assert.equal(mirror.count(flaky.path), 3);
  assert.ok(
    messages().some((m) => /HTTP 500; retrying in \d+ ms/.test(m)),
    messages().join("\n"),
  );

  rmSync(path.join(root, "store"), { recursive: true });
  const missing = `${mirror.url}files/none/opencode`;
  await rejectsWith(
    downloadToStore({ ...fast, store, url: missing, sha256, size, what: "opencode test" }),
    "not_found",
    /HTTP 404/,
  );
  assert.equal(mirror.count("files/none/opencode"), 1);
  assertNothingLeft();
});

test("connection reset mid-body: retried and succeeds; a persistent reset fails, nothing left", async () => {
  const once = serve();
  mirror.fault(once.path, { kind: "reset" }, 1);
  const ok = await downloadToStore({ ...fast, store, url: once.url, sha256, size, what: "opencode test" });
  assert.equal(ok.sha256, sha256);
  assert.equal(mirror.count(once.path), 2);

  rmSync(path.join(root, "store"), { recursive: true });
  const always = serve();
  mirror.fault(always.path, { kind: "reset" });
  await rejectsWith(
    downloadToStore({ ...fast, store, url: always.url, sha256, size, what: "opencode test" }),
    "download_failed",
    /reset|closed/,
  );
  assertNothingLeft();
});

test("a blob that changed in the store is quarantined, logged and fetched again", async () => {
  const { url, path: p } = serve();
  const first = await downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" });
  writeFileSync(first.path, Buffer.concat([payload.subarray(0, 10), Buffer.from("X"), payload.subarray(11)]));
  const { log, messages } = captureLogger();
  const quarantining = new BlobStore({
    dir: path.join(root, "store"),
    locksDir: path.join(root, "locks"),
    log,
  });
  const again = await downloadToStore({
    ...fast,
    store: quarantining,
    url,
    sha256,
    size,
    what: "opencode test",
  });
  assert.equal(again.bytesDownloaded, size);
  assert.equal(mirror.count(p), 2);
  assert.equal(readdirSync(path.join(root, "store", "quarantine")).length, 1);
  assert.ok(
    messages().some((m) => /quarantined/.test(m) && /fetched again/.test(m)),
    messages().join("\n"),
  );
});

test("a lock left by a crashed holder goes stale and does not block the download", async () => {
  const { url } = serve();
  const lockDir = path.join(root, "locks", "blobs", `${sha256}.lock`);
  mkdirSync(lockDir, { recursive: true });
  const old = new Date(Date.now() - 120_000);
  utimesSync(lockDir, old, old);
  const ok = await downloadToStore({ ...fast, store, url, sha256, size, what: "opencode test" });
  assert.equal(ok.sha256, sha256);
});

test("npm source: integrity verified while streaming, the binary extracted and stored", async () => {
  const binary = randomBytes(300 * 1024);
  const binSha = createHash("sha256").update(binary).digest("hex");
  const pkg = `opencode-test-${++counter}`;
  const published = await mirror.addNpmPackage(pkg, "1.2.3", {
    "bin/opencode": binary,
    "README.md": Buffer.from("readme"),
  });
  const common = {
    ...fast,
    log: silentLogger(),
    store,
    registry: mirror.registry,
    package: pkg,
    version: "1.2.3",
    path: "bin/opencode",
    what: "opencode 1.2.3",
  };
  const blob = await fetchNpmBinary({
    ...common,
    integrity: published.integrity,
    sha256: binSha,
    size: binary.length,
  });
  assert.equal(blob.sha256, binSha);
  assert.equal(blob.integrity, published.integrity);
  // without a pinned binary hash, the index finds it again without the network
  const tarballRequests = mirror.count(published.tarballPath);
  const again = await fetchNpmBinary({ ...common, integrity: published.integrity });
  assert.equal(again.sha256, binSha);
  assert.equal(mirror.count(published.tarballPath), tarballRequests);
});

test("npm source faults: corrupt tarball, pinned integrity differs, missing path, 500 then 200", async () => {
  const binary = randomBytes(200 * 1024);
  const pkg = `opencode-fault-${++counter}`;
  const published = await mirror.addNpmPackage(pkg, "2.0.0", { "bin/opencode": binary });
  const common = {
    ...fast,
    store,
    registry: mirror.registry,
    package: pkg,
    version: "2.0.0",
    path: "bin/opencode",
    what: "opencode 2.0.0",
  };

  mirror.fault(published.tarballPath, { kind: "wrong-sha" });
  await rejectsWith(
    fetchNpmBinary({ ...common, integrity: published.integrity }),
    "integrity_mismatch",
    /fails its integrity check|is corrupt/,
  );
  assert.equal(mirror.count(published.tarballPath), 1, "an integrity failure is not retried");
  mirror.clearFaults();

  const otherIntegrity = `sha512-${createHash("sha512").update("something else").digest("base64")}`;
  await rejectsWith(
    fetchNpmBinary({ ...common, integrity: otherIntegrity }),
    "integrity_mismatch",
    /the manifest pins/,
  );
  await rejectsWith(
    fetchNpmBinary({ ...common, integrity: published.integrity, path: "bin/nope" }),
    "not_found",
    /has no file bin\/nope/,
  );
  await rejectsWith(fetchNpmBinary({ ...common, version: "9.9.9" }), "not_found", /has no version 9\.9\.9/);
  await rejectsWith(
    fetchNpmBinary({ ...common, integrity: published.integrity, size: binary.length + 1 }),
    "size_mismatch",
    /the manifest says/,
  );

  // a registry whose packument advertises an integrity its tarball does not have: caught by the streaming sha512
  const liar = `opencode-liar-${++counter}`;
  const lying = await mirror.addNpmPackage(
    liar,
    "2.0.0",
    { "bin/opencode": binary },
    { advertisedIntegrity: otherIntegrity },
  );
  await rejectsWith(
    fetchNpmBinary({ ...common, package: liar }),
    "integrity_mismatch",
    /fails its integrity check \(sha512-/,
  );
  assert.equal(mirror.count(lying.tarballPath), 1);

  mirror.fault(published.tarballPath, { kind: "status", status: 503 }, 1);
  const before = mirror.count(published.tarballPath);
  const ok = await fetchNpmBinary({ ...common, integrity: published.integrity });
  assert.equal(ok.size, binary.length);
  assert.equal(mirror.count(published.tarballPath) - before, 2);
  const tmp = path.join(root, "store", "tmp");
  assert.deepEqual(readdirSync(tmp), [], "no temporary file left");
});

test("npm source: a reset or truncated tarball mid-stream is retried, never stored half", async () => {
  for (const kind of ["reset", "truncate"] as const) {
    const binary = randomBytes(400 * 1024);
    const pkg = `opencode-${kind}-${++counter}`;
    const published = await mirror.addNpmPackage(pkg, "1.0.0", { "bin/opencode": binary });
    mirror.fault(published.tarballPath, { kind }, 1);
    const blob = await fetchNpmBinary({
      ...fast,
      store,
      registry: mirror.registry,
      package: pkg,
      version: "1.0.0",
      integrity: published.integrity,
      path: "bin/opencode",
      what: `opencode (${kind})`,
    });
    assert.equal(blob.sha256, createHash("sha256").update(binary).digest("hex"), kind);
    assert.equal(mirror.count(published.tarballPath), 2, kind);
  }
  assert.deepEqual(readdirSync(path.join(root, "store", "tmp")), []);
});

test("two processes fetching the same sidecar at once: one download, both succeed", async () => {
  const { url, path: p } = serve();
  // a stall on the first response keeps the first process busy while the second one arrives
  mirror.fault(p, { kind: "slow", stallMs: 3000 }, 1);
  const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "helpers", "fetch-worker.js");
  const args = JSON.stringify({
    kind: "url",
    storeDir: path.join(root, "store"),
    locksDir: path.join(root, "locks"),
    url,
    sha256,
    size,
  });
  const results = await Promise.all(
    [0, 1].map(() => execa(process.execPath, [worker, args], { reject: false, timeout: 60_000 })),
  );
  for (const result of results) assert.equal(result.exitCode, 0, String(result.stderr));
  const parsed = results.map(
    (r) => JSON.parse(String(r.stdout)) as { path: string; sha256: string; bytesDownloaded: number },
  );
  assert.equal(mirror.count(p), 1, "one request reached the mirror");
  assert.deepEqual(
    parsed.map((r) => r.sha256),
    [sha256, sha256],
  );
  assert.deepEqual(
    parsed.map((r) => r.bytesDownloaded).sort((a, b) => a - b),
    [0, size],
  );
});

test("two processes fetching the same npm sidecar at once: one tarball download, both succeed", async () => {
  const binary = randomBytes(200 * 1024);
  const pkg = `opencode-race-${++counter}`;
  const published = await mirror.addNpmPackage(pkg, "3.0.0", { "bin/opencode": binary });
  mirror.fault(published.tarballPath, { kind: "slow", stallMs: 3000 }, 1);
  const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "helpers", "fetch-worker.js");
  const args = JSON.stringify({
    kind: "npm",
    storeDir: path.join(root, "store"),
    locksDir: path.join(root, "locks"),
    registry: mirror.registry,
    package: pkg,
    version: "3.0.0",
    integrity: published.integrity,
    path: "bin/opencode",
  });
  const results = await Promise.all(
    [0, 1].map(() => execa(process.execPath, [worker, args], { reject: false, timeout: 60_000 })),
  );
  for (const result of results) assert.equal(result.exitCode, 0, String(result.stderr));
  const parsed = results.map(
    (r) => JSON.parse(String(r.stdout)) as { sha256: string; bytesDownloaded: number },
  );
  assert.equal(mirror.count(published.tarballPath), 1, "one tarball request reached the registry");
  const binSha = createHash("sha256").update(binary).digest("hex");
  assert.deepEqual(
    parsed.map((r) => r.sha256),
    [binSha, binSha],
  );
  assert.equal(parsed.filter((r) => r.bytesDownloaded === 0).length, 1);
});

test("temporary files of a dead process are swept; progress log lines report bytes and rate", async () => {
  const tmp = path.join(root, "store", "tmp");
  mkdirSync(tmp, { recursive: true });
  const dead = await execa(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  const leftover = path.join(tmp, `.${sha256}.${String(dead.stdout)}.abc123.tmp`);
  const mine = path.join(tmp, `.${sha256}.${process.pid}.def456.tmp`);
  writeFileSync(leftover, "partial");
  writeFileSync(mine, "in progress");
  const { log, messages } = captureLogger();
  const sweeping = new BlobStore({ dir: path.join(root, "store"), locksDir: path.join(root, "locks"), log });
  const { url } = serve();
  await downloadToStore({
    ...fast,
    progress: "log",
    log,
    store: sweeping,
    url,
    sha256,
    size,
    what: "opencode test",
  });
  assert.equal(existsSync(leftover), false, "the dead process's file is gone");
  assert.equal(existsSync(mine), true, "a live process's file stays");
  assert.ok(messages().some((m) => /left by the dead process/.test(m)));
  assert.ok(
    messages().some((m) => /^opencode test: 0\.3\/0\.3 MiB at [\d.]+ MiB\/s \(done\)$/.test(m)),
    messages().join("\n"),
  );
});

test("npm source: a private registry gets the token npm's configuration holds for it", async (t) => {
  const token = `tok_${randomBytes(12).toString("hex")}`;
  const npmrc = path.join(root, "npmrc");
  writeFileSync(npmrc, `${mirror.registry.replace(/^http:/, "")}:_authToken=\${TEST_NPM_TOKEN}\n`);
  const saved = { userconfig: process.env.npm_config_userconfig, token: process.env.TEST_NPM_TOKEN };
  process.env.npm_config_userconfig = npmrc;
  mirror.requireToken(token);
  t.after(() => {
    mirror.requireToken(undefined);
    process.env.npm_config_userconfig = saved.userconfig;
    process.env.TEST_NPM_TOKEN = saved.token;
    if (saved.userconfig === undefined) delete process.env.npm_config_userconfig;
    if (saved.token === undefined) delete process.env.TEST_NPM_TOKEN;
  });
  const binary = randomBytes(50 * 1024);
  const pkg = `opencode-private-${++counter}`;
  const published = await mirror.addNpmPackage(pkg, "1.0.0", { "bin/opencode": binary });
  const request = {
    ...fast,
    store,
    registry: mirror.registry,
    package: pkg,
    version: "1.0.0",
    path: "bin/opencode",
    what: "opencode private",
  };
  process.env.TEST_NPM_TOKEN = "wrong-token-value";
  await rejectsWith(fetchNpmBinary(request), "http_error", /HTTP 401/);
  process.env.TEST_NPM_TOKEN = token;
  const { log, messages } = captureLogger();
  const blob = await fetchNpmBinary({ ...request, log });
  assert.equal(blob.sha256, createHash("sha256").update(binary).digest("hex"));
  assert.equal(mirror.count(published.tarballPath), 1);
  assert.ok(
    messages().every((m) => !m.includes(token)),
    "the token never reaches a log line",
  );
});

test("downloads go through HTTP_PROXY when it is set", async (t) => {
  const seen: string[] = [];
  const proxy = http.createServer((req, res) => {
    seen.push(req.url ?? "");
    // a forward proxy receives the absolute URL and relays it
    const upstream = http.request(req.url ?? "", { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  // https and (with undici) http requests are tunnelled: CONNECT host:port, then raw bytes
  const sockets = new Set<net.Socket>();
  proxy.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  let blackhole = false;
  proxy.on("connect", (req, client, head) => {
    seen.push(`CONNECT ${req.url}`);
    if (blackhole) return; // accepts the connection, never answers
    const [host, port] = (req.url ?? "").split(":");
    const upstream = net.connect(Number(port), host ?? "127.0.0.1", () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  const saved = process.env.HTTP_PROXY;
  process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  t.after(async () => {
    if (saved === undefined) delete process.env.HTTP_PROXY;
    else process.env.HTTP_PROXY = saved;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
  });
  const { url } = serve();
  const blob = await downloadToStore({ ...fast, store, url, sha256, size, what: "opencode via proxy" });
  assert.equal(blob.sha256, sha256);
  const { host } = new URL(url);
  assert.ok(
    seen.includes(url) || seen.includes(`CONNECT ${host}`),
    `the proxy saw the request: ${seen.join(", ")}`,
  );

  // a proxy that never answers must not hang the download: the watchdog gives up, retries, then fails
  blackhole = true;
  rmSync(path.join(root, "store"), { recursive: true });
  const other = serve();
  await rejectsWith(
    downloadToStore({
      ...fast,
      connectTimeoutMs: 300,
      retry: { ...fast.retry, attempts: 2 },
      store,
      url: other.url,
      sha256,
      size,
      what: "opencode via a dead proxy",
    }),
    "download_failed",
    /no response within 1300 ms/,
  );
  assertNothingLeft();
});
