import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { createOpencodeClient } from "@opencode-ai/sdk/v2/client";
import { emulatorEnv } from "../helpers/apple-emulator.js";
import { browserOrSkip } from "../helpers/browser.js";
import { runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { waitFor } from "../helpers/net.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/*
 * The engine's web UI through the runtime server (docs/web-ui.md): one host run started by the
 * CLI, shared by the tests of this file, driven in chromium; one Docker run for the published
 * address.
 */

const home = mkdtempSync(path.join(os.tmpdir(), "openwork-e2e-webui-"));
const env = { OPENWORK_LABELS: "openwork.test=1" };
const workspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-webui-"));
// No model providers: the UI's GET /provider would otherwise be opencode's whole catalogue (6.5 MB),
// which keeps a loaded machine's engine busy past its liveness probe (docs/web-ui.md, known limits).
writeFileSync(
  path.join(workspace, "opencode.json"),
  JSON.stringify({ $schema: "https://opencode.ai/config.json", enabled_providers: ["openwork-test-none"] }),
);

interface StartDoc {
  runId: string;
  url: string;
  tokens: { client: string; host: string };
}
interface LinkDoc {
  runId: string;
  url: string;
  expiresAt: string;
}

let run: StartDoc;

before(async () => {
  const started = await runCli(["--json", "start", "--detach", "--workspace", workspace], {
    home,
    env,
    timeoutMs: 180_000,
  });
  assert.equal(started.exitCode, 0, started.stderr);
  run = JSON.parse(started.stdout) as StartDoc;
});

after(async () => {
  if (run) await runCli(["stop", run.runId], { home, env });
});

async function openLink(): Promise<LinkDoc> {
  const opened = await runCli(["--json", "open", "--workspace", workspace], { home, env });
  assert.equal(opened.exitCode, 0, opened.stderr);
  return JSON.parse(opened.stdout) as LinkDoc;
}

/** The engine's SDK through our /opencode proxy, as opencode's own clients reach it. */
function sdk() {
  return createOpencodeClient({
    baseUrl: `${run.url}/opencode`,
    headers: { authorization: `Basic ${Buffer.from(`opencode:${run.tokens.client}`).toString("base64")}` },
  });
}

/** A raw request (fetch cannot set Host or a foreign Origin). */
function raw(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Exchange a link for its session cookie without a browser: the cookie pair. */
async function sessionCookie(link: string): Promise<string> {
  const answer = await raw(link);
  assert.equal(answer.status, 303);
  const cookie = String(answer.headers["set-cookie"]?.[0] ?? "");
  return cookie.split(";")[0] as string;
}

test("openwork open: the link logs a browser in (HttpOnly, SameSite=Strict cookie, no code left in the URL), the web UI loads and shows a session made through the SDK", async (t) => {
  const browser = await browserOrSkip(t);
  if (!browser) return;
  const title = `webui-sdk-${Date.now()}`;
  const created = await sdk().session.create({ title });
  const sessionId = created.data?.id ?? "";
  assert.match(sessionId, /^ses/);

  const link = await openLink();
  assert.equal(link.runId, run.runId);
  assert.ok(link.url.startsWith(`${run.url}/login?code=`), link.url);
  assert.ok(Date.parse(link.expiresAt) > Date.now());

  const context = await browser.newContext();
  const page = await context.newPage();
  const failures: string[] = [];
  page.on("response", (response) => {
    if (new URL(response.url()).origin === run.url && response.status() >= 400)
      failures.push(`${response.status()} ${response.request().method()} ${response.url()}`);
  });
  await page.goto(link.url);
  assert.equal(page.url(), `${run.url}/`, "redirected to the UI, the code gone from the address");
  // Ours is the one the exchange set (the UI sets its own, e.g. its locale, later).
  // Named after the port: a fleet's runtimes share 127.0.0.1, and cookies are not scoped by port.
  const cookieName = `ow_session_${new URL(run.url).port}`;
  const cookie = (await context.cookies(run.url)).find((candidate) => candidate.name === cookieName);
  assert.equal(cookie?.name, cookieName);
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, "Strict");
  assert.equal(cookie?.domain, "127.0.0.1");
  assert.ok(
    !String(await page.evaluate("document.cookie")).includes("ow_session"),
    "the session is not readable by scripts",
  );
  // Neither the code nor the session is kept where scripts could read it.
  const stored = (await page.evaluate(
    "[localStorage, sessionStorage].flatMap((s) => Object.keys(s).map((k) => k + '=' + s.getItem(k)))",
  )) as string[];
  const code = new URL(link.url).searchParams.get("code") as string;
  for (const secret of [code, cookie?.value as string])
    assert.ok(!stored.some((entry) => entry.includes(secret)), "no secret in browser storage");
  await page.locator("body").waitFor();
  assert.equal(await page.title(), "OpenCode");

  // The session made through the SDK, in the UI (its page: /<base64url(directory)>/session/<id>).
  const directory = Buffer.from(workspace).toString("base64url");
  await page.goto(`${run.url}/${directory}/session/${sessionId}`);
  await page.getByText(title).first().waitFor({ timeout: 30_000 });
  assert.ok(!page.url().includes("code="));
  assert.deepEqual(failures, [], "every same-origin answer < 400");

  // The UI's own API, with the cookie: a server-sent event, and a session made here seen by the SDK.
  const event = await page.evaluate(
    () =>
      new Promise<string>((resolve, reject) => {
        const source = new EventSource("/global/event");
        source.onmessage = (message) => {
          source.close();
          resolve(String(message.data));
        };
        source.onerror = () => reject(new Error("the event stream failed"));
      }),
  );
  assert.match(event, /server\.connected|"type"/);
  const made = await page.evaluate(
    async (body) => {
      const response = await fetch("/session", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as { id: string } };
    },
    { title: `${title}-ui` },
  );
  assert.equal(made.status, 200);
  const listed = await sdk().session.list();
  assert.ok(listed.data?.some((session) => session.id === made.body.id && session.title === `${title}-ui`));

  // A WebSocket the UI opens (a terminal of the engine), through the cookie.
  const pty = await page.evaluate(async () => {
    const response = await fetch("/pty", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ command: "/bin/sh" }),
    });
    return (await response.json()) as { id: string; cwd: string };
  });
  assert.equal(pty.cwd, workspace);
  const echoed = await page.evaluate(
    ({ id, host }) =>
      new Promise<string>((resolve, reject) => {
        const socket = new WebSocket(`ws://${host}/pty/${id}/connect`);
        let output = "";
        socket.onopen = () => socket.send("echo openwork-ws-$((40+2))\n");
        socket.onmessage = async (message) => {
          output += typeof message.data === "string" ? message.data : await (message.data as Blob).text();
          if (output.includes("openwork-ws-42")) {
            socket.close();
            resolve(output);
          }
        };
        socket.onerror = () => reject(new Error(`the WebSocket failed after ${JSON.stringify(output)}`));
        setTimeout(() => reject(new Error(`no echo in 15 s: ${JSON.stringify(output)}`)), 15_000);
      }),
    { id: pty.id, host: new URL(run.url).host },
  );
  assert.match(echoed, /openwork-ws-42/);

  // The link is single use: a second visit is a plain 401 page.
  const again = await (await browser.newContext()).newPage();
  const refused = await again.goto(link.url);
  assert.equal(refused?.status(), 401);
  assert.match(String(refused?.headers()["content-type"]), /^text\/html/);
  assert.match(String(await again.locator("body").textContent()), /Not logged in/);
  await context.close();
});

test("the cookie opens the web UI only: Origin and Host are checked, our routes keep their bearer auth", async () => {
  const cookie = await sessionCookie((await openLink()).url);
  const port = new URL(run.url).port;
  const post = (origin: string) =>
    raw(`${run.url}/session`, {
      method: "POST",
      headers: { cookie, origin, "content-type": "application/json" },
      body: "{}",
    });
  // A state-changing request from another origin, or with no Origin at all: 403.
  const foreign = await post("http://evil.example");
  assert.equal(foreign.status, 403);
  assert.equal((JSON.parse(foreign.body) as { error: { code: string } }).error.code, "origin_mismatch");
  assert.equal(
    (await post(`http://localhost:${port}`)).status,
    403,
    "another of our names is another origin",
  );
  const same = await post(run.url);
  assert.equal(same.status, 200, same.body);
  // A WebSocket handshake from another origin: 403 before it reaches the engine.
  const handshake = await raw(`${run.url}/pty/any/connect`, {
    headers: {
      cookie,
      origin: "http://evil.example",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
  });
  assert.equal(handshake.status, 403);
  // DNS rebinding: a page of another name that resolves here.
  const rebound = await raw(`${run.url}/session`, { headers: { cookie, host: `evil.example:${port}` } });
  assert.equal(rebound.status, 421);
  assert.equal(
    (await raw(`${run.url}/session`, { headers: { cookie, host: `localhost:${port}` } })).status,
    200,
  );
  // Our routes never take the cookie.
  for (const where of ["/system/runtime/summary", "/opencode/session", "/system/metrics"]) {
    const answer = await raw(`${run.url}${where}`, { headers: { cookie } });
    assert.equal(answer.status, 401, where);
  }
  assert.equal((await raw(`${run.url}/system/nope`, { headers: { cookie } })).status, 404);
  // Without the cookie: 401, a page for a browser, the envelope otherwise; a bad cookie likewise.
  const page = await raw(`${run.url}/`, { headers: { accept: "text/html" } });
  assert.equal(page.status, 401);
  assert.match(String(page.headers["content-type"]), /^text\/html/);
  const api = await raw(`${run.url}/session`, {
    headers: { cookie: `ow_session_${new URL(run.url).port}=forged-session-value` },
  });
  assert.equal(api.status, 401);
  assert.equal((JSON.parse(api.body) as { error: { code: string } }).error.code, "unauthorized");
  // Codes: a bad one is a 401 page; the bearer route to mint them refuses the client token.
  assert.equal((await raw(`${run.url}/login?code=not-a-code`)).status, 401);
  assert.equal((await raw(`${run.url}/login`)).status, 401);
  const mint = await raw(`${run.url}/system/login-codes`, {
    method: "POST",
    headers: { authorization: `Bearer ${run.tokens.client}` },
  });
  assert.equal(mint.status, 403);
  // The web UI's answers are counted apart from /opencode/*'s.
  const metrics = await raw(`${run.url}/system/metrics`, {
    headers: { "x-openwork-host-token": run.tokens.host },
  });
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /openwork_server_proxied_requests_total\{[^}]*target="web"[^}]*\} [1-9]/);
  // Neither codes nor sessions reach the runtime's log.
  const logs = await runCli(["logs", run.runId], { home, env });
  assert.equal(logs.exitCode, 0, logs.stderr);
  assert.ok(!logs.stdout.includes(cookie.slice(cookie.indexOf("=") + 1)), "no session in the log");
  assert.ok(!logs.stdout.includes("not-a-code"), "a refused code is not logged");
  assert.match(logs.stdout, /a web UI login with a bad, expired or used code was refused/);
});

test("open --browser: the platform's opener gets the link; without one it refuses clearly", async () => {
  const bin = mkdtempSync(path.join(os.tmpdir(), "openwork-opener-"));
  const none = await runCli(["open", "--browser", "--workspace", workspace], {
    home,
    env: { ...env, PATH: bin },
  });
  assert.equal(none.exitCode, 1, none.stderr);
  assert.match(none.stderr, /no opener/);
  assert.equal(none.stdout, "");
  const opened = path.join(bin, "opened");
  writeFileSync(path.join(bin, "xdg-open"), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`, { mode: 0o755 });
  const result = await runCli(["open", "--browser", "--workspace", workspace], {
    home,
    env: { ...env, PATH: bin },
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const printed = result.stdout.trim();
  assert.ok(printed.startsWith(`${run.url}/login?code=`), printed);
  const given = await waitFor(
    async () =>
      existsSync(opened) && readFileSync(opened, "utf8").length > 0
        ? readFileSync(opened, "utf8")
        : undefined,
    { what: "the opener to run", timeoutMs: 10_000 },
  );
  assert.equal(given, printed, "the opener got the printed link");
  assert.equal((await raw(printed)).status, 303, "a valid link");
});

/** A sandboxed run: the link names the published address, and the UI answers through the cookie there. */
async function sandboxedLogin(
  t: TestContext,
  sandbox: "docker" | "container",
  extraEnv: Record<string, string>,
) {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  await sharedSandboxImage(docker);
  const ws = sandboxWorkspace(`openwork-ws-webui-${sandbox}-`);
  const runEnv = { ...env, ...extraEnv };
  const started = await runCli(["--json", "start", "--detach", "--sandbox", sandbox, "--workspace", ws], {
    home,
    env: runEnv,
    timeoutMs: 300_000,
  });
  assert.equal(started.exitCode, 0, started.stderr);
  const doc = JSON.parse(started.stdout) as StartDoc;
  try {
    const opened = await runCli(["--json", "open", doc.runId], { home, env: runEnv });
    assert.equal(opened.exitCode, 0, opened.stderr);
    const link = JSON.parse(opened.stdout) as LinkDoc;
    assert.ok(link.url.startsWith(`${doc.url}/login?code=`), link.url);
    const cookie = await sessionCookie(link.url);
    const ui = await raw(`${doc.url}/`, { headers: { cookie, accept: "text/html" } });
    assert.equal(ui.status, 200);
    assert.match(ui.body, /<title>OpenCode<\/title>/);
    const port = new URL(doc.url).port;
    const rebound = await raw(`${doc.url}/`, { headers: { cookie, host: `evil.example:${port}` } });
    assert.equal(rebound.status, 421);
  } finally {
    const stopped = await runCli(["stop", doc.runId], { home, env: runEnv });
    assert.equal(stopped.exitCode, 0, stopped.stderr);
  }
}

test("docker: the link uses the published address, and the UI answers through the cookie there", (t) =>
  sandboxedLogin(t, "docker", {}));

test("Apple container (emulated on Docker): the same, through the VM's published port", (t) =>
  sandboxedLogin(t, "container", { ...emulatorEnv(), OPENWORK_TEST_RUN: "1" }));
