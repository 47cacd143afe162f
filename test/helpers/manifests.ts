import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fetchPackument } from "../../src/npm/registry.js";
import { runCli } from "./cli.js";

interface Manifest {
  sidecars: Record<string, { targets: Record<string, Record<string, unknown>> }>;
}

/**
 * Two manifests for an upgrade: this openwork's own (opencode as bundled) and the same with opencode
 * 1.18.33, fetched from the npm registry npm is configured with.
 */
export async function upgradeManifests(
  home: string,
  env: NodeJS.ProcessEnv,
): Promise<{ oldFile: string; newFile: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-manifests-"));
  const printed = await runCli(["--json", "sidecars", "manifest", "--target", "linux-x64"], { home, env });
  assert.equal(printed.exitCode, 0, printed.stderr);
  const current = JSON.parse(printed.stdout) as Manifest;
  const packument = await fetchPackument("opencode-linux-x64");
  const integrity = packument.versions["1.18.33"]?.dist.integrity;
  assert.ok(integrity, "the registry has opencode-linux-x64@1.18.33");
  const old = structuredClone(current);
  const sidecar = old.sidecars.opencode;
  assert.ok(sidecar);
  sidecar.targets["linux-x64"] = {
    version: "1.18.33",
    file: "opencode",
    sha256: null,
    size: null,
    source: {
      type: "npm",
      package: "opencode-linux-x64",
      version: "1.18.33",
      integrity,
      path: "bin/opencode",
    },
  };
  const oldFile = path.join(dir, "old.json");
  const newFile = path.join(dir, "new.json");
  writeFileSync(oldFile, JSON.stringify(old, null, 2));
  writeFileSync(newFile, JSON.stringify(current, null, 2));
  return { oldFile, newFile };
}
