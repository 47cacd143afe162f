import { UsageError } from "../errors/errors.js";
import { describeGetError, httpGet, isTimeoutError } from "../net/http.js";
import { pidState } from "../processes/inspect.js";
import { done, nextAttemptTimeout, notYet, pollUntil, WaitTimeoutError } from "../retry/poll.js";

export interface ProbeArgs {
  url: URL;
  /** the longest one attempt may wait for an answer */
  timeoutMs: number;
  user: string | undefined;
  password: string | undefined;
  /** keep trying until healthy or this long has passed (one attempt when absent) */
  waitMs?: number | undefined;
  /** while waiting, give up at once when this process is gone */
  pid?: number | undefined;
}

const USAGE =
  "usage: openwork-server probe --url URL [--timeout-ms N] [--wait-ms N [--pid P]] [--basic-auth-env VAR] [--user-env VAR]";

/** Exit codes of `probe`: the entrypoint tells "not healthy in time" from "the process died". */
export const PROBE_EXIT = { healthy: 0, unhealthy: 1, processGone: 3 } as const;

/**
 * `openwork-server probe --url URL [--timeout-ms N] [--wait-ms N [--pid P]] [--basic-auth-env VAR] [--user-env VAR]`:
 * the entrypoint's health probe (the image has no curl). With `--wait-ms` it is
 * also the entrypoint's wait: one process polls until healthy instead of the
 * shell starting Node every few hundred milliseconds. Secrets come from the
 * named environment variables, never from the command line (which `ps` shows).
 */
export function parseProbeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ProbeArgs {
  let url: string | undefined;
  let timeoutMs = 2000;
  let passwordVar: string | undefined;
  let userVar: string | undefined;
  let waitMs: number | undefined;
  let pid: number | undefined;
  const integer = (flag: string, raw: string, min: number, max: number): number => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`probe: ${flag} must be an integer ${min}-${max}, got "${raw}"`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const [flag, inline] = arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = (): string => {
      const next = inline ?? args[++i];
      if (next === undefined || next === "") throw new UsageError(`probe: ${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case "--url":
        url = value();
        break;
      case "--timeout-ms":
        timeoutMs = integer(flag, value(), 1, 600_000);
        break;
      case "--wait-ms":
        waitMs = integer(flag, value(), 1, 24 * 3600_000);
        break;
      case "--pid":
        pid = integer(flag, value(), 1, 2 ** 22);
        break;
      case "--basic-auth-env":
        passwordVar = value();
        break;
      case "--user-env":
        userVar = value();
        break;
      default:
        throw new UsageError(`probe: unknown argument "${arg}"`, USAGE);
    }
  }
  if (!url) throw new UsageError("probe: --url is required", USAGE);
  if (pid !== undefined && waitMs === undefined)
    throw new UsageError("probe: --pid only makes sense with --wait-ms (it ends the wait)", USAGE);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`probe: --url "${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:")
    throw new UsageError(`probe: --url must be http://, got ${parsed.protocol}`);
  if (parsed.username || parsed.password)
    throw new UsageError("probe: --url must not carry credentials; use --basic-auth-env VAR");
  const password = passwordVar === undefined ? undefined : env[passwordVar];
  if (passwordVar !== undefined && !password)
    throw new UsageError(`probe: --basic-auth-env names ${passwordVar}, which is not set`);
  const user = userVar === undefined ? undefined : env[userVar];
  if (userVar !== undefined && !user)
    throw new UsageError(`probe: --user-env names ${userVar}, which is not set`);
  if (userVar !== undefined && passwordVar === undefined)
    throw new UsageError("probe: --user-env needs --basic-auth-env (the password)");
  return {
    url: parsed,
    timeoutMs,
    user: password === undefined ? undefined : (user ?? "opencode"),
    password,
    waitMs,
    pid,
  };
}

export type WaitResult = { ok: true; detail: string } | { ok: false; reason: string; processGone: boolean };

/** Probe until healthy, the watched process is gone, or `waitMs` has passed. */
export async function probeUntil(args: ProbeArgs & { waitMs: number }): Promise<WaitResult> {
  let attemptMs: number | undefined;
  let timedOut = false;
  try {
    return await pollUntil<WaitResult>(
      async ({ remainingMs }) => {
        if (args.pid !== undefined && pidState(args.pid) !== "alive")
          return done({ ok: false, reason: `process ${args.pid} exited`, processGone: true });
        attemptMs = nextAttemptTimeout(attemptMs, timedOut, args.timeoutMs);
        const result = await probeOnce({
          ...args,
          timeoutMs: Math.max(50, Math.min(attemptMs, remainingMs)),
        });
        if (result.ok) return done(result);
        timedOut = result.timedOut;
        return notYet(result.reason);
      },
      { what: args.url.href, pace: { intervalMs: 100 }, deadlineMs: args.waitMs },
    );
  } catch (error) {
    if (!(error instanceof WaitTimeoutError)) throw error;
    return {
      ok: false,
      reason: `${error.lastReason ?? "no answer"} (waited ${args.waitMs} ms)`,
      processGone: false,
    };
  }
}

/** One probe: ok when the URL answers 2xx in time (and, for /global/health, the body says healthy). */
export async function probeOnce(
  args: ProbeArgs,
): Promise<{ ok: true; detail: string } | { ok: false; reason: string; timedOut: boolean }> {
  const headers: Record<string, string> = {};
  if (args.password !== undefined)
    headers.authorization = `Basic ${Buffer.from(`${args.user}:${args.password}`).toString("base64")}`;
  let response: { status: number; text: string };
  try {
    response = await httpGet(args.url, headers, args.timeoutMs);
  } catch (error) {
    return {
      ok: false,
      reason: describeGetError(error, args.timeoutMs),
      timedOut: isTimeoutError(error),
    };
  }
  const body = response.text;
  if (response.status < 200 || response.status > 299)
    return { ok: false, reason: `HTTP ${response.status}`, timedOut: false };
  if (args.url.pathname.endsWith("/global/health")) {
    let parsed: { healthy?: unknown; version?: unknown } | undefined;
    try {
      parsed = JSON.parse(body) as { healthy?: unknown; version?: unknown };
    } catch {
      return { ok: false, reason: "the health answer is not JSON", timedOut: false };
    }
    if (parsed?.healthy !== true)
      return { ok: false, reason: `not healthy: ${body.slice(0, 200)}`, timedOut: false };
    return { ok: true, detail: `healthy ${String(parsed.version ?? "")}`.trim() };
  }
  return { ok: true, detail: `HTTP ${response.status}` };
}

export async function probeMain(args: string[]): Promise<number> {
  const parsed = parseProbeArgs(args);
  const waitMs = parsed.waitMs;
  const result = waitMs === undefined ? await probeOnce(parsed) : await probeUntil({ ...parsed, waitMs });
  const where = `${parsed.url.origin}${parsed.url.pathname}`;
  if (result.ok) {
    process.stdout.write(`${where}: ${result.detail}\n`);
    return PROBE_EXIT.healthy;
  }
  process.stderr.write(`openwork-server probe: ${where}: ${result.reason}\n`);
  return "processGone" in result && result.processGone ? PROBE_EXIT.processGone : PROBE_EXIT.unhealthy;
}
