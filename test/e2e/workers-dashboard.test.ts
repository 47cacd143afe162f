import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { execa, type ResultPromise } from "execa";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { CHROMIUM } from "../helpers/browser.js";
import { CLI, runCli } from "../helpers/cli.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { waitFor } from "../helpers/net.js";
import { sandboxWorkspace } from "../helpers/workspace.js";

/*
 * The fleet dashboard in a real browser against a real supervisor: one
 * worker on the host and one in Docker, under a foreground `workers run`.
 * Login by a one-time link, the live table over SSE (a docker kill seen
 * without a reload), the restart button, a worker's log lines, the table
 * without JavaScript, a foreign Origin refused, nothing fetched from anywhere
 * but 127.0.0.1.
 */

const env = { OPENWORK_LABELS: "openwork.test=1" };

/** A worker's row in the page: its state and run cells (the tests' TypeScript has no DOM types). */
type Doc = { querySelector(selector: string): { textContent: string | null } | null };
function rowIn([worker, oldRun]: [string, string | null]): boolean {
  const doc = (globalThis as unknown as { document: Doc }).document;
  const text = (column: string) =>
    doc.querySelector(`tr[data-worker="${worker}"] td[data-col="${column}"]`)?.textContent;
  // oldRun null: any state but running; else running again, on another run.
  return oldRun === null
    ? text("state") !== "running"
    : text("state") === "running" && text("run") !== oldRun;
}

describe("workers dashboard", { concurrency: false, timeout: 600_000 }, () => {
  const home = mkdtempSync(path.join(os.tmpdir(), "openwork-home-dashboard-"));
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-dashboard-"));
  const config = path.join(dir, "workers.json");
  const restart = {
    maxRestarts: 5,
    window: "5m",
    minUptime: "2s",
    backoff: { initial: "1s", max: "2s", jitter: 0 },
  };
  // No model provider in the host worker's workspace: the web UI that `open` loads asks the engine for
  // its providers, and the whole catalogue (~6.5 MB) keeps a loaded machine's engine busy (docs/web-ui.md).
  const hostWorkspace = mkdtempSync(path.join(os.tmpdir(), "openwork-ws-dash-h-"));
  writeFileSync(
    path.join(hostWorkspace, "opencode.json"),
    JSON.stringify({ $schema: "https://opencode.ai/config.json", enabled_providers: ["openwork-test-none"] }),
  );
  writeFileSync(
    config,
    JSON.stringify({
      heartbeatInterval: "1s",
      workers: [
        { name: "h", workspace: hostWorkspace, restart },
        { name: "d", workspace: sandboxWorkspace("openwork-ws-dash-d-"), sandbox: "docker", restart },
      ],
    }),
  );
  const cli = (args: string[]) => runCli(["--json", "workers", "--config", config, ...args], { home, env });
  const loginLink = async (): Promise<string> => {
    const result = await cli(["dashboard"]);
    assert.equal(result.exitCode, 0, result.stderr);
    return (JSON.parse(result.stdout) as { url: string }).url;
  };
  let supervisor: ResultPromise | undefined;
  const supervisorLog = "";
  const dashboardLines = () => supervisorLog.split("\n").filter((line) => line.includes("dashboard"));
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  let origin = "";
  const requested: string[] = [];
  const cell = (worker: string, column: string) =>
    (page as Page).locator(`tr[data-worker="${worker}"] td[data-col="${column}"]`);

  before(async (t) => {
    const docker = await dockerOrSkip(t as never);
    if (!docker) return;
    await sharedSandboxImage(docker);
    // browserOrSkip's rules, for the whole suite (one browser for every test).
    if (!CHROMIUM) {
      if (process.env.OPENWORK_REQUIRE_BROWSER === "1")
        throw new Error("chromium is required (OPENWORK_REQUIRE_BROWSER=1) but /usr/bin/chromium is missing");
      return;
    }
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
    });
    supervisor = execa(
      process.execPath,
      [CLI, "--log-format", "json", "workers", "--config", config, "run"],
      {
        env: { ...env, OPENWORK_HOME: home },
        reject: false,
      },
    );
    await waitFor(
      async () => {
        const status = JSON.parse((await cli(["status"])).stdout) as {
          supervisor: { state: string };
          workers: Array<{ state: string }>;
        };
        return status.supervisor.state === "running" && status.workers.every((w) => w.state === "running")
          ? true
          : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1000, what: "the supervisor starting both workers" },
    );
  });

  after(async () => {
    await browser?.close();
    if (supervisor) {
      supervisor.kill("SIGTERM");
      await Promise.race([supervisor, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      supervisor.kill("SIGKILL");
    }
    await runCli(["stop", "--all"], { home, env, timeoutMs: 120_000 });
  });

  it("logs in with a one-time link: an HttpOnly, SameSite=Strict cookie, no code left in the URL", async (t) => {
    if (!browser) return t.skip("needs Docker and chromium");
    const url = await loginLink();
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/login\?code=[\w-]+$/);
    origin = new URL(url).origin;
    context = await browser.newContext();
    context.on("request", (request) => requested.push(request.url()));
    page = await context.newPage();
    const response = await page.goto(url);
    assert.equal(response?.status(), 200);
    assert.equal(page.url(), `${origin}/`, "the code left the URL");
    const cookies = await context.cookies(origin);
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]?.httpOnly, true);
    assert.equal(cookies[0]?.sameSite, "Strict");
    await cell("h", "state")
      .filter({ hasText: /^running$/ })
      .waitFor({ timeout: 10_000 });
    await cell("d", "state")
      .filter({ hasText: /^running$/ })
      .waitFor({ timeout: 10_000 });

    const again = await (await context.newPage()).goto(url);
    assert.equal(again?.status(), 401, "a used code is refused");
  });

  it("shows a docker-killed worker leave running and come back, live, without a reload", async (t) => {
    if (!page) return t.skip("needs the login above");
    await page.evaluate(() => {
      (globalThis as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const oldRun = (await cell("d", "run").textContent()) as string;
    const status = JSON.parse((await runCli(["--json", "status", oldRun], { home, env })).stdout);
    await execa("docker", ["kill", status.local.id]);
    await page.waitForFunction(rowIn, ["d", null] as [string, string | null], {
      timeout: 60_000,
      polling: 100,
    });
    await page.waitForFunction(rowIn, ["d", oldRun] as [string, string | null], {
      timeout: 120_000,
      polling: 250,
    });
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded === true),
      true,
      "the page was not reloaded",
    );
  });

  it("the restart button restarts the worker: a new run, rolled in", async (t) => {
    if (!page) return t.skip("needs the login above");
    const oldRun = (await cell("h", "run").textContent()) as string;
    await page.locator('tr[data-worker="h"] form[action$="/restart"] button').click();
    await page.locator("#notice", { hasText: "h: restart begun" }).waitFor({ timeout: 10_000 });
    await page
      .waitForFunction(rowIn, ["h", oldRun] as [string, string | null], { timeout: 120_000, polling: 250 })
      .catch(async (error: unknown) => {
        const notice = await page?.locator("#notice").textContent();
        throw new Error(`${error}\nnotice: ${notice}\n${dashboardLines().join("\n")}`);
      });
  });

  it("shows a worker's last log lines", async (t) => {
    if (!page) return t.skip("needs the login above");
    await page.goto(`${origin}/workers/h`);
    const log = (await page.locator("#log").textContent()) ?? "";
    assert.ok(log.trim().split("\n").length > 0 && log.trim() !== "", "some log lines");
    await page.goto(`${origin}/`);
  });

  it("without JavaScript: the table, and the stop and start buttons as plain forms", async (t) => {
    if (!browser) return t.skip("needs Docker and chromium");
    const plain = await browser.newContext({ javaScriptEnabled: false });
    plain.on("request", (request) => requested.push(request.url()));
    const noScript = await plain.newPage();
    await noScript.goto(await loginLink());
    assert.equal(noScript.url(), `${origin}/`);
    for (const name of ["h", "d"])
      assert.equal(
        await noScript.locator(`tr[data-worker="${name}"] td[data-col="state"]`).textContent(),
        "running",
      );

    // The buttons are plain forms: stop holds the worker stopped, start brings it back.
    const stateOfH = noScript.locator('tr[data-worker="h"] td[data-col="state"]');
    // Press the button (again, while an action before it is still under way) until the table shows the state.
    const pressUntil = (action: string, state: string, what: string) =>
      waitFor(
        async () => {
          await noScript.goto(`${origin}/`);
          if ((await stateOfH.textContent()) === state) return true;
          const button = noScript.locator(`tr[data-worker="h"] form[action$="/${action}"] button`);
          if ((await button.count()) > 0) await button.click();
          return undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000, what },
      );
    await pressUntil("stop", "stopped (held)", "h stopped and held, without JavaScript");
    await pressUntil("start", "running", "h running again, without JavaScript");
    await plain.close();
  });

  it("refuses a change from a foreign Origin", async (t) => {
    if (!context) return t.skip("needs the login above");
    const [cookie] = await context.cookies(origin);
    const response = await fetch(`${origin}/workers/h/stop`, {
      method: "POST",
      headers: { cookie: `${cookie?.name}=${cookie?.value}`, origin: "http://evil.example" },
      redirect: "manual",
    });
    assert.equal(response.status, 403);
    const status = JSON.parse((await cli(["status"])).stdout) as {
      workers: Array<{ name: string; held: boolean }>;
    };
    assert.equal(status.workers.find((w) => w.name === "h")?.held, false, "nothing was held");
  });

  it("asked nothing of anything but 127.0.0.1", (t) => {
    if (!context) return t.skip("needs the login above");
    assert.ok(requested.length > 0);
    assert.deepEqual(
      requested.filter((url) => !url.startsWith(`${origin}/`)),
      [],
    );
  });

  it("open: the worker's own web UI in a new tab, logged in through a one-time link", async (t) => {
    if (!page || !context) return t.skip("needs the login above");
    await page.goto(`${origin}/`);
    const [tab] = await Promise.all([
      context.waitForEvent("page"),
      page.locator('tr[data-worker="h"] form.open button').click(),
    ]);
    await tab.waitForURL((url) => url.pathname === "/" && url.port !== new URL(origin).port, {
      timeout: 30_000,
    });
    assert.equal(await tab.title(), "OpenCode");
    const runtime = new URL(tab.url());
    const cookies = await context.cookies(runtime.origin);
    assert.ok(
      cookies.some((cookie) => cookie.name === `ow_session_${runtime.port}` && cookie.httpOnly),
      "the runtime's own session cookie, named after its port",
    );
    await tab.close();
  });
});
