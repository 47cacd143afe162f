import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { pidState } from "../../src/processes/inspect.js";
import { waitFor } from "../helpers/net.js";
import { type Exposition, parsePrometheus, sampleValue } from "../helpers/prometheus.js";
import {
  BUNDLED_OPENCODE,
  type RunningRuntime,
  routerWrapper,
  stageRuntime,
  startRuntime,
  tempPersist,
} from "../helpers/runtime.js";

// One runtime (real opencode, the router double) shared by the tests of this file, started as the
// entrypoint starts it, with the server on the Node that runs the tests (20): the bundle must run there.
let rt: RunningRuntime;
let engineVersion: string;

before(async () => {
  const persist = tempPersist();
  const runtimeId = await stageRuntime({
    persist,
    opencode: { path: BUNDLED_OPENCODE, version: "1.18.34" },
    router: routerWrapper(`${persist}/fixtures`),
  });
  rt = await startRuntime({ persist, runtimeId, router: true, node: process.execPath });
});

after(async () => {
  await rt?.stop();
});

/** GET /system/metrics with the host token, parsed (strictly). */
async function scrape(): Promise<Exposition> {
  const response = await fetch(`${rt.url}/system/metrics`, {
    headers: { "x-openwork-host-token": rt.hostToken },
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return parsePrometheus(await response.text());
}

async function engineSelfReport(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/global/health`, {
    headers: { authorization: `Basic ${Buffer.from(`opencode:${rt.enginePassword}`).toString("base64")}` },
  });
  const body = (await response.json()) as { version: string };
  return body.version;
}

test("summary and versions report the version the engine reports itself", async () => {
  const summary = await rt.call("GET", "/system/runtime/summary");
  assert.equal(summary.status, 200);
  assert.equal(summary.body.ok, true);
  assert.ok(summary.body.meta.requestId);
  const engine = summary.body.data.components.opencode;
  engineVersion = await engineSelfReport(new URL(engine.url).port as unknown as number);
  assert.equal(engineVersion, "1.18.34");
  assert.equal(engine.version, engineVersion);
  assert.equal(engine.status, "healthy");
  assert.equal(engine.adopted, true);
  assert.equal(summary.body.data.components["opencode-router"].status, "healthy");
  assert.equal(summary.body.data.server.node, process.versions.node);
  const versions = await rt.call("GET", "/system/runtime/versions");
  assert.equal(versions.status, 200);
  assert.equal(versions.body.data.active.opencode, engineVersion);
  assert.equal(versions.body.data.active["opencode-router"], "0.1.0-double");
  assert.equal(versions.body.data.pinned.versions.opencode, "1.18.34");
  assert.equal(versions.body.data.target, null);
});

test("the proxy serves /opencode/global/health and an event stream, with the engine's credentials added server-side", async () => {
  const health = await rt.call("GET", "/opencode/global/health");
  assert.equal(health.status, 200);
  assert.deepEqual(health.body, { healthy: true, version: "1.18.34" });
  assert.equal(health.headers.get("www-authenticate"), null);
  // the engine is told which directory a request is about: the workspace
  const where = await rt.call("GET", "/opencode/path");
  assert.equal(where.status, 200);
  assert.equal(where.body.directory, rt.workspace);
  const first = await new Promise<string>((resolve, reject) => {
    const req = http.get(
      `${rt.url}/opencode/global/event`,
      { headers: { authorization: `Bearer ${rt.clientToken}` } },
      (res) => {
        assert.equal(res.statusCode, 200);
        assert.match(String(res.headers["content-type"]), /^text\/event-stream/);
        let buffered = "";
        res.on("data", (chunk: Buffer) => {
          buffered += chunk.toString("utf8");
          const event = buffered.split("\n\n")[0];
          if (buffered.includes("\n\n") && event) {
            req.destroy();
            resolve(event);
          }
        });
      },
    );
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("no event within 10 s")));
  });
  const payload = JSON.parse(first.replace(/^data: /, "")) as { payload: { type: string } };
  assert.equal(payload.payload.type, "server.connected");
});

test("WebSockets are proxied too: a PTY session of the engine, in the workspace", async () => {
  const pty = await rt.call("POST", "/opencode/pty", { body: { command: "/bin/sh" } });
  assert.equal(pty.status, 200, JSON.stringify(pty.body));
  assert.equal(pty.body.cwd, rt.workspace);
  const connect = (token: string | undefined) =>
    new Promise<{ status: number; output?: string }>((resolve, reject) => {
      const req = http.request(`${rt.url}/opencode/pty/${pty.body.id}/connect`, {
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
          "sec-websocket-version": "13",
        },
      });
      req.on("upgrade", (res, socket) => {
        let output = "";
        socket.on("data", (data: Buffer) => {
          output += data.toString("latin1");
          if (output.includes("openwork-echo-ok")) {
            socket.destroy();
            resolve({ status: res.statusCode ?? 0, output });
          }
        });
        // one masked text frame: "echo openwork-echo-ok\n"
        const text = Buffer.from("echo openwork-echo-ok\n");
        const mask = Buffer.from([1, 2, 3, 4]);
        const masked = Buffer.from(text.map((byte, i) => byte ^ (mask[i % 4] as number)));
        socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | text.length]), mask, masked]));
      });
      req.on("response", (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      });
      req.on("error", reject);
      req.setTimeout(10_000, () => req.destroy(new Error("no answer within 10 s")));
      req.end();
    });
  const opened = await connect(rt.clientToken);
  assert.equal(opened.status, 101);
  assert.match(opened.output ?? "", /openwork-echo-ok/);
  assert.equal((await connect(undefined)).status, 401);
});

test("tokens: missing or wrong → 401, client token on upgrade → 403, host mints owner tokens", async () => {
  for (const token of [null, "wrong-token-0123456789"]) {
    for (const route of ["/system/runtime/summary", "/system/runtime/versions", "/opencode/global/health"]) {
      const result = await rt.call("GET", route, { token });
      assert.equal(result.status, 401, `${route} with ${token ?? "no token"}`);
      assert.equal(result.body.ok, false);
      assert.equal(result.body.error.code, "unauthorized");
      assert.equal(result.body.error.requestId, result.headers.get("x-request-id"));
    }
  }
  // the engine's password is not a token of ours
  assert.equal((await rt.call("GET", "/system/runtime/summary", { token: rt.enginePassword })).status, 401);
  const upgrade = await rt.call("POST", "/system/runtime/upgrade", { body: { runtimeId: "whatever" } });
  assert.equal(upgrade.status, 403);
  assert.equal(upgrade.body.error.code, "forbidden");
  assert.equal((await rt.call("POST", "/tokens", { body: {} })).status, 403);
  assert.equal((await rt.call("GET", "/system/health", { token: null })).status, 200);
  const minted = await rt.call("POST", "/tokens", {
    token: rt.hostToken,
    hostHeader: true,
    body: { label: "test" },
  });
  assert.equal(minted.status, 201);
  assert.equal(minted.body.data.scope, "owner");
  const owner = await rt.call("GET", "/system/runtime/versions", { token: minted.body.data.token });
  assert.equal(owner.status, 200);
  assert.equal(
    (await rt.call("POST", "/system/runtime/upgrade", { token: minted.body.data.token, body: {} })).status,
    403,
  );
  // host token as a bearer works too, and a bad body is a 400 naming the problem
  const bad = await rt.call("POST", "/system/runtime/upgrade", {
    token: rt.hostToken,
    body: { runtimeId: "../x" },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /runtimeId/);
  const missing = await rt.call("POST", "/system/runtime/upgrade", {
    token: rt.hostToken,
    body: { runtimeId: "0123456789abcdef" },
  });
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, "runtime_not_found");
});

test("the OpenAPI document is generated from the routes", async () => {
  const response = await fetch(`${rt.url}/system/openapi.json`);
  assert.equal(response.status, 200);
  const doc = (await response.json()) as {
    openapi: string;
    paths: Record<string, Record<string, { security: unknown[] }>>;
  };
  assert.equal(doc.openapi, "3.1.0");
  for (const route of [
    "/system/health",
    "/system/runtime/summary",
    "/system/runtime/versions",
    "/system/runtime/upgrade",
    "/system/runtime/upgrade/{operationId}",
    "/system/opencode/health",
    "/system/router/health",
    "/tokens",
    "/opencode/{path}",
    "/system/metrics",
  ]) {
    assert.ok(doc.paths[route], `${route} documented`);
  }
  const metrics = doc.paths["/system/metrics"]?.get as unknown as {
    responses: Record<string, { content?: Record<string, unknown> }>;
  };
  assert.deepEqual(Object.keys(metrics.responses["200"]?.content ?? {}), [
    "text/plain; version=0.0.4; charset=utf-8",
  ]);
  assert.ok(doc.paths["/system/runtime/upgrade"]?.post?.security.length);
  // Probed now, with a 2 s timeout: an engine still busy with the PTY session of the test before may
  // answer one probe late (a 503 engine_unhealthy, which is right); the route is what is checked here.
  for (const route of ["/system/opencode/health", "/system/router/health"]) {
    const answer = await waitFor(
      async () => {
        const result = await rt.call("GET", route);
        return result.status === 200 ? result : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 250, what: `${route} to answer 200` },
    );
    assert.equal(answer.body.data.healthy, true);
  }
});

test("/system/metrics: host token only; N requests through /opencode/* are N more answers 200 from opencode", async () => {
  assert.equal((await rt.call("GET", "/system/metrics", { token: null })).status, 401);
  const client = await rt.call("GET", "/system/metrics");
  assert.equal(client.status, 403, "the client token has no host scope");
  assert.equal((await rt.call("GET", "/system/metrics", { token: rt.hostToken })).status, 200, "bearer");
  const proxied = { target: "opencode", code: "200" };
  const before = sampleValue(await scrape(), "openwork_server_proxied_requests_total", proxied) ?? 0;
  const n = 7;
  for (let i = 0; i < n; i++) assert.equal((await rt.call("GET", "/opencode/global/health")).status, 200);
  const after = await scrape();
  assert.equal(sampleValue(after, "openwork_server_proxied_requests_total", proxied), before + n);
  assert.equal(sampleValue(after, "openwork_server_component_restarts_total", { component: "opencode" }), 0);
  assert.ok(
    (sampleValue(after, "openwork_server_health_probe_duration_seconds_count", {
      component: "opencode",
      outcome: "ok",
    }) ?? 0) > 0,
    "the engine's probes are timed",
  );
  assert.ok((sampleValue(after, "openwork_server_process_start_time_seconds") ?? 0) > 0);
});

test("kill -9 the engine: the summary shows the crash and the restart; healthy again within 5 s", async () => {
  const before = (await rt.call("GET", "/system/runtime/summary")).body.data.components.opencode;
  const killedAt = Date.now();
  process.kill(before.pid, "SIGKILL");
  const healthyAfter = await waitFor(
    async () => {
      const result = await rt.call("GET", "/opencode/global/health").catch(() => undefined);
      return result?.status === 200 && result.body.healthy === true ? Date.now() - killedAt : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: "the engine to be healthy again" },
  );
  const afterKill = (await rt.call("GET", "/system/runtime/summary")).body.data.components.opencode;
  // On failure, say where the time went: noticed, backoff, start, healthy.
  const timeline = afterKill.events
    .slice(-4)
    .map((event: { at: string; type: string }) => `${event.type} +${Date.parse(event.at) - killedAt} ms`)
    .join(", ");
  assert.ok(healthyAfter < 5000, `healthy again after ${healthyAfter} ms (${timeline})`);
  assert.notEqual(afterKill.pid, before.pid);
  assert.equal(afterKill.lastExit.pid, before.pid);
  assert.match(afterKill.lastExit.reason, /exited unexpectedly/);
  assert.equal(afterKill.restarts.total, before.restarts.total + 1);
  assert.equal(
    sampleValue(await scrape(), "openwork_server_component_restarts_total", { component: "opencode" }),
    1,
  );
  assert.ok(afterKill.events.some((event: { type: string }) => event.type === "exited"));
  assert.equal(afterKill.adopted, false);
  assert.ok(afterKill.recentOutput.length > 0, "the engine's recent output is in the summary");
  // the router was told this engine's URL (its health follows the engine it was given)
  const router = await rt.call("GET", "/system/router/health");
  assert.equal(router.status, 200);
});

test("kill -9 the router: it is restarted against the engine's current URL", async () => {
  const before = (await rt.call("GET", "/system/runtime/summary")).body.data.components["opencode-router"];
  process.kill(before.pid, "SIGKILL");
  await waitFor(
    async () => {
      const router = (await rt.call("GET", "/system/runtime/summary")).body.data.components[
        "opencode-router"
      ];
      return router.pid !== before.pid && router.status === "healthy" ? router : undefined;
    },
    { timeoutMs: 15_000, what: "the router to be restarted" },
  );
  const health = await rt.call("GET", "/system/router/health");
  assert.equal(health.status, 200);
  const metrics = await scrape();
  assert.equal(
    sampleValue(metrics, "openwork_server_component_restarts_total", { component: "opencode-router" }),
    1,
  );
  assert.equal(
    sampleValue(metrics, "openwork_server_component_restarts_total", { component: "opencode" }),
    1,
  );
});

test("stopping the server stops the engine and the router: no orphans", async () => {
  const components = (await rt.call("GET", "/system/runtime/summary")).body.data.components;
  await rt.stop();
  assert.equal(pidState(components.opencode.pid) === "alive", false);
  assert.equal(pidState(components["opencode-router"].pid) === "alive", false);
});
