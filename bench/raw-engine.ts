/**
 * The baseline every start ratio is measured against: the bundled opencode
 * binary started by hand (`opencode serve`, fresh HOME) until /global/health
 * answers. `count` engines start at once and the time is until the last is
 * healthy — what the machine itself needs to boot that many engines.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { request } from "undici";
import { nextAttemptTimeout } from "../src/retry/poll.js";
import { findBundled } from "../src/sidecars/bundled.js";
import { hostTarget } from "../src/sidecars/platform.js";
import { freePort } from "../test/helpers/net.js";

export async function rawEngines(count: number): Promise<number> {
  const lookup = findBundled("opencode", hostTarget());
  if (!lookup.found) throw new Error(lookup.reason);
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  const children: ChildProcess[] = [];
  const started = performance.now();
  try {
    for (const port of ports) {
      const home = mkdtempSync(path.join(os.tmpdir(), "bench-raw-"));
      children.push(
        spawn(lookup.sidecar.path, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
          env: { ...process.env, HOME: home, OPENCODE_SERVER_PASSWORD: "bench-password" },
          stdio: "ignore",
        }),
      );
    }
    await Promise.all(ports.map((port) => healthy(port)));
    return performance.now() - started;
  } finally {
    for (const child of children) child.kill("SIGKILL");
  }
}

async function healthy(port: number): Promise<void> {
  // The same short-then-doubling attempt timeouts as the entrypoint's probe: opencode leaves a
  // request that arrives just after it starts listening unanswered, and a long fixed timeout
  // would charge that wait to the baseline.
  let attemptMs: number | undefined;
  let timedOut = false;
  for (;;) {
    attemptMs = nextAttemptTimeout(attemptMs, timedOut, 2000);
    timedOut = false;
    try {
      const response = await request(`http://127.0.0.1:${port}/global/health`, {
        headers: { authorization: `Basic ${Buffer.from("opencode:bench-password").toString("base64")}` },
        headersTimeout: attemptMs,
      });
      const body = await response.body.text();
      if (response.statusCode === 200 && body.includes('"healthy":true')) return;
    } catch (error) {
      // not yet listening, or listening but not answering yet
      timedOut = (error as { code?: string }).code === "UND_ERR_HEADERS_TIMEOUT";
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
