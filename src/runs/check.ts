import { errorMessage } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { RuntimeClient } from "./client.js";
import { stopRun } from "./reconcile.js";
import type { RunRecord, RunSecrets } from "./record.js";
import type { RunRegistry } from "./registry.js";
import type { StartResult } from "./start.js";
import { versionMismatches } from "./versions.js";

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  durationMs: number;
}

/**
 * Smoke checks against a running runtime, through the same door a user
 * uses: the server's URL and the tokens. Each check is independent; all run.
 */
export async function runChecks(
  record: RunRecord,
  secrets: RunSecrets,
  options: { events?: boolean; expected?: RunRecord["versions"] } = {},
): Promise<CheckResult[]> {
  const url = record.url ?? "";
  const client = new RuntimeClient(url, { client: secrets.clientToken, host: secrets.hostToken });
  const results: CheckResult[] = [];
  const check = async (name: string, fn: () => Promise<string>) => {
    const started = Date.now();
    try {
      results.push({ name, ok: true, detail: await fn(), durationMs: Date.now() - started });
    } catch (error) {
      results.push({ name, ok: false, detail: errorMessage(error), durationMs: Date.now() - started });
    }
  };
  await check("server health", async () => {
    const health = await client.healthy(3000);
    if (!health.ok) throw new Error(health.reason);
    return `${url}/system/health answers`;
  });
  await check("versions match the pinned ones", async () => {
    const versions = await client.versions();
    const problems = versionMismatches(versions);
    const expected = options.expected ?? record.versions;
    const active = versions.active.opencode;
    if (expected.opencode && active && expected.opencode !== active)
      problems.push(`opencode runs ${active}, the run was started with ${expected.opencode}`);
    if (problems.length > 0) throw new Error(problems.join("; "));
    return Object.entries(versions.active)
      .map(([name, version]) => `${name} ${version ?? "?"}`)
      .join(", ");
  });
  await check("owner token works", async () => {
    if (!secrets.ownerToken) throw new Error("no owner token was minted for this run");
    await new RuntimeClient(url, { client: secrets.ownerToken }).summary();
    return "the owner token reads the runtime summary";
  });
  await check("proxy reaches the engine", async () => {
    const raw = await client.engine("GET", "/global/health");
    const body = raw.body as { healthy?: boolean; version?: string } | undefined;
    if (raw.status !== 200 || !body?.healthy) throw new Error(`HTTP ${raw.status}: ${JSON.stringify(body)}`);
    return `engine ${body.version ?? "?"} healthy through /opencode`;
  });
  await check("engine session can be created and listed", async () => {
    const created = await client.engine("POST", "/session", { body: {} });
    const session = created.body as { id?: string } | undefined;
    if (created.status >= 300 || !session?.id)
      throw new Error(`POST /opencode/session: HTTP ${created.status}`);
    const listed = await client.engine("GET", "/session");
    const sessions = listed.body as Array<{ id: string }> | undefined;
    if (!Array.isArray(sessions) || !sessions.some((item) => item.id === session.id)) {
      throw new Error(`session ${session.id} is missing from GET /opencode/session`);
    }
    return `session ${session.id} created and listed`;
  });
  if (options.events) {
    await check("server-sent events arrive", async () => {
      const { request } = await import("undici");
      const response = await request(new URL("/opencode/global/event", url), {
        headers: { authorization: `Bearer ${secrets.clientToken}`, accept: "text/event-stream" },
        headersTimeout: 5000,
        signal: AbortSignal.timeout(8000),
      });
      if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}`);
      let text = "";
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString("utf8");
        const match = /data: (.*)\n/.exec(text);
        if (match?.[1]) {
          response.body.destroy();
          const event = JSON.parse(match[1]) as { type?: string; payload?: { type?: string } };
          return `first event: ${event.payload?.type ?? event.type ?? "unknown"}`;
        }
      }
      throw new Error("the stream ended without an event");
    });
  }
  return results;
}

/**
 * `start --check`: run the checks against a run just started, then stop it
 * unless it is to stay (--detach) — and never one that was already running
 * before this command (a reused run stays).
 */
export async function checkStartedRun(options: {
  registry: RunRegistry;
  result: StartResult;
  log: Logger;
  events: boolean;
  keepRunning: boolean;
}): Promise<{ checks: CheckResult[]; passed: boolean; record: RunRecord }> {
  const { result } = options;
  const checks = await runChecks(result.record, result.secrets, { events: options.events });
  const record =
    options.keepRunning || result.reused
      ? result.record
      : (await stopRun(options.registry, result.record, options.log)).record;
  return { checks, passed: checks.every((check) => check.ok), record };
}
