import assert from "node:assert/strict";
import { test } from "node:test";
import { recordVersions, versionOf, versionsOf } from "../../src/runs/versions.js";

test("versions are read from strings or {version} objects; anything else is unknown", () => {
  assert.equal(versionOf("1.18.34"), "1.18.34");
  assert.equal(versionOf({ version: "0.1.0", pid: 7 }), "0.1.0");
  for (const value of [null, undefined, 3, { version: null }, {}]) assert.equal(versionOf(value), undefined);
  assert.deepEqual(
    versionsOf({ opencode: { version: "1.18.33" }, node: "24.21.0", "opencode-router": null }),
    {
      opencode: "1.18.33",
      node: "24.21.0",
    },
  );
});

test("a run record takes the running versions and keeps what the server did not report", () => {
  assert.deepEqual(
    recordVersions(
      { opencode: { version: "1.18.34" }, "openwork-server": "0.1.1" },
      { opencode: "1.18.33", router: "0.1.0", server: "0.1.0" },
    ),
    { opencode: "1.18.34", router: "0.1.0", server: "0.1.1" },
  );
});
