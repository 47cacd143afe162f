// Sidecar staging benchmark: node dist/bench/staging.js [--runs N] [--json]
//
// Stages the real bundled sidecars (opencode, node, the server bundle) served
// by a local HTTP mirror, and compares in the same run:
//   baseline  sha256sum + cp of the same files into a fresh directory (what a
//             runner that copies and hashes on every start does)
//   cold      stageRuntime into an empty store and persist dir: download from
//             the mirror + sha256 while streaming + fsync + hard link
//   warm      stageRuntime again, same store and persist dir (a second start)
//   warm-new  stageRuntime into a new persist dir with a warm store (a new workspace)
// and reports medians and ratios. Not a test: nothing is asserted.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { execa } from "execa";
import { validateManifest } from "../src/manifest/parse.js";
import { findBundled } from "../src/sidecars/bundled.js";
import { sha256File } from "../src/sidecars/hash.js";
import { type SidecarName, STAGED_FILE } from "../src/sidecars/names.js";
import { stageRuntime } from "../src/staging/stage.js";
import { BlobStore } from "../src/store/store.js";
import { Mirror } from "../test/helpers/mirror.js";

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf("--runs") + 1] ?? 3) || 3;
const json = args.includes("--json");
const target = "linux-x64" as const;

const names: SidecarName[] = ["opencode", "openwork-server", "node"];
const files = names.map((name) => {
  const found = findBundled(name, target);
  if (!found.found) throw new Error(`${name}: ${found.reason} (the benchmark needs the bundled sidecars)`);
  return { name, path: found.sidecar.path, version: found.sidecar.declaredVersion };
});
const hashed = await Promise.all(files.map(async (file) => ({ ...file, ...(await sha256File(file.path)) })));
const totalBytes = hashed.reduce((sum, f) => sum + f.size, 0);

const mirror = await Mirror.start();
const manifest = validateManifest(
  {
    manifestVersion: 1,
    runtimeVersion: "0.1.0",
    generatedAt: new Date().toISOString(),
    sidecars: Object.fromEntries(
      hashed.map((f) => [
        f.name,
        {
          targets: {
            [target]: {
              version: f.name === "openwork-server" ? "0.1.0" : f.version,
              file: STAGED_FILE[f.name],
              sha256: f.sha256,
              size: f.size,
              source: { type: "url", url: mirror.addFile(`bench/${f.name}`, { file: f.path }) },
            },
          },
        },
      ]),
    ),
  },
  "benchmark manifest",
);

const scratch = mkdtempSync(path.join(os.tmpdir(), "openwork-bench-"));
const samples: Record<"baseline" | "cold" | "warm" | "warmNew", number[]> = {
  baseline: [],
  cold: [],
  warm: [],
  warmNew: [],
};
const written: Record<"cold" | "warm" | "warmNew", number> = { cold: 0, warm: 0, warmNew: 0 };

try {
  for (let run = 0; run < runs; run++) {
    const dir = path.join(scratch, `run${run}`);
    // baseline: hash and copy every file, as a runner without a store does on each start
    const copyDir = path.join(dir, "copy");
    await execa("mkdir", ["-p", copyDir]);
    let t0 = performance.now();
    for (const f of hashed) {
      await execa("sha256sum", [f.path]);
      await execa("cp", [f.path, path.join(copyDir, STAGED_FILE[f.name])]);
    }
    await execa("sync", ["-f", copyDir]);
    samples.baseline.push(performance.now() - t0);
    rmSync(copyDir, { recursive: true, force: true });

    // Prefer the URL source: "auto" would find the bundled packages and skip the download.
    const store = new BlobStore({ dir: path.join(dir, "store"), locksDir: path.join(dir, "locks") });
    const stage = (stagingRoot: string) =>
      stageRuntime({
        manifest,
        target,
        stagingRoot,
        store,
        sources: { prefer: "url" },
        http: { progress: "off" },
      });
    t0 = performance.now();
    const cold = await stage(path.join(dir, "persist"));
    samples.cold.push(performance.now() - t0);
    written.cold = cold.bytesWritten;

    t0 = performance.now();
    const warm = await stage(path.join(dir, "persist"));
    samples.warm.push(performance.now() - t0);
    written.warm = warm.bytesWritten;

    t0 = performance.now();
    const warmNew = await stage(path.join(dir, "persist2"));
    samples.warmNew.push(performance.now() - t0);
    written.warmNew = warmNew.bytesWritten;
    rmSync(dir, { recursive: true, force: true });
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
  await mirror.close();
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};
const m = {
  baseline: median(samples.baseline),
  cold: median(samples.cold),
  warm: median(samples.warm),
  warmNew: median(samples.warmNew),
};
const result = {
  runs,
  files: hashed.map((f) => ({ name: f.name, size: f.size })),
  totalBytes,
  medianMs: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Number(v.toFixed(1))])),
  bytesWritten: written,
  ratios: {
    coldOverBaseline: Number((m.cold / m.baseline).toFixed(2)),
    warmOverCold: Number((m.warm / m.cold).toFixed(4)),
    warmNewOverCold: Number((m.warmNew / m.cold).toFixed(4)),
    warmOverBaseline: Number((m.warm / m.baseline).toFixed(4)),
  },
  machine: { cpus: os.cpus().length, node: process.version, platform: `${process.platform}-${process.arch}` },
};
if (json) {
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} else {
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  process.stdout.write(
    [
      `sidecars: ${hashed.map((f) => `${f.name} ${mib(f.size)}`).join(", ")} (${mib(totalBytes)}); ${runs} runs, medians`,
      "| case | median | bytes written | ratio |",
      "| --- | --- | --- | --- |",
      `| baseline: sha256sum + cp | ${m.baseline.toFixed(0)} ms | ${mib(totalBytes)} | 1 |`,
      `| cold stage (download from local mirror + verify + stage) | ${m.cold.toFixed(0)} ms | ${mib(written.cold)} | ${result.ratios.coldOverBaseline} × baseline |`,
      `| warm stage (same manifest, same persist dir) | ${m.warm.toFixed(1)} ms | ${written.warm} B | ${result.ratios.warmOverCold} × cold |`,
      `| warm store, new persist dir | ${m.warmNew.toFixed(1)} ms | ${written.warmNew} B | ${result.ratios.warmNewOverCold} × cold |`,
      "",
    ].join("\n"),
  );
}
