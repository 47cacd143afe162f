import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { closedLoop } from "../helpers/load.js";
import { upgradeManifests } from "../helpers/manifests.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/**
 * `openwork runtime upgrade` end to end: a runtime started on opencode 1.18.33
 * (fetched from the npm registry npm is configured with) is upgraded from the
 * CLI to the bundled 1.18.34 while a closed loop of requests runs against it.
 */
const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-upgrade-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };

async function upgradeFlow(sandbox: "none" | "docker"): Promise<void> {
  const { oldFile, newFile } = await upgradeManifests(home, env);
  const workspace =
    sandbox === "none"
      ? mkdtempSync(path.join(os.tmpdir(), "openwork-ws-upgrade-none-"))
      : sandboxWorkspace("openwork-ws-upgrade-docker-");
  const started = await runCli(
    ["--json", "start", "--detach", "--sandbox", sandbox, "--workspace", workspace, "--manifest", oldFile],
    {
      home,
      env,
      timeoutMs: 300_000,
    },
  );
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as {
    runId: string;
    url: string;
    versions: { opencode: string };
    tokens: { client: string };
  };
  try {
    assert.equal(doc.versions.opencode, "1.18.33");
    const loop = closedLoop(doc.url, doc.tokens.client, ["/system/health", "/opencode/global/health"], {
      workers: 2,
      intervalMs: 20,
    });
    const upgraded = await runCli(["--json", "runtime", "upgrade", doc.runId, "--manifest", newFile], {
      home,
      env,
      timeoutMs: 300_000,
    });
    const load = await loop.stop();
    assert.equal(upgraded.exitCode, 0, `${upgraded.stdout}\n${upgraded.stderr}`);
    assert.equal((JSON.parse(upgraded.stdout) as { state: string }).state, "succeeded");
    assert.equal(load.failed, 0, load.failures.slice(0, 5).join("\n"));
    assert.ok(load.total > 20, `the loop ran throughout (${load.total} requests)`);
    const versions = await runCli(["--json", "runtime", "versions", doc.runId], { home, env });
    assert.equal(versions.exitCode, 0, versions.stderr);
    const report = JSON.parse(versions.stdout) as {
      components: Array<{
        name: string;
        active: string | null;
        pinned: string | null;
        target: string | null;
      }>;
    };
    assert.deepEqual(
      report.components.find((row) => row.name === "opencode"),
      { name: "opencode", active: "1.18.34", pinned: "1.18.34", target: null },
    );
    const status = JSON.parse((await runCli(["--json", "status", doc.runId], { home, env })).stdout) as {
      versions: { opencode: string };
    };
    assert.equal(status.versions.opencode, "1.18.34", "the run record follows the upgrade");
  } finally {
    assert.equal((await runCli(["stop", doc.runId], { home, env })).exitCode, 0);
  }
}

test("runtime upgrade from the CLI on the host: versions change, no failed request meanwhile", async () => {
  await upgradeFlow("none");
});

test("runtime upgrade from the CLI in Docker: versions change, no failed request meanwhile", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  await upgradeFlow("docker");
});
