import { createRequire } from "node:module";

/**
 * node:http, loaded with require(). From Node 22 on, `import http from
 * "node:http"` builds the module's ESM namespace, which reads every export —
 * among them the lazy WebSocket, MessageEvent and CloseEvent that load the
 * whole fetch stack: ~60 ms of CPU (measured on the bundled Node 24: 0.15 s
 * against 0.08 s for a bare import), paid by every runtime server's boot
 * while its engine boots beside it on the same cores. require() reads none.
 */
export const nodeHttp: typeof import("node:http") = createRequire(import.meta.url)("node:http");

export interface HttpAnswer {
  status: number;
  text: string;
}

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** sent as is, with its content-length */
  body?: string;
  /** for the whole exchange: connecting, the answer's head and its body */
  timeoutMs: number;
  /** the most of the body kept (bytes); beyond it the answer is an error, or cut there with `truncate` */
  maxBytes?: number;
  truncate?: boolean;
}

/**
 * One bounded HTTP/1.1 exchange over node:http, no connection kept. Not
 * fetch: fetch refuses the WHATWG "bad ports" (6000, 6665-6669, 10080, …),
 * and a component on a kernel-chosen port may land on one of them. Not
 * undici: loading it costs a CLI ~130 ms of CPU (measured: `node -e
 * 'require("undici")'` 0.28 s of CPU against 0.11 s), on every command that
 * asks a runtime anything and, in `start`, beside the booting engine.
 */
export function httpRequest(url: string | URL, options: HttpRequestOptions): Promise<HttpAnswer> {
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    if (options.body !== undefined) headers["content-length"] = String(Buffer.byteLength(options.body));
    const req = nodeHttp.request(url, { method: options.method ?? "GET", headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let cut = false;
      res.on("data", (chunk: Buffer) => {
        if (cut) return;
        size += chunk.length;
        if (size <= maxBytes) chunks.push(chunk);
        else if (options.truncate) {
          chunks.push(chunk.subarray(0, chunk.length - (size - maxBytes)));
          cut = true;
        } else req.destroy(new Error(`the answer is larger than ${maxBytes} bytes`));
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("close", () => {
        clearTimeout(timer);
        if (!res.complete) reject(new Error("the connection closed before the answer was complete"));
      });
      res.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${options.timeoutMs} ms`);
      error.name = "TimeoutError";
      req.destroy(error);
    }, options.timeoutMs);
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(options.body);
  });
}

/**
 * A bounded GET whose answer is kept up to 64 KiB (a health probe reads a
 * few bytes; a larger body is not an error there).
 */
export function httpGet(
  url: string | URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<HttpAnswer> {
  return httpRequest(url, { headers, timeoutMs, maxBytes: 64 * 1024, truncate: true });
}

/** The exchange ran out of time (as opposed to a refused connection or a broken answer). */
export function isTimeoutError(error: unknown): boolean {
  return (error as { name?: string }).name === "TimeoutError";
}

/** A probe failure in one line: a timeout, or the connection error's code. */
export function describeGetError(error: unknown, timeoutMs: number): string {
  if (isTimeoutError(error)) return `no answer within ${timeoutMs} ms`;
  const code = (error as { code?: string }).code;
  return `connection failed: ${code ?? (error as Error).message ?? String(error)}`;
}
