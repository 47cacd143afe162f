import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { OpenworkError } from "../../src/errors/errors.js";
import { loadManifest } from "../../src/manifest/load.js";
import { parseManifest } from "../../src/manifest/parse.js";
import { manifestEntry, sidecarsFor } from "../../src/manifest/schema.js";
import { Mirror } from "../helpers/mirror.js";

const SHA = "a".repeat(64);
const INTEGRITY = `sha512-${"A".repeat(86)}==`;

function valid(): Record<string, unknown> {
  return {
    manifestVersion: 1,
    runtimeVersion: "0.1.0",
    generatedAt: "2026-11-22T05:00:00.000Z",
    sidecars: {
      opencode: {
        targets: {
          "linux-x64": {
            version: "1.18.34",
            file: "opencode",
            sha256: SHA,
            size: 1000,
            source: { type: "npm", package: "opencode-linux-x64", version: "1.18.34", integrity: INTEGRITY },
          },
          "linux-arm64": {
            version: "1.18.34",
            file: "opencode",
            sha256: null,
            size: null,
            source: {
              type: "npm",
              package: "opencode-linux-arm64",
              version: "1.18.34",
              integrity: INTEGRITY,
              path: "bin/opencode",
            },
          },
        },
      },
      "openwork-server": {
        targets: {
          "linux-x64": {
            version: "0.1.0",
            file: "openwork-server.mjs",
            sha256: SHA,
            size: 10,
            source: { type: "bundled" },
          },
        },
      },
      node: {
        targets: {
          "linux-x64": {
            version: "24.21.0",
            file: "node",
            sha256: SHA,
            size: 20,
            source: { type: "url", url: "http://127.0.0.1:1/node" },
          },
        },
      },
    },
  };
}

// biome-ignore lint/suspicious/noExplicitAny: the tests break arbitrary parts of the JSON on purpose
function invalid(mutate: (m: any) => void): OpenworkError {
  const manifest = valid();
  mutate(manifest);
  try {
    parseManifest(JSON.stringify(manifest), "/tmp/m.json");
  } catch (error) {
    assert.ok(error instanceof OpenworkError);
    assert.equal(error.exitCode, 2, "a bad manifest is bad input");
    assert.match(error.message, /^manifest \/tmp\/m\.json is invalid: /);
    return error;
  }
  assert.fail("the manifest should be refused");
}

test("a valid manifest parses, with JSONC comments and trailing commas", () => {
  const text = `// pinned sidecars\n${JSON.stringify(valid(), null, 2).replace(/}\n}$/, "},\n}")}`;
  const manifest = parseManifest(text, "m.jsonc");
  assert.equal(manifestEntry(manifest, "opencode", "linux-arm64")?.sha256, null);
  assert.deepEqual(sidecarsFor(manifest, "linux-x64"), ["opencode", "openwork-server", "node"]);
  assert.deepEqual(sidecarsFor(manifest, "linux-arm64"), ["opencode"]);
});

test("each invalid field is named by its path", () => {
  assert.match(
    invalid((m) => {
      m.sidecars.opencode.targets["linux-x64"].sha256 = "xyz";
    }).message,
    /sidecars\.opencode\.targets\.linux-x64\.sha256: must be 64 lowercase hex digits/,
  );
  assert.match(
    invalid((m) => {
      m.sidecars.node.targets["linux-x64"].sha256 = null;
    }).message,
    /sidecars\.node\.targets\.linux-x64\.sha256: is required for a url source/,
  );
  assert.match(
    invalid((m) => {
      m.sidecars.opencode.targets["linux-x64"].source.integrity = "sha1-abc";
    }).message,
    /source\.integrity: must be an SRI string with a sha512 digest/,
  );
  assert.match(
    invalid((m) => {
      m.sidecars.opencode.targets["linux-x64"].source.version = "1.18.33";
    }).message,
    /source\.version: is 1\.18\.33 but the entry's version is 1\.18\.34/,
  );
  assert.match(
    invalid((m) => {
      m.sidecars.opencode.targets["sparc-x64"] = m.sidecars.opencode.targets["linux-x64"];
    }).message,
    /sidecars\.opencode\.targets/,
  );
  assert.match(
    invalid((m) => {
      m.manifestVersion = 2;
    }).message,
    /manifestVersion: /,
  );
  assert.match(
    invalid((m) => {
      delete m.sidecars.node;
    }).message,
    /sidecars\.node: /,
  );
  assert.match(
    invalid((m) => {
      m.extra = true;
    }).message,
    /unknown field\(s\) extra/,
  );
  const several = invalid((m) => {
    m.runtimeVersion = "one";
    m.sidecars.node.targets["linux-x64"].source = { type: "url", url: "ftp://x" };
  });
  assert.match(several.message, /runtimeVersion: must be a semantic version/);
  assert.match(several.message, /source\.url: must be an http\(s\) URL/);
});

test("syntax errors give the line and column; a missing file is a usage error naming it", async () => {
  assert.throws(
    () => parseManifest('{\n  "manifestVersion": 1,\n  oops\n}', "/x/m.json"),
    /manifest \/x\/m\.json is not valid JSON\(C\): .* at line 3, column 3/,
  );
  await assert.rejects(loadManifest("/nonexistent/manifest.json"), (error: unknown) => {
    assert.ok(error instanceof OpenworkError);
    assert.equal(error.exitCode, 2);
    assert.match(error.message, /cannot read the manifest \/nonexistent\/manifest\.json: no such file/);
    return true;
  });
});

test("loadManifest reads files, file: URLs and http URLs, and does not cache a failure", async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-manifest-"));
  const file = path.join(dir, "m.json");
  writeFileSync(file, JSON.stringify(valid()));
  assert.equal((await loadManifest(file)).runtimeVersion, "0.1.0");
  assert.equal((await loadManifest(`file://${file}`)).runtimeVersion, "0.1.0");
  const mirror = await Mirror.start();
  t.after(() => mirror.close());
  const url = mirror.addFile("manifest.json", Buffer.from(JSON.stringify(valid())));
  mirror.fault("manifest.json", { kind: "status", status: 404 }, 1);
  await assert.rejects(loadManifest(url, { retry: { baseDelayMs: 5 } }), /HTTP 404/);
  assert.equal((await loadManifest(url)).runtimeVersion, "0.1.0", "the next call fetches again");
  mirror.fault("manifest.json", { kind: "status", status: 502 }, 1);
  assert.equal(
    (await loadManifest(url, { retry: { baseDelayMs: 5 } })).runtimeVersion,
    "0.1.0",
    "a 502 is retried",
  );
});
