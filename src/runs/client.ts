import { request } from "undici";
import { errorMessage } from "../errors/errors.js";

/** The server's envelope (DESIGN.md §2). */
export type Envelope<T> =
  | { ok: true; data: T; meta?: { requestId?: string } }
  | { ok: false; error: { code: string; message: string; requestId?: string } };

export interface ServerCall<T> {
  status: number;
  body: Envelope<T> | undefined;
}

/** A small client of the runtime server's /system API, with a per-request timeout. */
export class RuntimeClient {
  constructor(
    readonly baseUrl: string,
    private readonly tokens: { client?: string; host?: string } = {},
  ) {}

  async call<T>(
    method: "GET" | "POST",
    path: string,
    options: { auth?: "client" | "host" | "none"; body?: unknown; timeoutMs?: number } = {},
  ): Promise<ServerCall<T>> {
    const headers: Record<string, string> = {};
    const auth = options.auth ?? "client";
    if (auth === "client" && this.tokens.client) headers.authorization = `Bearer ${this.tokens.client}`;
    if (auth === "host" && this.tokens.host) headers["x-openwork-host-token"] = this.tokens.host;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const timeout = options.timeoutMs ?? 3000;
    const response = await request(new URL(path, this.baseUrl), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      headersTimeout: timeout,
      bodyTimeout: timeout,
      signal: AbortSignal.timeout(timeout + 500),
    });
    const text = await response.body.text();
    let body: Envelope<T> | undefined;
    try {
      body = JSON.parse(text) as Envelope<T>;
    } catch {
      body = undefined;
    }
    return { status: response.statusCode, body };
  }

  async data<T>(
    method: "GET" | "POST",
    path: string,
    options: Parameters<RuntimeClient["call"]>[2] = {},
  ): Promise<T> {
    const result = await this.call<T>(method, path, options);
    if (result.body?.ok) return result.body.data;
    const reason =
      result.body && !result.body.ok
        ? `${result.body.error.code}: ${result.body.error.message}`
        : `HTTP ${result.status}`;
    throw new Error(`${method} ${path} failed: ${reason}`);
  }

  /** Is the server answering its health check? Never throws. */
  async healthy(timeoutMs = 2000): Promise<{ ok: boolean; reason?: string }> {
    try {
      const result = await this.call<unknown>("GET", "/system/health", { auth: "none", timeoutMs });
      return result.status === 200 && result.body?.ok
        ? { ok: true }
        : { ok: false, reason: `HTTP ${result.status}` };
    } catch (error) {
      return { ok: false, reason: errorMessage(error) };
    }
  }
}
