import "./scratch.js";
/**
 * Remote engines benchmark (not a test): start → healthy of a runtime on a
 * second Docker engine with its files shipped through the Engine API — cold
 * (the engine has neither the sandbox image nor the runtime: both are sent)
 * and warm (a second start: nothing but the entrypoint is sent) — and of a
 * Swarm service (image baked, pushed and on the nodes), each over a local
 * Docker start measured in the same round. Needs root and
 * ../shared/ci/swarm-2node.sh (brought up and down here).
 *
 *   npm run build && node dist/bench/remote.js [--rounds N]
 */
import { chownSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Docker from "dockerode";
import { execa } from "execa";
import { CLI } from "../test/helpers/cli.js";
import { sharedSandboxImage } from "../test/helpers/docker.js";
import { NODE1, pullOnNodes, SWARM_REGISTRY, SWARM_SCRIPT, swarmStartArgs } from "../test/helpers/swarm.js";
import { sandboxWorkspace } from "../test/helpers/workspace.js";

const args = process.argv.slice(2);
const at = args.indexOf("--rounds");
const rounds = at >= 0 ? Number(args[at + 1]) || 3 : 3;
const env = { OPENWORK_LABELS: "openwork.bench=1" };
const home = mkdtempSync(path.join(os.tmpdir(), "openwork-bench-remote-"));
const node1 = new Docker({ socketPath: NODE1.engine.slice("unix://".length) });

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function cli(argv: string[]): Promise<{ ms: number; doc: Record<string, unknown> }> {
  const began = performance.now();
  const result = await execa(process.execPath, [CLI, "--json", ...argv], {
    env: { ...env, OPENWORK_HOME: home },
    reject: false,
    stdin: "ignore",
    timeout: 900_000,
  });
  const ms = performance.now() - began;
  if (result.exitCode !== 0)
    throw new Error(
      `openwork ${argv.join(" ")} exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`,
    );
  return { ms, doc: JSON.parse(String(result.stdout)) as Record<string, unknown> };
}

async function startStop(argv: string[]): Promise<{ ms: number; shippedBytes?: number }> {
  const started = await cli(["start", "--detach", ...argv]);
  await cli(["stop", String(started.doc.runId)]);
  return { ms: started.ms, shippedBytes: started.doc.shippedBytes as number | undefined };
}

/** The second engine as it was before anything of ours: no volumes, no images. */
async function forget(): Promise<void> {
  // (a Swarm task's ended container may linger a moment after its service is gone)
  for (const container of await node1.listContainers({ all: true }))
    await node1.getContainer(container.Id).remove({ force: true, v: true });
  for (const volume of (await node1.listVolumes()).Volumes ?? []) await node1.getVolume(volume.Name).remove();
  for (const image of await node1.listImages()) await node1.getImage(image.Id).remove({ force: true });
}

async function swarm(command: "up" | "down"): Promise<void> {
  await execa("bash", [SWARM_SCRIPT, command], {
    env: { OWSW_IMAGES: "openwork-nothing-to-copy:none", OWSW_REGISTRY: "1" },
    stdio: "inherit",
  });
}

const main = async () => {
  await sharedSandboxImage(new Docker());
  await swarm("down");
  await swarm("up");
  try {
    // The Swarm's image: baked, pushed, and on both nodes (these nodes' agents never pull).
    const baked = await cli(["image", "bake", "--registry", SWARM_REGISTRY, "--docker-host", NODE1.engine]);
    const pinned = (baked.doc.pushed as { pinned: string }).pinned;
    await pullOnNodes(pinned);
    const results = {
      local: [] as number[],
      cold: [] as number[],
      warm: [] as number[],
      swarm: [] as number[],
    };
    let coldBytes = 0;
    for (let round = 1; round <= rounds; round++) {
      results.local.push(
        (await startStop(["--sandbox", "docker", "--workspace", sandboxWorkspace("bench-local-")])).ms,
      );
      const ws = mkdtempSync(path.join(os.tmpdir(), "bench-swarm-"));
      chownSync(ws, 1000, 1000);
      results.swarm.push((await startStop(swarmStartArgs(ws))).ms);
      await forget();
      const dir = mkdtempSync(path.join(os.tmpdir(), "bench-upload-"));
      writeFileSync(path.join(dir, "README.md"), "bench\n");
      const shipped = [
        "--docker-host",
        NODE1.engine,
        "--ship",
        "--publish-address",
        NODE1.address,
        "--workspace-upload",
        dir,
      ];
      const cold = await startStop(shipped);
      coldBytes = cold.shippedBytes ?? 0;
      results.cold.push(cold.ms);
      const warm = await startStop(shipped);
      if (warm.shippedBytes !== 0) throw new Error(`a warm start shipped ${warm.shippedBytes} bytes`);
      results.warm.push(warm.ms);
      // The cluster as in production: the image on the nodes (the shipped rounds above emptied node 1).
      await pullOnNodes(pinned, [NODE1]);
      process.stderr.write(
        `round ${round}: local ${results.local.at(-1)?.toFixed(0)} ms, cold ${results.cold.at(-1)?.toFixed(0)} ms, warm ${results.warm.at(-1)?.toFixed(0)} ms, swarm ${results.swarm.at(-1)?.toFixed(0)} ms\n`,
      );
    }
    const local = median(results.local);
    const row = (name: string, values: number[]) =>
      `| ${name} | ${(median(values) / 1000).toFixed(2)} s | ${(median(values) / local).toFixed(2)}× |`;
    console.log(
      [
        `remote engines, median of ${rounds} (2 cores); cold start shipped ${(coldBytes / 1e6).toFixed(0)} MB of sidecars (and the image)`,
        "| start → healthy | time | over local Docker |",
        "| --- | --- | --- |",
        row("local Docker", results.local),
        row("second engine, shipped, cold", results.cold),
        row("second engine, shipped, warm", results.warm),
        row("Swarm service (image on the nodes)", results.swarm),
      ].join("\n"),
    );
  } finally {
    await swarm("down");
  }
};

await main();
