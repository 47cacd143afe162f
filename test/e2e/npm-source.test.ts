import assert from "node:assert/strict";
import { test } from "node:test";
import { execa } from "execa";
import { findBundled } from "../../src/sidecars/bundled.js";
import { sha256File } from "../../src/sidecars/hash.js";
import { fetchNpmSidecar } from "../helpers/npm-sidecar.js";

test("the npm source fetches the real opencode 1.18.33 from the configured registry, verified, and it runs", async () => {
  const fetched = await fetchNpmSidecar({ name: "opencode", version: "1.18.33" });
  assert.match(fetched.integrity ?? "", /^sha512-/);
  assert.ok(fetched.size > 50_000_000, `a real engine binary (${fetched.size} bytes)`);
  assert.equal((await sha256File(fetched.path)).sha256, fetched.sha256);
  const version = String((await execa(fetched.path, ["--version"], { timeout: 60_000 })).stdout).trim();
  assert.equal(version, "1.18.33");
  const bundled = findBundled("opencode", "linux-x64");
  if (bundled.found) assert.notEqual((await sha256File(bundled.sidecar.path)).sha256, fetched.sha256);
  // the second call finds it in the shared store without the network
  const again = await fetchNpmSidecar({ name: "opencode", version: "1.18.33" });
  assert.equal(again.bytesDownloaded, 0);
  assert.equal(again.path, fetched.path);
});
