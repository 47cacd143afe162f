import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { register as globalRegistry, Registry } from "prom-client";
import { endpoints, PROMETHEUS_TEXT, type UpgradeOperation } from "../../src/contract/api.js";
import type { ServeEnv } from "../../src/contract/env.js";
import { openApiDocument } from "../../src/contract/openapi.js";
import { createLogger } from "../../src/logging/logger.js";
import { METRICS_SLOT, type ServerMetrics, serverMetrics } from "../../src/server/metrics.js";
import { proxyRoutes } from "../../src/server/routes/proxy.js";
import { systemRoutes } from "../../src/server/routes/system.js";
import { type ComponentDefinition, defaultPolicy, Supervised } from "../../src/server/supervisor.js";
import type { Topology } from "../../src/server/topology.js";
import { upgradeOutcome } from "../../src/server/upgrade.js";
import { freePort, waitFor } from "../helpers/net.js";
import { type Exposition, parsePrometheus, sampleValue } from "../helpers/prometheus.js";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "openwork-metrics-"));

async function scrape(): Promise<Exposition> {
  return parsePrometheus(await serverMetrics().registry.metrics());
}

/** A series' value now, 0 when it does not exist yet. */
async function seriesValue(name: string, labels: Record<string, string>): Promise<number> {
  return sampleValue(await scrape(), name, labels) ?? 0;
}

test("the Prometheus parser reads HELP, TYPE and labelled samples, and rejects what is malformed", () => {
  const text = [
    "# HELP a_total Things, with a \\\\ and a \\n in the help",
    "# TYPE a_total counter",
    'a_total{k="v",q="say \\"hi\\"\\n"} 3',
    "a_total 1 1700000000000",
    "# a plain comment",
    "# TYPE h histogram",
    'h_bucket{le="0.5"} 1',
    'h_bucket{le="+Inf"} 2',
    "h_sum 0.75",
    "h_count 2",
    "# TYPE g gauge",
    "g Nan",
    'g{x="1"} -Inf',
    'g{y="2"} 1.5e-3',
    "",
  ].join("\n");
  const parsed = parsePrometheus(text);
  assert.equal(parsed.families.get("a_total")?.help, "Things, with a \\ and a \n in the help");
  assert.equal(parsed.families.get("a_total")?.type, "counter");
  assert.equal(sampleValue(parsed, "a_total", { k: "v" }), 3);
  assert.deepEqual(parsed.families.get("a_total")?.samples[0]?.labels, { k: "v", q: 'say "hi"\n' });
  assert.equal(parsed.families.get("a_total")?.samples[1]?.timestamp, 1700000000000);
  assert.equal(sampleValue(parsed, "h_count"), 2);
  assert.equal(sampleValue(parsed, "h_bucket", { le: "+Inf" }), 2);
  assert.equal(sampleValue(parsed, "g", { y: "2" }), 0.0015);
  assert.throws(() => sampleValue(parsed, "g"), /3 series of g/);
  const bad: Array<[string, RegExp]> = [
    ["# TYPE a counter\na 1", /does not end with a newline/],
    ["a 1\n", /before any TYPE/],
    ["# TYPE a counter\na one\n", /not a number/],
    ["# TYPE a counter\na  1\n", /one space/],
    ["# TYPE a counter\na 1 2 3\n", /one space/],
    ["# TYPE a counter\na 1 x\n", /not a timestamp/],
    ['# TYPE a counter\na{k="v} 1\n', /unterminated/],
    ["# TYPE a counter\na{k=v} 1\n", /expected ="…"/],
    ['# TYPE a counter\na{k="v" j="w"} 1\n', /expected , or }/],
    ['# TYPE a counter\na{k="\\t"} 1\n', /bad escape/],
    ['# TYPE a counter\na{k="1",k="2"} 1\n', /given twice/],
    ['# TYPE a counter\na{__name__="x"} 1\n', /reserved label/],
    ["# TYPE a counter\na 1\na 2\n", /the same series twice/],
    ["# TYPE a counter\n# TYPE a gauge\n", /second TYPE/],
    ["# TYPE a blob\n", /unknown type/],
    ["# HELP 9a x\n", /not a metric name/],
    ["# HELP a x\n# HELP a y\n", /second HELP/],
    ["# HELP a bad \\t\n", /bad escape/],
    ["#HELP a x\n", /malformed HELP or TYPE/],
    ["# TYPE h histogram\nh_bucket 1\n", /without le/],
    ["# TYPE h histogram\nh 1\n", /before any TYPE/],
    ['{a="1"} 1\n', /expected a metric name/],
  ];
  for (const [input, why] of bad)
    assert.throws(() => parsePrometheus(input), why, `should reject ${JSON.stringify(input)}`);
});

test("/system/metrics: a private registry in the Prometheus text format, host token only, in the OpenAPI document", async () => {
  const metrics = serverMetrics();
  assert.notEqual(metrics.registry, globalRegistry, "never prom-client's global registry");
  assert.equal(metrics.registry.contentType, PROMETHEUS_TEXT, "the contract names what the registry answers");
  assert.equal(Registry.PROMETHEUS_CONTENT_TYPE, PROMETHEUS_TEXT);
  const exposition = await scrape();
  const types = Object.fromEntries([...exposition.families.values()].map((f) => [f.name, f.type]));
  assert.equal(types.openwork_server_component_restarts_total, "counter");
  assert.equal(types.openwork_server_health_probe_duration_seconds, "histogram");
  assert.equal(types.openwork_server_proxied_requests_total, "counter");
  assert.equal(types.openwork_server_upgrade_duration_seconds, "histogram");
  assert.equal(types.openwork_server_process_cpu_user_seconds_total, "counter", "default process metrics");
  assert.equal(types.openwork_server_nodejs_eventloop_lag_seconds, "gauge");
  for (const family of exposition.families.values()) {
    assert.match(family.name, /^openwork_server_/, "every metric carries the prefix");
    assert.ok(family.help, `${family.name} has HELP`);
  }
  assert.equal(
    (await globalRegistry.getMetricsAsJSON()).some((m) => m.name.startsWith("openwork_server_")),
    false,
    "nothing was registered in the global registry",
  );

  // the contract: host scope, a raw text answer, and the OpenAPI document says so
  assert.equal(endpoints.metrics.auth, "host");
  const doc = openApiDocument(Object.values(endpoints), "0.0.0-test") as {
    paths: Record<
      string,
      Record<string, { security: unknown[]; responses: Record<string, { content?: object }> }>
    >;
  };
  const operation = doc.paths["/system/metrics"]?.get;
  assert.ok(operation, "/system/metrics is documented");
  assert.deepEqual(operation.security, [{ hostToken: [] }, { hostBearer: [] }]);
  assert.deepEqual(operation.responses["200"]?.content, {
    [PROMETHEUS_TEXT]: { schema: { type: "string" } },
  });
  assert.ok(operation.responses["401"] && operation.responses["403"]);
  assert.deepEqual(Object.keys(doc.paths["/system/openapi.json"]?.get?.responses["200"]?.content ?? {}), [
    "application/json; charset=utf-8",
  ]);

  // the handler answers with the registry's text and content type
  const route = systemRoutes({} as Parameters<typeof systemRoutes>[0]).find(
    (candidate) => candidate.endpoint === endpoints.metrics,
  );
  assert.ok(route);
  const server = http.createServer((req, res) => {
    void route.handle({ req, res, requestId: "req-1", params: {}, url: new URL("http://x/system/metrics") });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as { port: number };
    const response = await fetch(`http://127.0.0.1:${port}/system/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), PROMETHEUS_TEXT);
    assert.equal(response.headers.get("x-request-id"), "req-1");
    assert.ok(parsePrometheus(await response.text()).families.has("openwork_server_proxied_requests_total"));
  } finally {
    server.close();
  }
});

test("a second copy of the metrics module (a server upgrade's new bundle) shares the registry and counters", async () => {
  const first = serverMetrics();
  const href = new URL("../../src/server/metrics.js", import.meta.url).href;
  const copy = (await import(`${href}?copy=${Date.now()}`)) as typeof import("../../src/server/metrics.js");
  assert.notEqual(copy.serverMetrics, serverMetrics, "a distinct module instance");
  assert.equal(copy.METRICS_SLOT, METRICS_SLOT);
  const second = copy.serverMetrics();
  assert.equal(second, first, "the same metrics object");
  assert.equal(second.registry, first.registry, "one registry");
  const before = await seriesValue("openwork_server_proxied_requests_total", {
    target: "opencode",
    code: "299",
  });
  copy.countProxied("opencode", 299);
  assert.equal(
    await seriesValue("openwork_server_proxied_requests_total", { target: "opencode", code: "299" }),
    before + 1,
    "counted by the copy, seen through the first",
  );
  assert.equal(
    (globalThis as Record<symbol, ServerMetrics | undefined>)[Symbol.for("openwork.server.metrics.v1")],
    first,
  );
  // registered once: every family appears once, and the exposition still parses
  const names = (await first.registry.getMetricsAsJSON()).map((m) => m.name);
  assert.equal(new Set(names).size, names.length);
});

test("supervision is counted: each restart once, each probe's duration by outcome", async () => {
  const dir = tmp();
  const port = await freePort();
  const marker = path.join(dir, "crashed-once");
  // Healthy at once; the first process crashes after 200 ms, the next one stays.
  const script = `const fs = require("fs"); require("http").createServer((q, s) => s.end("ok")).listen(${port}, "127.0.0.1"); if (!fs.existsSync(${JSON.stringify(marker)})) { fs.writeFileSync(${JSON.stringify(marker)}, ""); setTimeout(() => process.exit(3), 200); }`;
  const policy = { ...defaultPolicy(5000), pidPollMs: 50, probeIntervalMs: 100, backoffBaseMs: 50 };
  let refuseNext = 2;
  const definition: ComponentDefinition = {
    name: "opencode-router",
    runtimeId: "unit",
    pinnedVersion: undefined,
    url: `http://127.0.0.1:${port}`,
    port,
    logFile: path.join(dir, "c.log"),
    launch: () => ({
      command: process.execPath,
      args: ["-e", script],
      env: process.env,
      cwd: dir,
      logFile: path.join(dir, "c.log"),
    }),
    // the first two probes fail whatever the process does: the outcome label is checked exactly
    probe: async () => {
      if (refuseNext > 0) {
        refuseNext--;
        return { ok: false, detail: "told to fail" };
      }
      const ok = await fetch(`http://127.0.0.1:${port}/`).then(
        (r) => r.ok,
        () => false,
      );
      return { ok, detail: ok ? "ok" : "down" };
    },
  };
  const series = (outcome: string) => ({ component: "opencode-router", outcome });
  const probes = "openwork_server_health_probe_duration_seconds_count";
  const restarts = "openwork_server_component_restarts_total";
  const before = {
    ok: await seriesValue(probes, series("ok")),
    fail: await seriesValue(probes, series("fail")),
  };
  const restartsBefore = await seriesValue(restarts, { component: "opencode-router" });
  const component = Supervised.spawn(definition, policy, createLogger({ level: "silent" }));
  try {
    assert.equal(
      sampleValue(await scrape(), restarts, { component: "opencode-router" }),
      restartsBefore,
      "the series exists (at its value) once a component is supervised",
    );
    await component.waitHealthy();
    assert.equal(await seriesValue(probes, series("fail")), before.fail + 2);
    assert.equal(await seriesValue(probes, series("ok")), before.ok + 1);
    component.watch();
    await waitFor(
      async () => {
        const s = component.summary();
        return s.restarts.total === 1 && s.status === "healthy" ? s : undefined;
      },
      { timeoutMs: 10_000, what: "one restart, healthy again" },
    );
    assert.ok(existsSync(marker));
    assert.equal(await seriesValue(restarts, { component: "opencode-router" }), restartsBefore + 1);
    assert.ok(
      (await seriesValue(probes, series("ok"))) >= before.ok + 2,
      "the restart's gate was probed too",
    );
    const sum = await seriesValue("openwork_server_health_probe_duration_seconds_sum", series("ok"));
    assert.ok(sum > 0 && sum < 60, `durations are in seconds (${sum})`);
  } finally {
    await component.stop("test over");
    component.tail.stop();
  }
});

test("the proxy counts every answer by exact status: the engine's, and its own 502 and 503", async () => {
  const engine = http.createServer((req, res) => {
    res.writeHead(req.url === "/missing" ? 404 : 200, { "content-type": "text/plain" });
    res.end("engine");
  });
  await new Promise<void>((resolve) => engine.listen(0, "127.0.0.1", resolve));
  const enginePort = (engine.address() as { port: number }).port;
  const closedPort = await freePort();
  const state = { status: "healthy", port: enginePort };
  const topology = {
    get engine() {
      return { status: state.status };
    },
    get upstream() {
      return {
        id: "unit",
        port: state.port,
        authorization: "Basic x",
        inflight: new Set(),
        streams: new Set(),
        sockets: new Set(),
      };
    },
  } as unknown as Topology;
  const [route] = proxyRoutes({
    topology,
    policy: defaultPolicy(1000),
    env: { OPENWORK_WORKSPACE: "/ws" } as ServeEnv,
  });
  assert.ok(route);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    Promise.resolve(route.handle({ req, res, requestId: "r", params: {}, url })).catch(
      (error: { status: number }) => {
        res.writeHead(error.status);
        res.end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const codes = ["200", "404", "502", "503"];
  const count = async () =>
    Object.fromEntries(
      await Promise.all(
        codes.map(
          async (code) =>
            [
              code,
              await seriesValue("openwork_server_proxied_requests_total", { target: "opencode", code }),
            ] as const,
        ),
      ),
    );
  try {
    const before = await count();
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${base}/opencode/ok`)).status, 200);
    assert.equal((await fetch(`${base}/opencode/missing`)).status, 404);
    // the engine refuses a request with a body (never resent): the proxy answers 502 itself
    state.port = closedPort;
    assert.equal((await fetch(`${base}/opencode/ok`, { method: "POST", body: "x" })).status, 502);
    // the engine is cooling down: 503 before anything is sent
    state.status = "cooldown";
    assert.equal((await fetch(`${base}/opencode/ok`)).status, 503);
    const after = await count();
    assert.deepEqual(
      codes.map((code) => (after[code] ?? 0) - (before[code] ?? 0)),
      [3, 1, 1, 1],
    );
  } finally {
    server.close();
    engine.close();
  }
});

test("an upgrade's outcome for the duration histogram is the operation's own: succeeded, rolled_back, failed", () => {
  const op = (state: UpgradeOperation["state"], rolledBack: boolean | null) =>
    ({ state, rolledBack }) as UpgradeOperation;
  assert.equal(upgradeOutcome(op("succeeded", null)), "succeeded");
  assert.equal(upgradeOutcome(op("failed", true)), "rolled_back");
  assert.equal(upgradeOutcome(op("failed", false)), "failed");
  assert.equal(upgradeOutcome(op("running", null)), "failed", "an operation that never finished");
});
