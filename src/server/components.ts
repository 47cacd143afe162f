import type { ServeEnv } from "../contract/env.js";
import { describeGetError, httpGet, isTimeoutError } from "../net/http.js";
import type { ComponentDefinition, HealthProbe } from "./supervisor.js";

/** The engine's basic-auth header: generated per run, added server-side, never sent to a client. */
export function engineAuthorization(env: ServeEnv): string {
  return `Basic ${Buffer.from(`${env.OPENCODE_SERVER_USERNAME}:${env.OPENCODE_SERVER_PASSWORD}`).toString("base64")}`;
}

/** What components inherit: the server's environment without the secrets only the server needs. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.OPENWORK_TOKEN_SHA256;
  delete env.OPENWORK_HOST_KEY;
  return { ...env, ...extra };
}

async function getJson(
  url: string,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; body: unknown; text: string }> {
  const { status, text } = await httpGet(url, headers, timeoutMs);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status, body, text };
}

function failure(error: unknown, timeoutMs: number): HealthProbe {
  return {
    ok: false,
    detail: describeGetError(error, timeoutMs),
    timedOut: isTimeoutError(error),
  };
}

export function engineDefinition(
  env: ServeEnv,
  options: { runtimeId: string; binary: string; port: number; pinnedVersion: string | undefined },
): ComponentDefinition {
  const url = `http://127.0.0.1:${options.port}`;
  const authorization = engineAuthorization(env);
  return {
    name: "opencode",
    runtimeId: options.runtimeId,
    pinnedVersion: options.pinnedVersion,
    url,
    port: options.port,
    logFile: env.OPENWORK_ENGINE_LOG,
    launch: () => ({
      command: options.binary,
      args: ["serve", "--hostname", "127.0.0.1", "--port", String(options.port)],
      env: childEnv({
        OPENCODE_SERVER_USERNAME: env.OPENCODE_SERVER_USERNAME,
        OPENCODE_SERVER_PASSWORD: env.OPENCODE_SERVER_PASSWORD,
      }),
      cwd: process.cwd(),
      logFile: env.OPENWORK_ENGINE_LOG,
    }),
    async probe(timeoutMs) {
      try {
        const { status, body, text } = await getJson(`${url}/global/health`, { authorization }, timeoutMs);
        const health = body as { healthy?: unknown; version?: unknown } | undefined;
        if (status === 200 && health?.healthy === true) {
          const version = typeof health.version === "string" ? health.version : undefined;
          return { ok: true, version, detail: `healthy ${version ?? ""}`.trim() };
        }
        return { ok: false, detail: `HTTP ${status}: ${text.slice(0, 200)}` };
      } catch (error) {
        return failure(error, timeoutMs);
      }
    },
  };
}

/**
 * The router (docs/architecture.md, "Router contract"): `opencode-router serve <workspace>`
 * with OPENCODE_URL (the engine's current URL, fresh on every start) and a
 * health port answering `GET /health`.
 */
export function routerDefinition(
  env: ServeEnv,
  options: {
    runtimeId: string;
    binary: string;
    healthPort: number;
    pinnedVersion: string | undefined;
    engineUrl: () => string;
  },
): ComponentDefinition {
  const url = `http://127.0.0.1:${options.healthPort}/health`;
  return {
    name: "opencode-router",
    runtimeId: options.runtimeId,
    pinnedVersion: options.pinnedVersion,
    url,
    port: options.healthPort,
    logFile: env.OPENWORK_ROUTER_LOG ?? `${env.OPENWORK_ENGINE_LOG}.router`,
    launch: () => ({
      command: options.binary,
      args: ["serve", env.OPENWORK_WORKSPACE],
      env: childEnv({
        OPENCODE_URL: options.engineUrl(),
        OPENCODE_ROUTER_HEALTH_PORT: String(options.healthPort),
        OPENCODE_SERVER_USERNAME: env.OPENCODE_SERVER_USERNAME,
        OPENCODE_SERVER_PASSWORD: env.OPENCODE_SERVER_PASSWORD,
      }),
      cwd: process.cwd(),
      logFile: env.OPENWORK_ROUTER_LOG ?? `${env.OPENWORK_ENGINE_LOG}.router`,
    }),
    async probe(timeoutMs) {
      try {
        const { status, body, text } = await getJson(url, {}, timeoutMs);
        if (status >= 200 && status < 300) {
          const version =
            typeof (body as { version?: unknown })?.version === "string"
              ? (body as { version: string }).version
              : undefined;
          return { ok: true, version, detail: `HTTP ${status}` };
        }
        return { ok: false, detail: `HTTP ${status}: ${text.slice(0, 200)}` };
      } catch (error) {
        return failure(error, timeoutMs);
      }
    },
  };
}
