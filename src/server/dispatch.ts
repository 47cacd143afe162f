import type http from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { EndpointSpec } from "../contract/api.js";
import { errorMessage, isOpenworkError } from "../errors/errors.js";
import { nodeHttp } from "../net/http.js";
import { isAuthenticated, markAuthenticated } from "./connections.js";
import { HttpError, requestIdOf, sendError } from "./http.js";
import { allows, type TokenStore } from "./tokens.js";

export interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  requestId: string;
  params: Record<string, string>;
  url: URL;
}

/** A route: an endpoint of the contract and the code that answers it. */
export interface Route {
  endpoint: EndpointSpec;
  handle(ctx: RequestContext): Promise<void> | void;
}

/** An HTTP upgrade (WebSocket) for an endpoint that takes them. */
export interface UpgradeRoute {
  endpoint: EndpointSpec;
  handle(req: http.IncomingMessage, socket: Duplex, head: Buffer, requestId: string, url: URL): Promise<void>;
}

/**
 * The one dispatcher: match a route by method and path, authenticate against
 * the endpoint's auth level, run it, and turn whatever it throws into the
 * error envelope. Nothing a client sends can make a request go unanswered.
 */
export function createDispatcher(options: {
  routes: readonly Route[];
  upgrades: readonly UpgradeRoute[];
  /** what answers a path no route has (the web UI: src/server/routes/web.ts); else 404 */
  fallback?: Route | undefined;
  fallbackUpgrade?: UpgradeRoute | undefined;
  tokens: TokenStore;
  log: Logger;
}): {
  handler: http.RequestListener;
  upgradeHandler: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
} {
  const { routes, tokens, log } = options;

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const requestId = requestIdOf(req);
    // A connection that has shown no token is closed after an error answer: it cannot linger.
    if (!isAuthenticated(req.socket)) res.setHeader("connection", "close");
    const url = parseTarget(req.url);
    if (!url) return sendError(res, requestId, 400, "invalid_url", "the request target is not a valid URL");
    const method = req.method ?? "GET";
    let matched: { route: Route; params: Record<string, string> } | undefined;
    let pathMatched = false;
    for (const route of routes) {
      const params = matchPath(route.endpoint.path, url.pathname);
      if (!params) continue;
      if (params === "malformed")
        return sendError(
          res,
          requestId,
          400,
          "invalid_url",
          "a path parameter is not valid percent-encoding",
        );
      pathMatched = true;
      const want = route.endpoint.method;
      if (want === "ALL" || want === method || (method === "HEAD" && want === "GET")) {
        matched = { route, params };
        break;
      }
    }
    if (!matched) {
      if (pathMatched)
        return sendError(
          res,
          requestId,
          405,
          "method_not_allowed",
          `${method} is not allowed on ${url.pathname}`,
        );
      if (!options.fallback)
        return sendError(res, requestId, 404, "not_found", `no route for ${method} ${url.pathname}`);
      matched = { route: options.fallback, params: {} };
    }
    const { route, params } = matched;
    const auth = route.endpoint.auth;
    if (auth !== "none") {
      const scope = tokens.authenticate(req, { basic: route.endpoint.basicAuth === true });
      if (scope !== undefined) {
        markAuthenticated(req.socket);
        res.removeHeader("connection");
      }
      if (scope === undefined) {
        res.setHeader("www-authenticate", challenges(route.endpoint));
        return sendError(res, requestId, 401, "unauthorized", unauthorizedMessage(route.endpoint));
      }
      if (!allows(scope, auth)) {
        return sendError(
          res,
          requestId,
          403,
          "forbidden",
          `${method} ${route.endpoint.path} needs the host token; this token has ${scope} scope`,
        );
      }
    }
    try {
      await route.handle({ req, res, requestId, params, url });
    } catch (error) {
      if (error instanceof HttpError) {
        // After a body that was too slow or too large, the rest of it is not waited for.
        if (error.status === 408 || error.status === 413) res.setHeader("connection", "close");
        sendError(res, requestId, error.status, error.code, error.message, error.extra);
      } else {
        log.error({ err: error, requestId }, "request failed");
        sendError(res, requestId, 500, "internal", errorMessage(error), {
          hint: isOpenworkError(error) ? error.hint : undefined,
        });
      }
    }
  };

  const handleUpgrade = async (req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const requestId = requestIdOf(req);
    const refuse = (status: number, code: string, message: string, extra: readonly string[] = []) => {
      const body = JSON.stringify({ ok: false, error: { code, message, requestId } });
      const headers = extra.map((line) => `${line}\r\n`).join("");
      socket.end(
        `HTTP/1.1 ${status} ${nodeHttp.STATUS_CODES[status]}\r\ncontent-type: application/json\r\nx-request-id: ${requestId}\r\n${headers}content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    const url = parseTarget(req.url);
    if (!url) return refuse(400, "invalid_url", "the request target is not a valid URL");
    const route = options.upgrades.find((candidate) => {
      const params = matchPath(candidate.endpoint.path, url.pathname);
      return params !== undefined && params !== "malformed";
    });
    if (!route) {
      if (!options.fallbackUpgrade)
        return refuse(404, "not_found", `no WebSocket endpoint at ${url.pathname}`);
      // The fallback authenticates by itself (the web UI's session cookie), never by token.
      try {
        await options.fallbackUpgrade.handle(req, socket, head, requestId, url);
      } catch (error) {
        log.error({ err: error, requestId }, "upgrade failed");
        if (!socket.destroyed) refuse(500, "internal", errorMessage(error));
      }
      return;
    }
    const scope = tokens.authenticate(req, { basic: route.endpoint.basicAuth === true });
    if (scope !== undefined) markAuthenticated(req.socket);
    if (route.endpoint.auth !== "none" && scope === undefined)
      return refuse(
        401,
        "unauthorized",
        unauthorizedMessage(route.endpoint),
        challenges(route.endpoint).map((challenge) => `www-authenticate: ${challenge}`),
      );
    if (!allows(scope, route.endpoint.auth))
      return refuse(403, "forbidden", `${route.endpoint.path} needs the host token`);
    try {
      await route.handle(req, socket, head, requestId, url);
    } catch (error) {
      log.error({ err: error, requestId }, "upgrade failed");
      if (!socket.destroyed) refuse(500, "internal", errorMessage(error));
    }
  };

  return {
    handler: (req, res) => void handle(req, res),
    upgradeHandler: (req, socket, head) => void handleUpgrade(req, socket, head),
  };
}

/** The WWW-Authenticate challenges of a 401: Basic too where the endpoint takes it (opencode's clients). */
function challenges(endpoint: EndpointSpec): string[] {
  return endpoint.basicAuth
    ? ['Bearer realm="openwork"', 'Basic realm="openwork"']
    : ['Bearer realm="openwork"'];
}

function unauthorizedMessage(endpoint: EndpointSpec): string {
  return endpoint.basicAuth
    ? "a valid token is required (Authorization: Bearer <token>, or Basic auth with the token as the password)"
    : "a valid token is required (Authorization: Bearer <token>)";
}

function parseTarget(target: string | undefined): URL | undefined {
  try {
    return new URL(target ?? "/", "http://openwork.invalid");
  } catch {
    return undefined;
  }
}

/** Path parameters of `pathname` under `pattern`; undefined when it does not match, "malformed" for bad escapes. */
export function matchPath(
  pattern: string,
  pathname: string,
): Record<string, string> | "malformed" | undefined {
  if (pattern.endsWith("/*")) {
    const prefix = pattern.slice(0, -2);
    return pathname === prefix || pathname.startsWith(`${prefix}/`) ? {} : undefined;
  }
  const a = pattern.split("/");
  const b = pathname.split("/");
  if (a.length !== b.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const part = a[i] as string;
    if (part.startsWith(":")) {
      try {
        params[part.slice(1)] = decodeURIComponent(b[i] as string);
      } catch {
        return "malformed";
      }
    } else if (part !== b[i]) return undefined;
  }
  return params;
}
