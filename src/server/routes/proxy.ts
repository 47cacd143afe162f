import type http from "node:http";
import type { Duplex } from "node:stream";
import { endpoints } from "../../contract/api.js";
import type { ServeEnv } from "../../contract/env.js";
import { done, notYet, pollUntil, sleep } from "../../retry/poll.js";
import type { Route, UpgradeRoute } from "../dispatch.js";
import { HttpError, sendError } from "../http.js";
import { countProxied, type ProxyTarget } from "../metrics.js";
import { proxyRequest, proxyUpgrade, type Upstream } from "../proxy.js";
import type { SupervisionPolicy } from "../supervisor.js";
import type { Topology } from "../topology.js";

export interface ProxyDeps {
  topology: Topology;
  policy: SupervisionPolicy;
  env: ServeEnv;
}

/**
 * The upstream to proxy to, once the engine can take requests. A (re)starting
 * engine accepts connections before it answers them, so requests wait for the
 * supervisor to see it healthy (bounded) instead of hanging inside it.
 */
async function readyUpstream(deps: ProxyDeps, afterRefusal = false): Promise<Upstream | undefined> {
  // after a refused connection the pid poll may not have noticed the death yet
  if (afterRefusal) await sleep(deps.policy.pidPollMs + 50);
  return pollUntil<Upstream | undefined>(
    () => {
      const status = deps.topology.engine.status;
      if (status === "healthy" || status === "unhealthy") return done(deps.topology.upstream);
      if (status === "cooldown" || status === "stopped") return done(undefined);
      return notYet(`the engine is ${status}`);
    },
    {
      what: "the engine to take requests",
      pace: { intervalMs: 50 },
      deadlineMs: Math.min(30_000, deps.policy.startDeadlineMs),
    },
  ).catch(() => undefined);
}

/** The path and query on the engine: the request's, without the /opencode prefix. */
function engineTarget(url: URL): string {
  return `${url.pathname.slice("/opencode".length) || "/"}${url.search}`;
}

/**
 * Forward one request to the engine at `target` (its path and query there), streaming, with the
 * engine's credentials: the /opencode/* proxy and the web UI (src/server/routes/web.ts) both use it.
 */
export async function forwardToEngine(
  deps: ProxyDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  requestId: string,
  target: string,
  label: ProxyTarget = "opencode",
): Promise<void> {
  const upstream = await readyUpstream(deps);
  if (!upstream) {
    countProxied(label, 503);
    throw new HttpError(
      503,
      "engine_unavailable",
      `the engine is ${deps.topology.engine.status}; try again shortly`,
    );
  }
  const bodyless =
    req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined;
  proxyRequest(req, res, {
    upstream,
    target,
    workspace: deps.env.OPENWORK_WORKSPACE,
    requestId,
    onError: (status, code, message) => {
      countProxied(label, status);
      sendError(res, requestId, status, code, message);
    },
    onAnswer: (status) => countProxied(label, status),
    retry: bodyless ? () => readyUpstream(deps, true) : undefined,
  });
}

/** Forward an HTTP upgrade (a WebSocket) to the engine at `target`, with the engine's credentials. */
export async function forwardUpgradeToEngine(
  deps: ProxyDeps,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  requestId: string,
  target: string,
  label: ProxyTarget = "opencode",
): Promise<void> {
  const upstream = await readyUpstream(deps);
  if (!upstream) {
    countProxied(label, 503);
    socket.end("HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    return;
  }
  proxyUpgrade(req, socket, head, {
    upstream,
    target,
    workspace: deps.env.OPENWORK_WORKSPACE,
    requestId,
    onAnswer: (status) => countProxied(label, status),
  });
}

export function proxyRoutes(deps: ProxyDeps): Route[] {
  return [
    {
      endpoint: endpoints.proxy,
      handle: ({ req, res, requestId, url }) => forwardToEngine(deps, req, res, requestId, engineTarget(url)),
    },
  ];
}

/** WebSockets under /opencode/ (e.g. the engine's PTY sessions), proxied with the engine's credentials. */
export function proxyUpgrades(deps: ProxyDeps): UpgradeRoute[] {
  return [
    {
      endpoint: endpoints.proxy,
      handle: (req, socket, head, requestId, url) =>
        forwardUpgradeToEngine(deps, req, socket, head, requestId, engineTarget(url)),
    },
  ];
}
