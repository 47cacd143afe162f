import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { execa } from "execa";
import { freePort, waitFor } from "../helpers/net.js";
import { ROUTER_DOUBLE } from "../helpers/runtime.js";

const run = (args: string[], env: Record<string, string>, timeout = 5000) =>
  execa(process.execPath, [ROUTER_DOUBLE, ...args], { env, extendEnv: false, reject: false, timeout });

test("router double: strict about argv and environment", async () => {
  const port = String(await freePort());
  const good = { OPENCODE_URL: "http://127.0.0.1:1", OPENCODE_ROUTER_HEALTH_PORT: port };
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [["serve"], good, /unexpected arguments/],
    [["serve", "/tmp", "--verbose"], good, /unexpected arguments/],
    [["start", "/tmp"], good, /unexpected arguments/],
    [["serve", "/nonexistent-dir"], good, /does not exist/],
    [["serve", "/tmp"], { OPENCODE_ROUTER_HEALTH_PORT: port }, /OPENCODE_URL is required/],
    [["serve", "/tmp"], { ...good, OPENCODE_URL: "ftp://x" }, /must be http/],
    [["serve", "/tmp"], { ...good, OPENCODE_ROUTER_HEALTH_PORT: "http" }, /must be a TCP port/],
    [["serve", "/tmp"], { ...good, ROUTER_DOUBLE_FAULT: "sometimes" }, /unknown ROUTER_DOUBLE_FAULT/],
  ];
  for (const [args, env, message] of cases) {
    const result = await run(args, env);
    assert.equal(result.exitCode, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(String(result.stderr), message);
  }
  const atOnce = await run(["serve", "/tmp"], { ...good, ROUTER_DOUBLE_FAULT: "exit-at-once" });
  assert.equal(atOnce.exitCode, 1);
  assert.equal(String((await run(["--version"], { ROUTER_DOUBLE_VERSION: "9.8.7" })).stdout), "9.8.7");
});

test("router double: /health follows the engine it was given; fault modes", async (t) => {
  let engineHealthy = true;
  const engine = http.createServer((req, res) => {
    const expected = `Basic ${Buffer.from("opencode:engine-pass-1").toString("base64")}`;
    if (req.headers.authorization !== expected) return void res.writeHead(401).end();
    res.writeHead(engineHealthy ? 200 : 503, { "content-type": "application/json" });
    res.end(JSON.stringify({ healthy: engineHealthy, version: "1.18.34" }));
  });
  await new Promise<void>((resolve) => engine.listen(0, "127.0.0.1", resolve));
  t.after(() => engine.close());
  const engineUrl = `http://127.0.0.1:${(engine.address() as { port: number }).port}`;
  const start = async (extra: Record<string, string>) => {
    const port = await freePort();
    const child = execa(process.execPath, [ROUTER_DOUBLE, "serve", "/tmp"], {
      env: {
        OPENCODE_URL: engineUrl,
        OPENCODE_ROUTER_HEALTH_PORT: String(port),
        OPENCODE_SERVER_PASSWORD: "engine-pass-1",
        ...extra,
      },
      extendEnv: false,
      reject: false,
    });
    t.after(() => child.kill("SIGKILL"));
    const health = () => fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status);
    await waitFor(() => health().catch(() => undefined), { timeoutMs: 5000, what: "the double to listen" });
    return { child, health };
  };
  const ok = await start({});
  assert.equal(await ok.health(), 200);
  engineHealthy = false;
  assert.equal(await ok.health(), 503, "unhealthy while its engine is");
  engineHealthy = true;
  const wrongPassword = await start({ OPENCODE_SERVER_PASSWORD: "not-the-one" });
  assert.equal(await wrongPassword.health(), 503, "unhealthy when it cannot authenticate to the engine");
  const never = await start({ ROUTER_DOUBLE_FAULT: "never-healthy" });
  assert.equal(await never.health(), 503);
  const crash = await start({ ROUTER_DOUBLE_FAULT: "crash-after:0.5" });
  const result = await crash.child;
  assert.equal(result.exitCode, 1);
  assert.match(String(result.stderr), /crash after 0.5 s/);
});
