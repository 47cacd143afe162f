// Runs the test tiers with node's test runner and then sweeps every Docker
// object that carries the test label, so that a failed or killed test cannot
// leave containers, volumes, networks or images behind.
//   node scripts/test.mjs [unit|integration|e2e ...]   (default: all tiers)
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const tiers = process.argv.slice(2).filter((arg) => !arg.startsWith("-"));
const selected = tiers.length > 0 ? tiers : ["unit", "integration", "e2e"];

function findTests(dir) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...findTests(file));
    else if (name.endsWith(".test.js")) out.push(file);
  }
  return out;
}

const files = selected.flatMap((tier) => findTests(path.join(root, "dist", "test", tier)));
if (files.length === 0) {
  console.error(`no test files found for ${selected.join(", ")} (run "npm run build" first)`);
  process.exit(1);
}

const { sweepTestObjects } = await import(path.join(root, "dist", "test", "helpers", "sweep.js"));
await sweepTestObjects("before the run");
const started = Date.now();
const result = spawnSync(
  process.execPath,
  [
    "--test",
    "--test-reporter=spec",
    `--test-concurrency=${process.env.OPENWORK_TEST_CONCURRENCY ?? 2}`,
    ...files,
  ],
  { cwd: root, stdio: "inherit", env: { ...process.env, OPENWORK_TEST_RUN: "1" } },
);
const swept = await sweepTestObjects("after the run");
console.error(
  `test files: ${files.length}; wall time ${((Date.now() - started) / 1000).toFixed(1)} s; leftovers swept: ${swept}`,
);
process.exit(result.status ?? 1);
