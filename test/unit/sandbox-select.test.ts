import assert from "node:assert/strict";
import { test } from "node:test";
import type { BackendProbe, SandboxBackend, SandboxKind } from "../../src/sandbox/backend.js";
import { registerBackend, selectBackend } from "../../src/sandbox/select.js";

function probing(kind: SandboxKind, result: BackendProbe, calls: string[]): () => SandboxBackend {
  return () =>
    ({
      kind,
      probe: async () => {
        calls.push(kind);
        return result;
      },
    }) as unknown as SandboxBackend;
}

test("auto never falls back to the host: with no sandbox working it fails and names every probe", async () => {
  const calls: string[] = [];
  registerBackend(
    "docker",
    probing("docker", { ok: false, reason: "connect ENOENT /var/run/docker.sock" }, calls),
  );
  registerBackend(
    "container",
    probing("container", { ok: false, reason: "container: command not found" }, calls),
  );
  await assert.rejects(selectBackend("auto", { platform: "darwin", arch: "arm64" }), (error: Error) => {
    assert.match(error.message, /found no working sandbox/);
    assert.match(error.message, /container: container: command not found/);
    assert.match(error.message, /docker: connect ENOENT/);
    return true;
  });
  assert.deepEqual(calls, ["container", "docker"]);
  await assert.rejects(
    selectBackend("auto", { platform: "linux", arch: "x64" }),
    /Apple's container runs only on macOS/,
  );
});

test("auto prefers Apple's container on macOS/arm64, Docker elsewhere", async () => {
  const calls: string[] = [];
  registerBackend("docker", probing("docker", { ok: true, version: "28" }, calls));
  registerBackend("container", probing("container", { ok: true, version: "1.0.0" }, calls));
  assert.equal((await selectBackend("auto", { platform: "darwin", arch: "arm64" })).kind, "container");
  assert.equal((await selectBackend("auto", { platform: "darwin", arch: "x64" })).kind, "docker");
  assert.equal((await selectBackend("auto", { platform: "linux", arch: "arm64" })).kind, "docker");
});

test("an explicit sandbox that does not work is an error with the probe's reason, not a fallback", async () => {
  registerBackend(
    "docker",
    probing("docker", { ok: false, reason: "Docker engine at unix:///x: ECONNREFUSED" }, []),
  );
  await assert.rejects(
    selectBackend("docker"),
    /--sandbox docker is not available: Docker engine at unix:\/\/\/x: ECONNREFUSED/,
  );
});
