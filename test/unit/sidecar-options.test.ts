import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Command } from "commander";
import { addSidecarOverrideOptions } from "../../src/cli/sidecar-options.js";
import { isTransient, TransientError } from "../../src/download/retry.js";
import { OpenworkError, UsageError } from "../../src/errors/errors.js";
import { sourcePolicyFrom } from "../../src/sources/policy.js";

test("override flags parse into a source policy; misuse is a usage error", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-flags-"));
  const bin = path.join(dir, "opencode");
  writeFileSync(bin, "#!/bin/sh\n", { mode: 0o755 });
  const command = addSidecarOverrideOptions(new Command("start").exitOverride());
  command.parse(["--opencode-bin", bin, "--allow-external", "--allow-version-mismatch"], { from: "user" });
  const policy = sourcePolicyFrom(command.opts());
  assert.deepEqual(policy, {
    prefer: "auto",
    external: { opencode: bin },
    allowExternal: true,
    allowVersionMismatch: true,
  });
  assert.throws(
    () => sourcePolicyFrom({ serverBin: bin }),
    (e: unknown) => e instanceof UsageError && /--server-bin needs --allow-external/.test(e.message),
  );
  assert.throws(
    () => sourcePolicyFrom({ routerBin: path.join(dir, "nope"), allowExternal: true }),
    /--router-bin .*nope: no such file/,
  );
  assert.throws(() => sourcePolicyFrom({ routerBin: dir, allowExternal: true }), /not a regular file/);
  assert.throws(() => sourcePolicyFrom({ source: "ftp" }), /--source must be one of auto, bundled, npm, url/);
});

test("only transient network failures are retried", () => {
  const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
  const bodyTimeout = Object.assign(new Error("Body Timeout Error"), { code: "UND_ERR_BODY_TIMEOUT" });
  assert.equal(isTransient(reset), true);
  assert.equal(isTransient(bodyTimeout), true);
  assert.equal(isTransient(new Error("wrapped", { cause: reset })), true);
  assert.equal(isTransient(new TransientError("HTTP 503")), true);
  assert.equal(isTransient(new OpenworkError("sha256 mismatch", { code: "sha256_mismatch" })), false);
  assert.equal(isTransient(new OpenworkError("HTTP 404", { code: "not_found" })), false);
  assert.equal(isTransient(Object.assign(new Error("no such file"), { code: "ENOENT" })), false);
});
