import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { WorkerStatus } from "../status.js";
import { type DashboardAuth, sameSecret } from "./codes.js";
import {
  type PageContext,
  renderFleetPage,
  renderMessage,
  renderOpenPage,
  renderRows,
  renderWorkerPage,
} from "./html.js";

export const DASHBOARD_ACTIONS = ["restart", "stop", "start"] as const;
export type DashboardAction = (typeof DASHBOARD_ACTIONS)[number];

/** What the dashboard needs of the supervisor: its own view of the fleet, and its hands. */
export interface DashboardHost {
  /** the table's rows, from the supervisor's heartbeats (nothing is asked of the runtimes) */
  rows(): WorkerStatus[];
  context(): Omit<PageContext, "at" | "notice">;
  heartbeatIntervalMs(): number;
  /** begin an action; the message says what was begun, undefined: no such worker */
  act(name: string, action: DashboardAction): Promise<{ ok: boolean; message: string } | undefined>;
  /** a one-time login link to the worker's web UI; undefined: no such worker */
  open(
    name: string,
  ): Promise<{ ok: true; url: string; expiresAt: string } | { ok: false; message: string } | undefined>;
  /** the last lines of the worker's current run's output, undefined: no such worker */
  logs(name: string, tail: number): Promise<{ lines: string[]; error: string | null } | undefined>;
}

const LOG_LINES = 50;

function headers(nonce?: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    // Not no-referrer: under it a form's POST carries `Origin: null`, which the Origin check refuses.
    "referrer-policy": "same-origin",
    "content-security-policy": [
      "default-src 'none'",
      nonce ? `script-src 'nonce-${nonce}'` : "script-src 'none'",
      "style-src 'unsafe-inline'",
      "connect-src 'self'",
      "form-action 'self'",
      "base-uri 'none'",
      "frame-ancestors 'none'",
    ].join("; "),
  };
}

function cookieOf(request: IncomingMessage, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? "").split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return value.join("=");
  }
  return undefined;
}

/**
 * The fleet dashboard, on the supervisor's 127.0.0.1 server beside /metrics.
 * Every route checks the Host header (a DNS-rebound name is refused); all but
 * the code exchange need the session cookie; a POST that changes something
 * needs an Origin of this very dashboard.
 */
export class Dashboard {
  constructor(
    private readonly host: DashboardHost,
    private readonly auth: DashboardAuth,
    /** the secret (0600 in the state dir) `workers dashboard` presents to ask for a login code */
    private readonly secret: string,
  ) {}

  /** Handle a request; false when the route is not the dashboard's. */
  handle(request: IncomingMessage, response: ServerResponse): boolean {
    const url = new URL(request.url ?? "/", "http://localhost");
    const port = request.socket.localPort;
    const hostHeader = request.headers.host ?? "";
    if (hostHeader !== `127.0.0.1:${port}` && hostHeader !== `localhost:${port}`) {
      response
        .writeHead(421, headers())
        .end(renderMessage("Misdirected request", "the dashboard answers to 127.0.0.1 and localhost only"));
      return true;
    }
    const origin = `http://${hostHeader}`;
    const method = request.method ?? "GET";
    void this.route(request, response, url, method, origin).catch((error: unknown) => {
      if (!response.headersSent)
        response.writeHead(500, headers()).end(renderMessage("Error", String(error)));
      else response.end();
    });
    return true;
  }

  private cookieName(request: IncomingMessage): string {
    return `openwork_dashboard_${request.socket.localPort}`;
  }

  private async route(
    request: IncomingMessage,
    response: ServerResponse,
    url: URL,
    method: string,
    origin: string,
  ): Promise<void> {
    if (url.pathname === "/dashboard/codes" && method === "POST") {
      const presented = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
      if (!presented || !sameSecret(presented, this.secret)) {
        response.writeHead(401, { "content-type": "application/json" }).end('{"error":"unauthorized"}\n');
        return;
      }
      const { code, expiresAt } = this.auth.issueCode();
      const link = `${origin}/login?code=${code}`;
      response
        .writeHead(200, { "content-type": "application/json", "cache-control": "no-store" })
        .end(`${JSON.stringify({ url: link, expiresAt })}\n`);
      return;
    }
    if (url.pathname === "/login" && method === "GET") {
      const session = this.auth.redeem(url.searchParams.get("code") ?? "");
      if (!session) {
        response
          .writeHead(401, headers())
          .end(
            renderMessage(
              "Login link expired or already used",
              "a login link works once, within a minute: ask for a new one with `openwork workers dashboard`",
            ),
          );
        return;
      }
      response
        .writeHead(303, {
          location: "/",
          "cache-control": "no-store",
          "referrer-policy": "no-referrer",
          "set-cookie": `${this.cookieName(request)}=${session}; HttpOnly; SameSite=Strict; Path=/`,
        })
        .end();
      return;
    }
    const changes = method !== "GET" && method !== "HEAD";
    if (changes && request.headers.origin !== origin) {
      response
        .writeHead(403, headers())
        .end(renderMessage("Forbidden", "a change must come from the dashboard's own page"));
      return;
    }
    if (!this.auth.hasSession(cookieOf(request, this.cookieName(request)))) {
      response
        .writeHead(401, headers())
        .end(renderMessage("Not logged in", "open the link `openwork workers dashboard` prints"));
      return;
    }
    const worker = /^\/workers\/([^/]+)(?:\/(logs|restart|stop|start|open))?$/.exec(url.pathname);
    if (url.pathname === "/" && method === "GET") {
      const nonce = randomBytes(16).toString("base64");
      const at = new Date().toISOString();
      response
        .writeHead(200, headers(nonce))
        .end(renderFleetPage(this.host.rows(), { ...this.host.context(), at }, nonce));
      return;
    }
    if (url.pathname === "/events" && method === "GET") return this.events(request, response);
    if (worker && method === "GET" && worker[2] === undefined) {
      const name = decodeURIComponent(worker[1] as string);
      const row = this.host.rows().find((w) => w.name === name);
      const logs = row ? await this.host.logs(name, LOG_LINES) : undefined;
      if (!row || !logs) return this.notFound(response);
      const nonce = randomBytes(16).toString("base64");
      response.writeHead(200, headers(nonce)).end(renderWorkerPage(row, logs.lines, logs.error, nonce));
      return;
    }
    if (worker && method === "GET" && worker[2] === "logs") {
      const logs = await this.host.logs(decodeURIComponent(worker[1] as string), LOG_LINES);
      if (!logs) return this.notFound(response);
      response
        .writeHead(logs.error ? 404 : 200, {
          "content-type": "text/plain; charset=utf-8",
          "cache-control": "no-store",
          "x-content-type-options": "nosniff",
        })
        .end(logs.error ? `${logs.error}\n` : logs.lines.map((line) => `${line}\n`).join(""));
      return;
    }
    if (worker && method === "POST" && worker[2] === "open") {
      const name = decodeURIComponent(worker[1] as string);
      const link = await this.host.open(name);
      if (!link) return this.notFound(response);
      if (!link.ok) {
        response.writeHead(409, headers()).end(renderMessage("Not now", link.message));
        return;
      }
      response.writeHead(200, headers()).end(renderOpenPage(name, link.url, link.expiresAt));
      return;
    }
    if (worker && method === "POST" && DASHBOARD_ACTIONS.includes(worker[2] as DashboardAction)) {
      const done = await this.host.act(decodeURIComponent(worker[1] as string), worker[2] as DashboardAction);
      if (!done) return this.notFound(response);
      if ((request.headers.accept ?? "").includes("application/json")) {
        response
          .writeHead(done.ok ? 202 : 409, { "content-type": "application/json" })
          .end(`${JSON.stringify(done)}\n`);
        return;
      }
      // Without JavaScript: back to the table (POST-redirect-GET), or why nothing was begun.
      if (!done.ok) {
        response
          .writeHead(409, headers())
          .end(
            renderMessage("Not now", done.message).replace("</p>", ' <a href="/">Back to the fleet</a></p>'),
          );
        return;
      }
      response.writeHead(303, { location: "/", "cache-control": "no-store" }).end();
      return;
    }
    this.notFound(response);
  }

  private notFound(response: ServerResponse): void {
    response.writeHead(404, headers()).end(renderMessage("Not found", "no such page or worker"));
  }

  /** SSE: a `fleet` event with the rows (and their HTML) now, then at every heartbeat interval. */
  private events(request: IncomingMessage, response: ServerResponse): void {
    response.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    response.write("retry: 2000\n\n");
    const send = () => {
      const workers = this.host.rows();
      const data = JSON.stringify({ at: new Date().toISOString(), workers, html: renderRows(workers) });
      response.write(`event: fleet\ndata: ${data}\n\n`);
    };
    send();
    const timer = setInterval(send, Math.max(250, this.host.heartbeatIntervalMs()));
    request.on("close", () => clearInterval(timer));
  }
}
