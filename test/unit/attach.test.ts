import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { UsageError } from "../../src/errors/errors.js";
import { silentLogger } from "../../src/logging/logger.js";
import { checkSessionChoice, opencodeForHost } from "../../src/runs/attach.js";
import { parseModel } from "../../src/runs/prompt.js";
import type { RunRecord } from "../../src/runs/record.js";
import { hostTarget } from "../../src/sidecars/platform.js";
import { RuntimeTamperedError } from "../../src/staging/verify.js";
import { BUNDLED_OPENCODE, stageRuntime } from "../helpers/runtime.js";

// The sidecar store these tests resolve into: a fresh one (set before anything opens the store).
process.env.OPENWORK_HOME = mkdtempSync(path.join(os.tmpdir(), "openwork-attach-home-"));

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "openwork-attach-"));

/** A run whose server does not answer (the versions come from its record) and whose runtimes are under `root`. */
function record(root: string, runtimeId: string, opencode = "1.18.34"): RunRecord & { url: string } {
  return {
    runId: "20250101000000-00000000",
    url: "http://127.0.0.1:1",
    persistDir: root,
    stagingRoot: root,
    runtimeId,
    versions: { opencode, router: null, server: null },
  } as RunRecord & { url: string };
}
const secrets = { clientToken: "owc_x", hostToken: "owh_x", enginePassword: "x" };

test("attach and run: session, fork and model flags are checked before anything runs", () => {
  checkSessionChoice({ session: "ses_dd09d4bfbffewEdejWSp2Zhflf", fork: true });
  checkSessionChoice({ continue: true, fork: true });
  for (const bad of [{ session: "--help" }, { session: "ses_1", continue: true }, { fork: true }]) {
    assert.throws(() => checkSessionChoice(bad), UsageError, JSON.stringify(bad));
  }
  assert.deepEqual(parseModel("openrouter/anthropic/claude"), {
    providerID: "openrouter",
    modelID: "anthropic/claude",
  });
  for (const bad of ["m1", "/m1", "fake/"]) assert.throws(() => parseModel(bad), UsageError, bad);
});

test("attach runs the run's own staged opencode when it is for this machine, after checking its hashes", async () => {
  const root = tmp();
  const id = await stageRuntime({ persist: root, opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" } });
  const found = await opencodeForHost(record(root, id), secrets, silentLogger());
  assert.equal(found.from, "staged");
  assert.equal(found.path, path.join(root, "runtimes", id, "opencode"));
  // A staged opencode whose bytes are not what runtime.json pins is never executed.
  const tampered = await stageRuntime({
    persist: root,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    tamper: (content) => {
      if (content.sidecars.opencode) content.sidecars.opencode.sha256 = "0".repeat(64);
    },
  });
  await assert.rejects(
    opencodeForHost(record(root, tampered), secrets, silentLogger()),
    RuntimeTamperedError,
  );
});

test("a runtime staged for another platform (an Apple VM's) is not run: this machine's opencode comes from the store", async () => {
  const root = tmp();
  const other = hostTarget().endsWith("x64") ? "linux-arm64" : "linux-x64";
  const id = await stageRuntime({
    persist: root,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    tamper: (content) => {
      content.target = other;
    },
  });
  const found = await opencodeForHost(record(root, id), secrets, silentLogger());
  assert.equal(found.from, "store");
  assert.equal(found.version, "1.18.34");
  assert.match(found.path, /store\/blobs\/sha256\/[0-9a-f]{64}$/);
});
