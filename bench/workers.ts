import "./scratch.js";
/**
 * Workers benchmark (not a test): the time `openwork workers start` takes to
 * bring up 8 Docker workers over the time it takes for 1, measured in the same
 * run (goal ≤ 2.5×), and the latency of `openwork workers status` with those 8
 * running (goal ≤ 0.5 s), beside `openwork status --all` over the same runs.
 *
 *   npm run build && node dist/bench/workers.js [--rounds N] [--workers N] [--parallel N]
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { createDockerClient } from "../src/docker/client.js";
import { CLI } from "../test/helpers/cli.js";
import { sharedSandboxImage } from "../test/helpers/docker.js";
import { sandboxWorkspace } from "../test/helpers/workspace.js";
import { rawEngines } from "./raw-engine.js";

const args = process.argv.slice(2);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(name);
  return index >= 0 ? Number(args[index + 1]) || fallback : fallback;
};
const rounds = option("--rounds", 3);
const fleetSize = option("--workers", 8);
const parallel = option("--parallel", fleetSize);
const env = { OPENWORK_LABELS: "openwork.bench=1" };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function fleetFile(dir: string, count: number): string {
  const file = path.join(dir, `workers-${count}.json`);
  const workers = Array.from({ length: count }, (_, index) => ({
    name: `w${index + 1}`,
    workspace: sandboxWorkspace(`bench-worker-${index + 1}-`),
    sandbox: "docker",
    cpus: 1,
    memory: "1g",
  }));
  writeFileSync(file, JSON.stringify({ workers }, null, 2));
  return file;
}

async function cli(home: string, argv: string[]) {
  const began = performance.now();
  const result = await execa(process.execPath, [CLI, ...argv], {
    env: { ...env, OPENWORK_HOME: home },
    reject: false,
    stdin: "ignore",
  });
  const ms = performance.now() - began;
  if (result.exitCode !== 0 && !(argv.includes("status") && result.exitCode === 3))
    throw new Error(
      `openwork ${argv.join(" ")} exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`,
    );
  return { ms, stdout: String(result.stdout) };
}

async function fleetUp(home: string, file: string): Promise<number> {
  const { ms } = await cli(home, ["workers", "--config", file, "start", "--parallel", String(parallel)]);
  return ms;
}

async function fleetDown(home: string, file: string): Promise<void> {
  await cli(home, ["workers", "--config", file, "stop"]);
}

const docker = createDockerClient();
await sharedSandboxImage(docker);
const home = mkdtempSync(path.join(os.tmpdir(), "bench-workers-home-"));
const dir = mkdtempSync(path.join(os.tmpdir(), "bench-workers-"));
const one = fleetFile(dir, 1);
const many = fleetFile(dir, fleetSize);
// Warm the store and the image check once, as a user's second start would be.
await fleetUp(home, one);
await fleetDown(home, one);

const rawOne: number[] = [];
const rawMany: number[] = [];
const single: number[] = [];
const fleet: number[] = [];
const status: number[] = [];
const statusSupervised: number[] = [];
const statusAll: number[] = [];
for (let round = 0; round < rounds; round++) {
  // The floor, in the same round: bare engines on the host, one, then all at once.
  rawOne.push(await rawEngines(1));
  rawMany.push(await rawEngines(fleetSize));
  single.push(await fleetUp(home, one));
  await fleetDown(home, one);
  fleet.push(await fleetUp(home, many));
  for (let i = 0; i < 5; i++) {
    status.push((await cli(home, ["workers", "--config", many, "status"])).ms);
    statusAll.push((await cli(home, ["status", "--all"])).ms);
  }
  // With a supervisor, status reads its heartbeats instead of asking every runtime.
  await cli(home, ["workers", "--config", many, "start", "--supervise"]);
  await new Promise((resolve) => setTimeout(resolve, 6000));
  for (let i = 0; i < 5; i++)
    statusSupervised.push((await cli(home, ["workers", "--config", many, "status"])).ms);
  await fleetDown(home, many);
  process.stderr.write(
    `round ${round + 1}/${rounds}: 1 worker ${(single.at(-1) ?? 0) / 1000} s, ${fleetSize} workers ${(fleet.at(-1) ?? 0) / 1000} s\n`,
  );
}

const nodeBare: number[] = [];
for (let i = 0; i < 5; i++) {
  const began = performance.now();
  await execa(process.execPath, ["-e", "0"]);
  nodeBare.push(performance.now() - began);
}
const ratio = median(fleet) / median(single);
const floor = median(rawMany) / median(rawOne);
const rows = [
  ["bare engine, 1 (host)", `${(median(rawOne) / 1000).toFixed(2)} s`, "—"],
  [
    `bare engines, ${fleetSize} at once (host)`,
    `${(median(rawMany) / 1000).toFixed(2)} s`,
    `${floor.toFixed(2)}× (the machine's own floor)`,
  ],
  ["workers start, 1 Docker worker", `${(median(single) / 1000).toFixed(2)} s`, "—"],
  [
    `workers start, ${fleetSize} Docker workers (--parallel ${parallel})`,
    `${(median(fleet) / 1000).toFixed(2)} s`,
    `${ratio.toFixed(2)}× (goal ≤ 2.5×; ${(ratio / floor).toFixed(2)}× the floor's ratio)`,
  ],
  [
    `workers status, ${fleetSize} running, no supervisor (asks each runtime)`,
    `${(median(status) / 1000).toFixed(2)} s`,
    "goal ≤ 0.5 s",
  ],
  [
    `workers status, ${fleetSize} running, supervised (reads its heartbeats)`,
    `${(median(statusSupervised) / 1000).toFixed(2)} s`,
    "goal ≤ 0.5 s",
  ],
  ["node -e 0 (for scale)", `${(median(nodeBare) / 1000).toFixed(2)} s`, "—"],
  [`status --all, same ${fleetSize} runs`, `${(median(statusAll) / 1000).toFixed(2)} s`, "—"],
];
console.log(`workers benchmark: ${rounds} rounds, ${os.cpus().length} cores, medians`);
console.log("| measure | time | ratio / goal |\n| --- | --- | --- |");
for (const row of rows) console.log(`| ${row.join(" | ")} |`);
console.log(
  JSON.stringify({
    rounds,
    workers: fleetSize,
    parallel,
    singleMs: single,
    fleetMs: fleet,
    statusMs: status,
    statusSupervisedMs: statusSupervised,
    nodeBareMs: nodeBare,
    statusAllMs: statusAll,
    ratio,
    rawOneMs: rawOne,
    rawManyMs: rawMany,
    floor,
  }),
);
await execa(process.execPath, [CLI, "stop", "--all"], {
  env: { ...env, OPENWORK_HOME: home },
  reject: false,
});
