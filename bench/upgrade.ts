import "./scratch.js";
/**
 * Rolling upgrade vs stop-then-start, side by side in one run, under the same
 * steady request loop (/system/health and /opencode/global/health).
 *
 *   node dist/bench/upgrade.js [--runs N] [--json]
 *
 * Both move a runtime from opencode 1.18.33 + router double 0.1.0 + server
 * 0.1.0 to opencode 1.18.34 + router double 0.2.0 + server 0.1.1-bench:
 * - rolling: POST /system/runtime/upgrade; duration = until the operation succeeded;
 * - stop-then-start: SIGTERM the runtime, start the new one on the same ports;
 *   duration = until the server answers and the proxied engine is healthy.
 * Reported: duration, requests sent and failed during the window, and ratios.
 */
import path from "node:path";
import { closedLoop, type LoadResult } from "../test/helpers/load.js";
import { waitFor } from "../test/helpers/net.js";
import { PREVIOUS_OPENCODE, previousOpencode } from "../test/helpers/npm-binary.js";
import {
  BUNDLED_OPENCODE,
  type RunningRuntime,
  routerWrapper,
  serverBundle,
  stageRuntime,
  startRuntime,
  tempPersist,
} from "../test/helpers/runtime.js";

interface Sample {
  mode: "rolling" | "stop-then-start";
  durationMs: number;
  requests: number;
  failed: number;
  firstFailures: string[];
}

const PATHS = ["/system/health", "/opencode/global/health"];
const LOAD = { workers: 2, intervalMs: 20 };

async function stage(persist: string): Promise<{ oldId: string; newId: string }> {
  const fixtures = path.join(persist, "fixtures");
  const oldId = await stageRuntime({
    persist,
    opencode: { path: await previousOpencode(), version: PREVIOUS_OPENCODE },
    router: routerWrapper(fixtures),
  });
  const newId = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    router: routerWrapper(fixtures, { version: "0.2.0-double" }),
    server: await serverBundle("0.1.1-bench"),
  });
  return { oldId, newId };
}

function check(p: string, status: number, body: string): boolean {
  if (status !== 200) return false;
  return p !== "/opencode/global/health" || (JSON.parse(body) as { healthy?: boolean }).healthy === true;
}

async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 1000));
}

async function rolling(): Promise<Sample> {
  const persist = tempPersist();
  const { oldId, newId } = await stage(persist);
  const rt = await startRuntime({ persist, runtimeId: oldId, router: true });
  try {
    const load = closedLoop(rt.url, rt.clientToken, PATHS, { ...LOAD, check });
    await settle();
    const started = Date.now();
    const accepted = await rt.call("POST", "/system/runtime/upgrade", {
      token: rt.hostToken,
      body: { runtimeId: newId },
    });
    if (accepted.status !== 202) throw new Error(`upgrade refused: ${JSON.stringify(accepted.body)}`);
    const operation = await waitFor(
      async () => {
        const result = await rt.call("GET", `/system/runtime/upgrade/${accepted.body.data.operationId}`);
        return result.body.data.state === "running" ? undefined : result.body.data;
      },
      { timeoutMs: 120_000, intervalMs: 50, what: "the upgrade" },
    );
    const durationMs = Date.now() - started;
    if (operation.state !== "succeeded")
      throw new Error(`upgrade ${operation.state}: ${JSON.stringify(operation.error)}`);
    await settle();
    const result = await load.stop();
    return sample("rolling", durationMs, result);
  } finally {
    await rt.stop();
  }
}

async function stopThenStart(): Promise<Sample> {
  const persist = tempPersist();
  const { oldId, newId } = await stage(persist);
  let rt: RunningRuntime = await startRuntime({ persist, runtimeId: oldId, router: true });
  try {
    const load = closedLoop(rt.url, rt.clientToken, PATHS, { ...LOAD, check });
    await settle();
    const started = Date.now();
    await rt.stop();
    rt = await startRuntime({ persist, runtimeId: newId, router: true, same: rt });
    await waitFor(
      async () => {
        const health = await rt.call("GET", "/opencode/global/health").catch(() => undefined);
        return health?.status === 200 && health.body.version === "1.18.34" ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 20, what: "the new runtime" },
    );
    const durationMs = Date.now() - started;
    await settle();
    const result = await load.stop();
    return sample("stop-then-start", durationMs, result);
  } finally {
    await rt.stop();
  }
}

function sample(mode: Sample["mode"], durationMs: number, result: LoadResult): Sample {
  return {
    mode,
    durationMs,
    requests: result.total,
    failed: result.failed,
    firstFailures: result.failures.slice(0, 3),
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

const runsArg = process.argv.indexOf("--runs");
const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 1;
const samples: Sample[] = [];
for (let run = 0; run < runs; run++) {
  // alternate the order so neither mode always runs on a warmer machine
  const pair = run % 2 === 0 ? [rolling, stopThenStart] : [stopThenStart, rolling];
  for (const fn of pair) {
    const s = await fn();
    samples.push(s);
    process.stderr.write(`${s.mode}: ${s.durationMs} ms, ${s.failed}/${s.requests} requests failed\n`);
  }
}
const of = (mode: Sample["mode"]) => samples.filter((s) => s.mode === mode);
const summary = {
  machine: { cpus: (await import("node:os")).cpus().length, node: process.versions.node },
  runs,
  load: `${LOAD.workers} workers, one request per ${LOAD.intervalMs} ms each, alternating ${PATHS.join(" and ")}`,
  rolling: {
    medianDurationMs: median(of("rolling").map((s) => s.durationMs)),
    failed: of("rolling").map((s) => s.failed),
    requests: of("rolling").map((s) => s.requests),
  },
  stopThenStart: {
    medianDurationMs: median(of("stop-then-start").map((s) => s.durationMs)),
    failed: of("stop-then-start").map((s) => s.failed),
    requests: of("stop-then-start").map((s) => s.requests),
  },
  ratioDuration: 0,
  samples,
};
summary.ratioDuration = Number(
  (summary.rolling.medianDurationMs / summary.stopThenStart.medianDurationMs).toFixed(2),
);
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
