import type http from "node:http";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { endpoints } from "../../contract/api.js";
import type { ServeEnv } from "../../contract/env.js";
import { markAuthenticated } from "../connections.js";
import type { Route, UpgradeRoute } from "../dispatch.js";
import { HttpError, sendOk } from "../http.js";
import { cookieValue, sessionCookieName, type WebLogins } from "../web-sessions.js";
import { forwardToEngine, forwardUpgradeToEngine, type ProxyDeps } from "./proxy.js";

/** Paths of our own routes: never the web UI's, whatever cookie comes with them. */
const OWN_PREFIXES = ["/system", "/tokens", "/opencode", "/login"] as const;

export function isOwnPath(pathname: string): boolean {
  return OWN_PREFIXES.some((prefix) => pathname === prefix || pathname.startsWith(`${prefix}/`));
}

/**
 * Whether a Host header names this server (DNS rebinding: a page of another
 * name resolved to this address must not be served). The port is the one the
 * server listens on or is published on; the name is a loopback name, the
 * address it listens on, or, when it listens on all interfaces, any IP
 * literal (an address is never rebound; only names are).
 */
export function allowedHost(host: string | undefined, env: ServeEnv): boolean {
  if (!host) return false;
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):([0-9]{1,5})$/.exec(host.trim());
  if (!match) return false;
  const name = (match[1] as string).toLowerCase();
  const port = Number(match[2]);
  if (port !== env.OPENWORK_SERVER_PORT && port !== env.OPENWORK_PUBLISHED_PORT) return false;
  if (name === "127.0.0.1" || name === "localhost" || name === "[::1]") return true;
  const bare = name.startsWith("[") ? name.slice(1, -1) : name;
  const listen = env.OPENWORK_SERVER_HOST.toLowerCase();
  if (bare === listen) return true;
  return (listen === "0.0.0.0" || listen === "::") && isIP(bare) !== 0;
}

const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

function page(
  res: http.ServerResponse,
  requestId: string,
  status: number,
  title: string,
  text: string,
): void {
  const body = `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>\n`;
  res.writeHead(status, {
    "content-type": "text/html; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-request-id": requestId,
  });
  res.end(body);
}

const NOT_LOGGED_IN =
  "This link is not valid: it was already used, it expired, or it is wrong. Run <code>openwork open</code> for a new one.";

export interface WebDeps extends ProxyDeps {
  logins: WebLogins;
  log: Logger;
}

/** POST /system/login-codes and GET /login (docs/web-ui.md). */
export function loginRoutes(deps: WebDeps): Route[] {
  return [
    {
      endpoint: endpoints.loginCode,
      handle: ({ res, requestId }) => {
        const { code, expiresAt } = deps.logins.mintCode();
        sendOk(res, requestId, 201, {
          code,
          expiresAt: new Date(expiresAt).toISOString(),
          path: `/login?code=${encodeURIComponent(code)}`,
        });
      },
    },
    {
      endpoint: endpoints.login,
      handle: ({ req, res, requestId, url }) => {
        if (!allowedHost(req.headers.host, deps.env))
          throw new HttpError(421, "misdirected_request", "the Host header is not this server's address");
        const code = url.searchParams.get("code");
        const session = code ? deps.logins.exchange(code) : undefined;
        if (!session) {
          // Never the code itself: a used one is worthless, but a mistyped one may be one character off.
          deps.log.warn({ requestId }, "a web UI login with a bad, expired or used code was refused");
          return page(res, requestId, 401, "Not logged in", NOT_LOGGED_IN);
        }
        markAuthenticated(req.socket);
        res.removeHeader("connection");
        const maxAge = Math.max(1, Math.floor((session.expiresAt - Date.now()) / 1000));
        res.writeHead(303, {
          location: "/",
          "set-cookie": `${sessionCookieName(req.headers.host)}=${session.session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}`,
          "cache-control": "no-store",
          "referrer-policy": "no-referrer",
          "content-length": 0,
          "x-request-id": requestId,
        });
        res.end();
        deps.log.info({ requestId }, "a web UI session started");
      },
    },
  ];
}

/** Why a cookie-authenticated request is refused, or undefined when it may pass. */
function refusal(
  req: http.IncomingMessage,
  deps: WebDeps,
):
  | {
      status: number;
      code: "misdirected_request" | "unauthorized" | "origin_mismatch" | "not_found";
      message: string;
    }
  | undefined {
  const host = req.headers.host;
  if (!allowedHost(host, deps.env))
    return {
      status: 421,
      code: "misdirected_request",
      message: "the Host header is not this server's address",
    };
  if (!deps.logins.valid(cookieValue(req.headers.cookie, sessionCookieName(host))))
    return {
      status: 401,
      code: "unauthorized",
      message: "the web UI needs a session: open a login link from `openwork open`",
    };
  const origin = req.headers.origin;
  const method = req.method ?? "GET";
  const upgrade = req.headers.upgrade !== undefined;
  if ((STATE_CHANGING.has(method) || (upgrade && origin !== undefined)) && origin !== `http://${host}`)
    return {
      status: 403,
      code: "origin_mismatch",
      message: `${method} with the session cookie needs Origin http://${host}`,
    };
  return undefined;
}

/** Every path outside our own: the engine's web UI and its API, for a browser with a session. */
export function webUiRoute(deps: WebDeps): Route {
  return {
    endpoint: endpoints.webUi,
    handle: async ({ req, res, requestId, url }) => {
      if (isOwnPath(url.pathname))
        throw new HttpError(404, "not_found", `no route for ${req.method ?? "GET"} ${url.pathname}`);
      const refused = refusal(req, deps);
      if (refused) {
        if (refused.status === 401 && String(req.headers.accept ?? "").includes("text/html"))
          return page(res, requestId, 401, "Not logged in", NOT_LOGGED_IN);
        throw new HttpError(refused.status, refused.code, refused.message);
      }
      markAuthenticated(req.socket);
      res.removeHeader("connection");
      await forwardToEngine(deps, req, res, requestId, `${url.pathname}${url.search}`, "web");
    },
  };
}

/** WebSockets the web UI opens (e.g. its terminals), for a browser with a session. */
export function webUiUpgrade(deps: WebDeps): UpgradeRoute {
  return {
    endpoint: endpoints.webUi,
    handle: async (req: http.IncomingMessage, socket: Duplex, head: Buffer, requestId: string, url: URL) => {
      const refused: ReturnType<typeof refusal> = isOwnPath(url.pathname)
        ? { status: 404, code: "not_found", message: `no WebSocket endpoint at ${url.pathname}` }
        : refusal(req, deps);
      if (refused) {
        const body = JSON.stringify({
          ok: false,
          error: { code: refused.code, message: refused.message, requestId },
        });
        socket.end(
          `HTTP/1.1 ${refused.status} Refused\r\ncontent-type: application/json\r\nx-request-id: ${requestId}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
        return;
      }
      markAuthenticated(req.socket);
      await forwardUpgradeToEngine(deps, req, socket, head, requestId, `${url.pathname}${url.search}`, "web");
    },
  };
}
