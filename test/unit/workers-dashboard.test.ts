import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, it } from "node:test";
import { DashboardAuth } from "../../src/workers/dashboard/codes.js";
import { escapeHtml, printableLine, renderFleetPage, renderRows } from "../../src/workers/dashboard/html.js";
import { Dashboard, type DashboardHost } from "../../src/workers/dashboard/server.js";
import { FleetMetrics } from "../../src/workers/metrics.js";
import type { WorkerStatus } from "../../src/workers/status.js";

function row(patch: Partial<WorkerStatus>): WorkerStatus {
  return {
    name: "api",
    enabled: true,
    held: false,
    sandbox: "none",
    node: null,
    state: "running",
    healthy: true,
    components: { opencode: "healthy" },
    runId: "run-1",
    url: "http://127.0.0.1:1234",
    workspace: "/srv/api",
    versions: null,
    restarts: 0,
    uptimeMs: 5000,
    cpu: 0.1,
    memoryBytes: 1024 * 1024,
    heartbeatAgeMs: 100,
    stale: false,
    lastError: null,
    nextAttemptAt: null,
    ...patch,
  };
}

describe("dashboard HTML", () => {
  it("escapes markup and quotes", () => {
    assert.equal(
      escapeHtml(`<a href="x">'&'</a>`),
      "&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;",
    );
  });

  it("shows control characters of log lines as escapes", () => {
    assert.equal(printableLine("a\u001b[31mred\u0007\tok"), "a\\x1b[31mred\\x07\tok");
  });

  it("renders worker names and errors as text, never as markup", () => {
    const html = renderRows([
      row({
        name: "x<script>alert(1)</script>",
        state: "backoff",
        lastError: `<img src=x onerror="alert(1)">`,
      }),
    ]);
    assert.ok(!html.includes("<script>"), html);
    assert.ok(!html.includes("<img"), html);
    assert.match(html, /x&#60;script&#62;alert\(1\)&#60;\/script&#62;/);
    assert.match(html, /action="\/workers\/x%3Cscript%3Ealert\(1\)%3C%2Fscript%3E\/restart"/);
  });

  it("the page holds the table, and its only script carries the nonce", () => {
    const page = renderFleetPage(
      [row({})],
      { configFile: "/etc/<w>.json", host: "h", node: "v20", pid: 1, at: "now" },
      "NONCE",
    );
    assert.match(page, /<td data-col="state">running<\/td>/);
    assert.match(page, /\/etc\/&#60;w&#62;\.json/);
    assert.deepEqual(
      [...page.matchAll(/<script([^>]*)>/g)].map((m) => m[1]),
      [' nonce="NONCE"'],
    );
    assert.ok(!/https?:\/\//.test(page.replace(/<script[\s\S]*<\/script>/, "")), "no external URL");
  });
});

describe("dashboard login codes", () => {
  it("a code works once", () => {
    const auth = new DashboardAuth();
    const { code } = auth.issueCode();
    const session = auth.redeem(code);
    assert.ok(session);
    assert.ok(auth.hasSession(session));
    assert.equal(auth.redeem(code), undefined);
    assert.equal(auth.redeem("made-up"), undefined);
    assert.equal(auth.hasSession("made-up"), false);
    assert.equal(auth.hasSession(undefined), false);
  });

  it("a code expires, and so does a session", () => {
    let now = 1_000_000;
    const auth = new DashboardAuth({ codeTtlMs: 60_000, sessionTtlMs: 3_600_000, now: () => now });
    const late = auth.issueCode();
    now += 60_001;
    assert.equal(auth.redeem(late.code), undefined);
    const { code } = auth.issueCode();
    now += 59_000;
    const session = auth.redeem(code);
    assert.ok(session);
    now += 3_600_001;
    assert.equal(auth.hasSession(session), false);
  });
});

describe("dashboard routes", () => {
  it("checks Host, the secret, the code, the cookie and the Origin", async (t) => {
    const acted: string[] = [];
    const host: DashboardHost = {
      rows: () => [row({})],
      context: () => ({ configFile: "/w.json", host: "h", node: "v20", pid: 1 }),
      heartbeatIntervalMs: () => 1000,
      act: async (name, action) => {
        if (name !== "api") return undefined;
        acted.push(action);
        return { ok: true, message: `${name}: ${action} begun` };
      },
      logs: async () => ({ lines: ["<b>hi</b>"], error: null }),
      open: async (name) =>
        name === "api"
          ? { ok: true, url: 'http://127.0.0.1:9/login?code=a"b', expiresAt: "2026-12-01T00:00:00.000Z" }
          : name === "idle"
            ? { ok: false, message: "idle has no running runtime to open" }
            : undefined,
    };
    const dashboard = new Dashboard(host, new DashboardAuth(), "s3cret");
    const served = await new FleetMetrics(() => []).serve(0, (q, r) => dashboard.handle(q, r));
    t.after(served.close);
    const base = served.origin;
    const get = (p: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${p}`, { headers, redirect: "manual" });

    assert.equal((await get("/metrics")).status, 200, "metrics stay open");
    assert.equal((await get("/")).status, 401);
    // fetch will not send a foreign Host: node:http will (what a DNS-rebound page would send).
    const rebound = await new Promise<number>((resolve, reject) => {
      const port = Number(new URL(base).port);
      request({ host: "127.0.0.1", port, path: "/", headers: { host: `evil.example:${port}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(rebound, 421);
    assert.equal((await fetch(`${base}/dashboard/codes`, { method: "POST" })).status, 401);
    const wrong = await fetch(`${base}/dashboard/codes`, {
      method: "POST",
      headers: { authorization: "Bearer no" },
    });
    assert.equal(wrong.status, 401);
    const issued = await fetch(`${base}/dashboard/codes`, {
      method: "POST",
      headers: { authorization: "Bearer s3cret" },
    });
    const { url } = (await issued.json()) as { url: string };
    assert.ok(url.startsWith(`${base}/login?code=`), url);
    const login = await fetch(url, { redirect: "manual" });
    assert.equal(login.status, 303);
    assert.equal(login.headers.get("location"), "/");
    const cookie = login.headers.get("set-cookie") ?? "";
    assert.match(cookie, /HttpOnly; SameSite=Strict; Path=\//);
    assert.equal((await fetch(url, { redirect: "manual" })).status, 401, "a code works once");
    const session = { cookie: cookie.split(";")[0] as string };

    const page = await get("/", session);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.match(await page.text(), /data-worker="api"/);
    const detail = await (await get("/workers/api", session)).text();
    assert.match(detail, /&#60;b&#62;hi&#60;\/b&#62;/);
    assert.equal(await (await get("/workers/api/logs", session)).text(), "<b>hi</b>\n");
    assert.equal((await get("/workers/nope", session)).status, 404);

    const post = (p: string, headers: Record<string, string>) =>
      fetch(`${base}${p}`, { method: "POST", headers: { ...session, ...headers }, redirect: "manual" });
    assert.equal((await post("/workers/api/restart", { origin: "http://evil.example" })).status, 403);
    assert.equal((await post("/workers/api/restart", {})).status, 403, "no Origin");
    assert.equal(
      (
        await fetch(`${base}/workers/api/stop`, {
          method: "POST",
          headers: { origin: base },
          redirect: "manual",
        })
      ).status,
      401,
      "no cookie",
    );
    assert.deepEqual(acted, []);
    const done = await post("/workers/api/restart", { origin: base });
    assert.equal(done.status, 303);
    const json = await post("/workers/api/stop", { origin: base, accept: "application/json" });
    assert.equal(json.status, 202);
    assert.deepEqual(acted, ["restart", "stop"]);

    // open: a page that follows the worker's one-time link (escaped), only with our Origin.
    assert.equal((await post("/workers/api/open", { origin: "http://evil.example" })).status, 403);
    const opened = await post("/workers/api/open", { origin: base });
    assert.equal(opened.status, 200);
    const openPage = await opened.text();
    assert.match(
      openPage,
      /<meta http-equiv="refresh" content="0;url=http:\/\/127\.0\.0\.1:9\/login\?code=a&#34;b">/,
    );
    assert.equal((await post("/workers/idle/open", { origin: base })).status, 409);
    assert.equal((await post("/workers/nobody/open", { origin: base })).status, 404);

    const events = await get("/events", session);
    assert.equal(events.headers.get("content-type"), "text/event-stream");
    const reader = (events.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes("event: fleet")) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
  });
});

it("workers status: runs on other nodes get a NODE column, grouped by it", async () => {
  const { renderFleet } = await import("../../src/cli/render-workers.js");
  const text = renderFleet({
    config: "/etc/openwork/workers.json",
    supervisor: {
      state: "not-running",
      pid: null,
      startedAt: null,
      heartbeatAgeMs: null,
      metricsUrl: null,
      configError: null,
    } as never,
    workers: [
      row({ name: "b", node: "owsw2", sandbox: "swarm" }),
      row({ name: "a", node: null }),
      row({ name: "c", node: "owsw1", sandbox: "swarm" }),
    ],
  });
  const lines = text.split("\n");
  assert.match(lines[0] ?? "", /^NODE +WORKER/);
  assert.deepEqual(
    lines.slice(1, 4).map((line) => line.split(/ {2,}/).slice(0, 2).join(" ")),
    ["this machine a", "owsw1 c", "owsw2 b"],
  );
  assert.doesNotMatch(
    renderFleet({ config: "x", supervisor: { state: "not-running" } as never, workers: [row({})] }),
    /NODE/,
  );
});
