import assert from "node:assert/strict";
import { test } from "node:test";
import { renderVersions } from "../../src/cli/render.js";
import { type RuntimeVersions, versionsSchema } from "../../src/contract/api.js";
import { recordVersions, versionMismatches, versionsReport } from "../../src/runs/versions.js";

/** A versions answer as the server gives it (parsed with the contract, as the client does). */
function answer(overrides: Partial<RuntimeVersions> = {}): RuntimeVersions {
  return versionsSchema.parse({
    active: { opencode: "1.18.34", "opencode-router": null, "openwork-server": "0.1.0", node: "24.21.0" },
    pinned: {
      runtimeId: "0123456789abcdef",
      versions: { opencode: "1.18.34", "openwork-server": "0.1.0", node: "24.21.0" },
    },
    target: null,
    ...overrides,
  });
}

test("versions per component: active from the processes, pinned from runtime.json, target from an upgrade", () => {
  const versions = answer({
    target: {
      runtimeId: "fedcba9876543210",
      versions: { opencode: "1.18.35", "openwork-server": "0.1.1", node: "24.21.0" },
      operationId: "upg_1",
    },
  });
  const report = versionsReport(versions);
  assert.equal(report.runtimeId, "0123456789abcdef");
  assert.deepEqual(report.target, { runtimeId: "fedcba9876543210", operationId: "upg_1" });
  assert.deepEqual(
    report.components.find((row) => row.name === "opencode"),
    {
      name: "opencode",
      active: "1.18.34",
      pinned: "1.18.34",
      target: "1.18.35",
    },
  );
  // The table shows the pinned column filled in, and no rows named after the answer's fields.
  const table = renderVersions(versions);
  assert.match(table, /^opencode\s+1\.18\.34\s+1\.18\.34\s+1\.18\.35$/m);
  assert.match(table, /^openwork-server\s+0\.1\.0\s+0\.1\.0\s+0\.1\.1$/m);
  assert.doesNotMatch(table, /runtimeId|^versions/m);
  assert.doesNotMatch(
    table,
    /opencode-router/,
    "a component that is neither running nor pinned is not listed",
  );
  assert.match(table, /upgrading to runtime fedcba9876543210 \(operation upg_1\)/);
});

test("a mismatch between what runs and what is pinned is named per component", () => {
  assert.deepEqual(versionMismatches(answer()), []);
  assert.deepEqual(
    versionMismatches(
      answer({
        pinned: {
          runtimeId: "0123456789abcdef",
          versions: { opencode: "1.18.33", "openwork-server": "0.1.0", node: "24.21.0" },
        },
      }),
    ),
    ["opencode runs 1.18.34, runtime 0123456789abcdef pins 1.18.33"],
  );
  assert.deepEqual(
    versionMismatches(
      answer({
        active: { opencode: null, "opencode-router": null, "openwork-server": "0.1.0", node: "20.1.0" },
      }),
    ),
    ["opencode has not reported its version (pinned 1.18.34)"],
    "node is not compared: a new node sidecar applies at the next start",
  );
});

test("a run record keeps what the processes reported, never a staged claim", () => {
  assert.deepEqual(recordVersions(answer()), { opencode: "1.18.34", router: null, server: "0.1.0" });
});
