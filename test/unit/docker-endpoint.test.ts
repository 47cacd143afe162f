import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import {
  createDockerClient,
  isLocalEngine,
  parseDockerHost,
  resolveDockerEndpoint,
} from "../../src/docker/client.js";
import { UsageError } from "../../src/errors/errors.js";

function dockerConfig(current: string | undefined, contexts: Record<string, string>): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-docker-config-"));
  if (current) writeFileSync(path.join(dir, "config.json"), JSON.stringify({ currentContext: current }));
  for (const [name, host] of Object.entries(contexts)) {
    const meta = path.join(dir, "contexts", "meta", createHash("sha256").update(name).digest("hex"));
    mkdirSync(meta, { recursive: true });
    writeFileSync(
      path.join(meta, "meta.json"),
      JSON.stringify({ Name: name, Endpoints: { docker: { Host: host } } }),
    );
  }
  return dir;
}

test("DOCKER_HOST wins, in every scheme", () => {
  for (const host of ["unix:///run/user/1000/docker.sock", "tcp://10.0.0.5:2376", "ssh://me@build-host"]) {
    assert.deepEqual(resolveDockerEndpoint({ DOCKER_HOST: host, DOCKER_CONTEXT: "other" }), {
      source: "DOCKER_HOST",
      host,
    });
  }
});

test("the current docker context is honoured, from DOCKER_CONTEXT or the config's currentContext", () => {
  const config = dockerConfig("remote", {
    remote: "ssh://me@remote",
    colima: "unix:///Users/me/.colima/docker.sock",
  });
  assert.deepEqual(resolveDockerEndpoint({ DOCKER_CONFIG: config }), {
    source: 'docker context "remote"',
    host: "ssh://me@remote",
  });
  assert.deepEqual(resolveDockerEndpoint({ DOCKER_CONFIG: config, DOCKER_CONTEXT: "colima" }), {
    source: 'docker context "colima"',
    host: "unix:///Users/me/.colima/docker.sock",
  });
});

test("no context (or the default one) means the default socket; an unreadable context is an error naming it", () => {
  const config = dockerConfig(undefined, {});
  assert.equal(resolveDockerEndpoint({ DOCKER_CONFIG: config }).source, "default socket");
  assert.equal(
    resolveDockerEndpoint({ DOCKER_CONFIG: config, DOCKER_CONTEXT: "default" }).source,
    "default socket",
  );
  assert.throws(
    () => resolveDockerEndpoint({ DOCKER_CONFIG: config, DOCKER_CONTEXT: "gone" }),
    /docker context "gone" cannot be read/,
  );
});

test("an ssh:// engine is reached through docker-modem's real ssh transport, loaded on first use", async (t) => {
  // src/docker/client.ts defers that transport behind a callable stand-in: calling it must load and run
  // ssh2, which here speaks SSH to a listener that answers with something else and says so.
  const server = createServer((socket) => socket.end("HTTP/1.1 400 not ssh\r\n\r\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  const docker = createDockerClient({ source: "test", host: `ssh://nobody@127.0.0.1:${port}` });
  await assert.rejects(docker.version(), (error: Error) => {
    assert.doesNotMatch(error.message, /is not a function|Cannot read prop/);
    assert.match(
      `${error.message} ${(error as { level?: string }).level ?? ""}`,
      /protocol|handshake|ident|closed|ssh/i,
    );
    return true;
  });
});

test("--docker-host: an endpoint URL in each scheme, or a context by name; anything else refused as usage", () => {
  for (const host of [
    "unix:///tmp/sw1/docker.sock",
    "tcp://10.0.0.5:2376",
    "ssh://me@build-host",
    "ssh://me@build-host:2222",
    "npipe:////./pipe/docker_engine",
    "https://engine.example:2376",
  ])
    assert.deepEqual(parseDockerHost(host), { source: "--docker-host", host });
  const config = dockerConfig(undefined, { big: "tcp://10.0.0.9:2375" });
  assert.deepEqual(parseDockerHost("big", "--docker-host", { DOCKER_CONFIG: config }), {
    source: 'docker context "big"',
    host: "tcp://10.0.0.9:2375",
  });
  assert.throws(
    () => parseDockerHost("missing", "--docker-host", { DOCKER_CONFIG: config }),
    /cannot be read/,
  );
  for (const [value, message] of [
    ["gopher://x", /unix:\/\/, npipe:\/\/, tcp:\/\/, ssh:\/\//],
    ["tcp://", /names no host|not an endpoint/],
    ["unix://", /names no socket/],
    ["not a name", /neither an endpoint URL nor a docker context name/],
  ] as const)
    assert.throws(
      () => parseDockerHost(value),
      (error: unknown) => error instanceof UsageError && message.test(error.message),
      value,
    );
});

test("only a socket of this machine counts as sharing its files", () => {
  assert.equal(isLocalEngine("unix:///var/run/docker.sock"), true);
  assert.equal(isLocalEngine("npipe:////./pipe/docker_engine"), true);
  for (const host of ["tcp://127.0.0.1:2375", "ssh://me@localhost", "https://10.0.0.5:2376"])
    assert.equal(isLocalEngine(host), false, host);
});
