import { UsageError } from "../errors/errors.js";
import { describeGetError, httpGet } from "./http-get.js";

export interface ProbeArgs {
  url: URL;
  timeoutMs: number;
  user: string | undefined;
  password: string | undefined;
}

/**
 * `openwork-server probe --url URL [--timeout-ms N] [--basic-auth-env VAR] [--user-env VAR]`:
 * the entrypoint's health probe (the image has no curl). Secrets come from the
 * named environment variables, never from the command line (which `ps` shows).
 */
export function parseProbeArgs(args: string[], env: NodeJS.ProcessEnv = process.env): ProbeArgs {
  let url: string | undefined;
  let timeoutMs = 2000;
  let passwordVar: string | undefined;
  let userVar: string | undefined;
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
      case "--timeout-ms": {
        const raw = value();
        timeoutMs = Number(raw);
        if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000)
          throw new UsageError(`probe: --timeout-ms must be an integer 1-600000, got "${raw}"`);
        break;
      }
      case "--basic-auth-env":
        passwordVar = value();
        break;
      case "--user-env":
        userVar = value();
        break;
      default:
        throw new UsageError(
          `probe: unknown argument "${arg}"`,
          "usage: openwork-server probe --url URL [--timeout-ms N] [--basic-auth-env VAR] [--user-env VAR]",
        );
    }
  }
  if (!url) throw new UsageError("probe: --url is required");
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
  };
}

/** One probe: ok when the URL answers 2xx in time (and, for /global/health, the body says healthy). */
export async function probeOnce(
  args: ProbeArgs,
): Promise<{ ok: true; detail: string } | { ok: false; reason: string }> {
  const headers: Record<string, string> = {};
  if (args.password !== undefined)
    headers.authorization = `Basic ${Buffer.from(`${args.user}:${args.password}`).toString("base64")}`;
  let response: { status: number; text: string };
  try {
    response = await httpGet(args.url, headers, args.timeoutMs);
  } catch (error) {
    return { ok: false, reason: describeGetError(error, args.timeoutMs) };
  }
  const body = response.text;
  if (response.status < 200 || response.status > 299) return { ok: false, reason: `HTTP ${response.status}` };
  if (args.url.pathname.endsWith("/global/health")) {
    let parsed: { healthy?: unknown; version?: unknown } | undefined;
    try {
      parsed = JSON.parse(body) as { healthy?: unknown; version?: unknown };
    } catch {
      return { ok: false, reason: "the health answer is not JSON" };
    }
    if (parsed?.healthy !== true) return { ok: false, reason: `not healthy: ${body.slice(0, 200)}` };
    return { ok: true, detail: `healthy ${String(parsed.version ?? "")}`.trim() };
  }
  return { ok: true, detail: `HTTP ${response.status}` };
}

export async function probeMain(args: string[]): Promise<number> {
  const parsed = parseProbeArgs(args);
  const result = await probeOnce(parsed);
  const where = `${parsed.url.origin}${parsed.url.pathname}`;
  if (result.ok) {
    process.stdout.write(`${where}: ${result.detail}\n`);
    return 0;
  }
  process.stderr.write(`openwork-server probe: ${where}: ${result.reason}\n`);
  return 1;
}
