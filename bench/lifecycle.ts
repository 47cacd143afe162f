import "./scratch.js";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { openworkPaths } from "../src/config/paths.js";
import { createDockerClient } from "../src/docker/client.js";
import { LABEL_IMAGE } from "../src/image/inputs.js";
import { RunRegistry } from "../src/runs/registry.js";
import { emulatorEnv } from "../test/helpers/apple-emulator.js";
import { CLI } from "../test/helpers/cli.js";
import { sandboxWorkspace } from "../test/helpers/workspace.js";
import { rawEngines } from "./raw-engine.js";

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1] ?? 3) || 3;
const withDocker = !args.includes("--no-docker");

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/**
 * Docker's own share of a sandboxed start, which no runner can go below: a network of the run's own,
 * then create and start an idle container shaped like a run's (same image, init, limits, read-only
 * root, dropped capabilities, a published port), until the engine says it runs.
 */
async function dockerFloor(): Promise<number> {
  const docker = createDockerClient();
  const [image] = await docker.listImages({ filters: { label: [`${LABEL_IMAGE}=sandbox`] } });
  if (!image) throw new Error("no openwork sandbox image: the warm-up start should have built it");
  const labels = { "openwork.test": "1" };
  const started = performance.now();
  const network = await docker.createNetwork({
    Name: `bench-floor-${process.pid}-${Date.now()}`,
    Labels: labels,
  });
  const container = await docker.createContainer({
    Image: image.Id,
    Cmd: ["sleep", "60"],
    Labels: labels,
    User: "1000:1000",
    ExposedPorts: { "8787/tcp": {} },
    HostConfig: {
      Init: true,
      NetworkMode: network.id,
      PortBindings: { "8787/tcp": [{ HostIp: "127.0.0.1", HostPort: "0" }] },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      ReadonlyRootfs: true,
      Memory: 4 * 1024 ** 3,
      NanoCpus: 2e9,
      PidsLimit: 1024,
    },
  });
  await container.start();
  const elapsed = performance.now() - started;
  await container.remove({ force: true });
  await network.remove();
  return elapsed;
}

const phases: Record<string, Record<string, number[]>> = { none: {}, docker: {}, container: {} };

async function openworkStart(sandbox: "none" | "docker" | "container", home: string): Promise<number> {
  // A sandbox never runs as root: as root, the workspace belongs to the test user, as a project would.
  const workspace = sandboxWorkspace("bench-ws-");
  const env = {
    OPENWORK_HOME: home,
    OPENWORK_LABELS: "openwork.test=1",
    ...(sandbox === "container" ? { ...emulatorEnv(), OPENWORK_TEST_RUN: "1" } : {}),
  };
  const started = performance.now();
  const result = await execa(
    process.execPath,
    [CLI, "--json", "start", "--detach", "--sandbox", sandbox, "--workspace", workspace],
    {
      env,
      reject: false,
    },
  );
  const elapsed = performance.now() - started;
  if (result.exitCode !== 0) throw new Error(`start failed: ${result.stderr}`);
  const { runId, timings } = JSON.parse(String(result.stdout)) as {
    runId: string;
    timings: Record<string, number>;
  };
  const byPhase = phases[sandbox] ?? {};
  phases[sandbox] = byPhase;
  for (const [phase, ms] of Object.entries(timings)) {
    const list = byPhase[phase] ?? [];
    list.push(ms);
    byPhase[phase] = list;
  }
  await execa(process.execPath, [CLI, "stop", runId], { env });
  return elapsed;
}

async function cli(argv: string[], home: string): Promise<number> {
  const started = performance.now();
  await execa(process.execPath, [CLI, ...argv], { env: { OPENWORK_HOME: home }, reject: false });
  return performance.now() - started;
}

async function main(): Promise<void> {
  const rows: Array<{ what: string; medianMs: number; baseline: string; ratio: number }> = [];
  const raw: number[] = [];
  const host: number[] = [];
  const docker: number[] = [];
  const apple: number[] = [];
  const floor: number[] = [];
  const home = mkdtempSync(path.join(os.tmpdir(), "bench-home-"));
  // Warm-up: the first start stages sidecars (and builds the image); measure warm starts, as users see them.
  await openworkStart("none", home);
  if (withDocker) {
    await openworkStart("docker", home);
    await openworkStart("container", home);
  }
  for (let round = 0; round < rounds; round++) {
    raw.push(await rawEngines(1));
    host.push(await openworkStart("none", home));
    if (withDocker) {
      docker.push(await openworkStart("docker", home));
      floor.push(await dockerFloor());
      apple.push(await openworkStart("container", home));
    }
  }
  const rawMedian = median(raw);
  rows.push({ what: "raw opencode serve → /global/health", medianMs: rawMedian, baseline: "-", ratio: 1 });
  rows.push({
    what: "openwork start --detach --sandbox none",
    medianMs: median(host),
    baseline: "raw",
    ratio: median(host) / rawMedian,
  });
  if (withDocker) {
    rows.push({
      what: "openwork start --detach --sandbox docker",
      medianMs: median(docker),
      baseline: "raw",
      ratio: median(docker) / rawMedian,
    });
    // The Docker goal against what Docker alone adds: the bare engine plus Docker's own floor.
    const floorMedian = median(floor);
    rows.push({
      what: "Docker's floor: own network + create + start of an idle run-shaped container",
      medianMs: floorMedian,
      baseline: "raw",
      ratio: floorMedian / rawMedian,
    });
    rows.push({
      what: "raw + Docker's floor (the least any Docker start can take)",
      medianMs: rawMedian + floorMedian,
      baseline: "raw",
      ratio: (rawMedian + floorMedian) / rawMedian,
    });
    rows.push({
      what: "openwork start --detach --sandbox container (emulated Apple CLI on Docker)",
      medianMs: median(apple),
      baseline: "raw",
      ratio: median(apple) / rawMedian,
    });
  }

  // status --all with 20 recorded runs (stopped ones: reconcile reads and checks each record).
  const statusHome = mkdtempSync(path.join(os.tmpdir(), "bench-status-"));
  const registry = new RunRegistry(openworkPaths({ OPENWORK_HOME: statusHome }));
  for (let index = 0; index < 20; index++) {
    const runId = RunRegistry.newRunId();
    await registry.write({
      version: 1,
      runId,
      workspace: `/bench/ws${index}`,
      workspaceId: RunRegistry.workspaceId(`/bench/ws${index}`),
      sandbox: index % 2 === 0 ? "none" : "docker",
      state: "stopped",
      ports: { server: 1, engine: 2, routerHealth: 3 },
      persistDir: "/bench/p",
      runDir: registry.runDir(runId),
      logFile: "/bench/log",
      router: false,
      versions: { opencode: "1.18.34", router: null, server: "0.1.0" },
      createdAt: new Date(Date.now() - index * 1000).toISOString(),
    });
  }
  const bareNode: number[] = [];
  const version: number[] = [];
  const status: number[] = [];
  for (let round = 0; round < Math.max(10, rounds); round++) {
    const started = performance.now();
    await execa(process.execPath, ["-e", "0"]);
    bareNode.push(performance.now() - started);
    version.push(await cli(["--version"], statusHome));
    status.push(await cli(["--json", "status", "--all"], statusHome));
  }
  rows.push({ what: "node -e 0", medianMs: median(bareNode), baseline: "-", ratio: 1 });
  rows.push({
    what: "openwork --version (CLI start-up)",
    medianMs: median(version),
    baseline: "node -e 0",
    ratio: median(version) / median(bareNode),
  });
  rows.push({
    what: "openwork status --all, 20 recorded runs (goal ≤ 0.5 s)",
    medianMs: median(status),
    baseline: "node -e 0",
    ratio: median(status) / median(bareNode),
  });

  console.log(
    JSON.stringify({ rounds, raw, host, docker, floor, apple, bareNode, version, status }, null, 2),
  );
  // Where the time goes: the median of each phase `start --json` reported (src/runs/timings.ts).
  console.log("\n| phase (median ms) | host | docker | container |\n| --- | --- | --- | --- |");
  const names = [...new Set(Object.values(phases).flatMap((byPhase) => Object.keys(byPhase)))];
  for (const name of names)
    console.log(
      `| ${name} | ${["none", "docker", "container"].map((kind) => (phases[kind]?.[name] ? Math.round(median(phases[kind][name])) : "-")).join(" | ")} |`,
    );
  console.log("\n| measurement | median | ratio |\n| --- | --- | --- |");
  for (const row of rows)
    console.log(
      `| ${row.what} | ${(row.medianMs / 1000).toFixed(2)} s | ${row.baseline === "-" ? "baseline" : `${row.ratio.toFixed(2)}× ${row.baseline}`} |`,
    );
}

await main();
