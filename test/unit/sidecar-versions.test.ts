import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { runtimeJsonOf } from "../../src/contract/runtime.js";
import { silentLogger } from "../../src/logging/logger.js";
import { sha256File } from "../../src/sidecars/hash.js";
import { hostTarget } from "../../src/sidecars/platform.js";
import { probeVersion } from "../../src/sidecars/version.js";
import { checkReportedVersions } from "../../src/staging/versions.js";
import { VersionCache } from "../../src/store/version-cache.js";

/** A staged runtime of scripts that say their version (and count how often they are asked). */
async function runtimeOf(versions: { opencode: string; server: string; node: string }) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-versions-"));
  const asked = path.join(dir, "asked");
  const script = (version: string) =>
    `#!/bin/sh\necho x >> '${asked}'\n[ "$1" = --version ] && echo "v${version}"\n`;
  writeFileSync(path.join(dir, "opencode"), script(versions.opencode));
  writeFileSync(path.join(dir, "node"), script(versions.node));
  chmodSync(path.join(dir, "opencode"), 0o755);
  chmodSync(path.join(dir, "node"), 0o755);
  writeFileSync(
    path.join(dir, "openwork-server.mjs"),
    `import { appendFileSync } from "node:fs"; appendFileSync(${JSON.stringify(asked)}, "x\\n"); console.log(${JSON.stringify(versions.server)});\n`,
  );
  const entry = async (file: string, version: string) => ({
    file,
    ...(await sha256File(path.join(dir, file))),
    version,
  });
  const json = runtimeJsonOf({
    target: hostTarget(),
    runtimeVersion: versions.server,
    sidecars: {
      opencode: await entry("opencode", versions.opencode),
      "openwork-server": await entry("openwork-server.mjs", versions.server),
      node: await entry("node", versions.node),
    },
  });
  const count = () => {
    try {
      return readFileSync(asked, "utf8").split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  };
  return { dir, json, count };
}

test("every sidecar must report the version runtime.json pins; asked once per content hash", async () => {
  const rt = await runtimeOf({ opencode: "1.18.34", server: "0.1.0", node: "24.21.0" });
  const cache = new VersionCache(path.join(rt.dir, "cache"));
  await checkReportedVersions(rt.dir, rt.json, { cache, log: silentLogger() });
  assert.equal(rt.count(), 3, "each sidecar asked once");
  await checkReportedVersions(rt.dir, rt.json, { cache, log: silentLogger() });
  assert.equal(rt.count(), 3, "the answers are cached by sha256: nothing is asked again");
  const lying = await runtimeOf({ opencode: "1.18.34", server: "0.1.0", node: "24.21.0" });
  const pinned = {
    ...lying.json,
    sidecars: { ...lying.json.sidecars, opencode: { ...lying.json.sidecars.opencode!, version: "1.18.99" } },
  };
  await assert.rejects(
    checkReportedVersions(lying.dir, pinned, {
      cache: new VersionCache(path.join(lying.dir, "cache")),
      log: silentLogger(),
    }),
    /the opencode sidecar reports version 1\.18\.34, runtime\.json pins 1\.18\.99/,
  );
});

test("a failed version probe names the sidecar it was checking", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-versions-"));
  const file = path.join(dir, "opencode");
  writeFileSync(file, "#!/bin/sh\nexit 3\n", { mode: 0o755 });
  await assert.rejects(
    probeVersion([file], { what: "the opencode sidecar" }),
    /checking the opencode sidecar: .*opencode --version failed/,
  );
});
