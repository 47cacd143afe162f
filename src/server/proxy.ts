import type http from "node:http";
import type { Duplex } from "node:stream";
import { nodeHttp } from "../net/http.js";
import { within } from "../retry/poll.js";
import { isSessionCookie, withoutCookie } from "./web-sessions.js";

/** Where proxied requests go. Replaced atomically on an upgrade; the old one drains. */
export interface Upstream {
  id: string;
  port: number;
  authorization: string;
  /** requests in flight on this upstream, and which of them are long-lived streams */
  inflight: Set<http.ServerResponse>;
  streams: Set<http.ServerResponse>;
  /** upgraded connections (WebSockets, e.g. the engine's PTY sessions): closed when the upstream is retired */
  sockets: Set<Duplex>;
}

export function createUpstream(id: string, port: number, authorization: string): Upstream {
  return { id, port, authorization, inflight: new Set(), streams: new Set(), sockets: new Set() };
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and the client's own credentials never cross the proxy.
const DROP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "authorization",
  "host",
  "x-openwork-host-token",
]);

/** The web UI's session cookie is ours: the engine never sees it (other cookies pass). */
function stripSessionCookie(headers: http.OutgoingHttpHeaders): void {
  const cookie = headers.cookie;
  if (typeof cookie !== "string") return;
  const rest = withoutCookie(cookie, isSessionCookie);
  if (rest === undefined) delete headers.cookie;
  else headers.cookie = rest;
}

export interface ProxyOptions {
  upstream: Upstream;
  /** path and query on the engine (the `/opencode` prefix removed) */
  target: string;
  workspace: string;
  requestId: string;
  onError: (status: number, code: "engine_unavailable", message: string) => void;
  /** the engine answered with this status (the answer is being relayed); once per request */
  onAnswer?: ((status: number) => void) | undefined;
  /**
   * For requests without a body: called when the engine refused the connection
   * (it never saw the request, so resending is safe), to wait for a healthy
   * engine — the same one restarted, or the new one after a switch.
   */
  retry?: (() => Promise<Upstream | undefined>) | undefined;
}

/**
 * Stream one request to the engine and its answer back, server-sent events
 * included (no buffering, no timeout on the body). The engine's basic auth is
 * added here; the client's Authorization header is dropped.
 */
export function proxyRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  options: ProxyOptions,
): void {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (!DROP.has(name) && value !== undefined) headers[name] = value;
  }
  stripSessionCookie(headers);
  headers["x-request-id"] = options.requestId;
  // The engine is not started inside the workspace: tell it which directory a request is about,
  // unless the client said so itself.
  const hasDirectory = new URL(options.target, "http://x").searchParams.has("directory");
  if (!hasDirectory && headers["x-opencode-directory"] === undefined)
    headers["x-opencode-directory"] = options.workspace;

  let current: http.ClientRequest | undefined;
  res.on("close", () => {
    if (!res.writableFinished) current?.destroy();
  });
  req.on("aborted", () => current?.destroy());

  const send = (upstream: Upstream, retry: ProxyOptions["retry"]): void => {
    upstream.inflight.add(res);
    const done = () => {
      upstream.inflight.delete(res);
      upstream.streams.delete(res);
    };
    res.once("close", done);
    const outgoing = nodeHttp.request({
      host: "127.0.0.1",
      port: upstream.port,
      method: req.method,
      path: options.target,
      headers: { ...headers, host: `127.0.0.1:${upstream.port}`, authorization: upstream.authorization },
      agent: false,
    });
    current = outgoing;
    outgoing.on("response", (incoming) => {
      const type = String(incoming.headers["content-type"] ?? "");
      if (type.startsWith("text/event-stream")) upstream.streams.add(res);
      const out: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(incoming.headers)) {
        if (!DROP.has(name) && name !== "www-authenticate" && value !== undefined) out[name] = value;
      }
      out["x-request-id"] = options.requestId;
      options.onAnswer?.(incoming.statusCode ?? 502);
      res.writeHead(incoming.statusCode ?? 502, incoming.statusMessage, out);
      res.flushHeaders();
      incoming.pipe(res);
      incoming.on("error", () => res.destroy());
    });
    outgoing.on("error", (error) => {
      const code = (error as { code?: string }).code;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (code === "ECONNREFUSED" && retry && !res.destroyed) {
        done();
        res.removeListener("close", done);
        void retry().then((next) => {
          if (next) send(next, undefined);
          else
            options.onError(
              503,
              "engine_unavailable",
              "the engine is restarting and was not healthy in time",
            );
        });
        return;
      }
      options.onError(502, "engine_unavailable", `the engine did not answer: ${code ?? error.message}`);
    });
    if (retry) outgoing.end();
    else req.pipe(outgoing);
  };
  send(options.upstream, options.retry);
}

/**
 * Let an upstream that no longer receives new requests finish what it has:
 * ordinary requests run to completion (up to `deadlineMs`), then long-lived
 * streams are closed (clients of an event stream reconnect, now to the new engine).
 */
export async function drain(
  upstream: Upstream,
  deadlineMs: number,
): Promise<{ finished: number; closedStreams: number }> {
  const start = upstream.inflight.size - upstream.streams.size;
  await within(() => upstream.inflight.size <= upstream.streams.size, {
    what: `upstream ${upstream.id} to drain`,
    intervalMs: 25,
    deadlineMs,
  });
  const closedStreams = upstream.streams.size;
  for (const res of upstream.streams) res.end();
  for (const res of upstream.inflight) res.destroy();
  const closedSockets = upstream.sockets.size;
  for (const socket of upstream.sockets) socket.destroy();
  return { finished: start, closedStreams: closedStreams + closedSockets };
}

function rawHead(statusLine: string, rawHeaders: string[], skip: Set<string> = new Set()): string {
  let head = `${statusLine}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (!skip.has(name.toLowerCase())) head += `${name}: ${rawHeaders[i + 1]}\r\n`;
  }
  return `${head}\r\n`;
}

/**
 * Proxy an HTTP upgrade (a WebSocket) to the engine: the handshake is
 * forwarded with the engine's credentials instead of the client's, then bytes
 * flow both ways until either side closes.
 */
export function proxyUpgrade(
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  options: {
    upstream: Upstream;
    target: string;
    workspace: string;
    requestId: string;
    /** the status the client was answered with: 101, the engine's refusal, or 502 */
    onAnswer?: ((status: number) => void) | undefined;
  },
): void {
  const { upstream } = options;
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (
      name !== "authorization" &&
      name !== "x-openwork-host-token" &&
      name !== "host" &&
      value !== undefined
    )
      headers[name] = value;
  }
  const hasDirectory = new URL(options.target, "http://x").searchParams.has("directory");
  if (!hasDirectory && headers["x-opencode-directory"] === undefined)
    headers["x-opencode-directory"] = options.workspace;
  stripSessionCookie(headers);
  headers.host = `127.0.0.1:${upstream.port}`;
  headers.authorization = upstream.authorization;
  headers["x-request-id"] = options.requestId;
  const outgoing = nodeHttp.request({
    host: "127.0.0.1",
    port: upstream.port,
    method: req.method,
    path: options.target,
    headers,
    agent: false,
  });
  socket.on("error", () => outgoing.destroy());
  outgoing.on("upgrade", (res, engineSocket, engineHead) => {
    options.onAnswer?.(res.statusCode ?? 101);
    socket.write(rawHead(`HTTP/1.1 ${res.statusCode} ${res.statusMessage}`, res.rawHeaders));
    if (engineHead.length > 0) socket.write(engineHead);
    if (head.length > 0) engineSocket.write(head);
    upstream.sockets.add(socket);
    const close = () => {
      upstream.sockets.delete(socket);
      socket.destroy();
      engineSocket.destroy();
    };
    engineSocket.on("error", close);
    socket.on("error", close);
    engineSocket.on("close", close);
    socket.on("close", close);
    engineSocket.pipe(socket).pipe(engineSocket);
  });
  outgoing.on("response", (res) => {
    // the engine declined the upgrade: relay its answer and close
    options.onAnswer?.(res.statusCode ?? 502);
    socket.write(
      rawHead(
        `HTTP/1.1 ${res.statusCode} ${res.statusMessage}`,
        res.rawHeaders,
        new Set(["www-authenticate", "connection", "transfer-encoding"]),
      ).replace(/\r\n\r\n$/, "\r\nconnection: close\r\n\r\n"),
    );
    res.pipe(socket);
  });
  outgoing.on("error", () => {
    if (socket.writable) {
      options.onAnswer?.(502);
      socket.end("HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
    }
  });
  outgoing.end();
}
