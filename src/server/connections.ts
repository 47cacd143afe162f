import type http from "node:http";
import type { Socket } from "node:net";

/**
 * A cap on connections that have not authenticated: each new connection
 * counts until a request on it presents a valid token, and a connection past
 * the cap is closed at once. Nobody can hold the server's file descriptors
 * open without a token. The mark lives on the socket under a registered
 * symbol, so that every server generation in this process (a new bundle after
 * an upgrade) marks the same sockets the first generation counts.
 */
const AUTHENTICATED = Symbol.for("openwork.server.socket-authenticated");

export const UNAUTHENTICATED_CAP = 256;

export function markAuthenticated(socket: Socket): void {
  (socket as unknown as Record<symbol, boolean>)[AUTHENTICATED] = true;
}

export function isAuthenticated(socket: Socket): boolean {
  return (socket as unknown as Record<symbol, boolean>)[AUTHENTICATED] === true;
}

/**
 * Count the server's connections. When `cap` of them have not authenticated,
 * a new one makes room by closing the oldest of those: the number of file
 * descriptors anyone can hold without a token is bounded, and a client that
 * arrives later still gets in (it closes nobody who has shown a token).
 */
export function capUnauthenticated(server: http.Server, cap = UNAUTHENTICATED_CAP): void {
  // Insertion order is age order.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    let unauthenticated = 0;
    let oldest: Socket | undefined;
    for (const other of sockets) {
      if (isAuthenticated(other)) continue;
      unauthenticated++;
      oldest ??= other;
    }
    if (unauthenticated >= cap && oldest) {
      sockets.delete(oldest);
      oldest.destroy();
    }
    sockets.add(socket);
    // Node's headers timeout starts with the first byte: a connection that sends nothing is closed here.
    const silent = setTimeout(() => {
      if (socket.bytesRead === 0 && !isAuthenticated(socket)) socket.destroy();
    }, SILENT_CONNECTION_MS);
    silent.unref();
    socket.once("close", () => {
      clearTimeout(silent);
      sockets.delete(socket);
    });
  });
}

/** How long a connection may stay open without sending a byte (the headers timeout, for requests that started). */
export const SILENT_CONNECTION_MS = 10_000;

/**
 * The server's own timeouts. Headers must arrive within 10 s and a whole
 * request (headers and body) within 2 minutes; an idle keep-alive connection
 * is closed after 5 s. None of these touches a response that is still being
 * written, so event streams and long answers are not cut.
 */
export function applyTimeouts(server: http.Server): void {
  server.headersTimeout = 10_000;
  server.requestTimeout = 120_000;
  server.keepAliveTimeout = 5_000;
}
