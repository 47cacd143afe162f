import { randomBytes, timingSafeEqual } from "node:crypto";
import type { z } from "zod";
import {
  type ApiErrorCode,
  type EndpointSpec,
  endpoints,
  errorEnvelopeSchema,
  healthProof,
  isApiErrorCode,
  type LoginCode,
  type MintedToken,
  okEnvelopeSchema,
  pathOf,
  type RuntimeReady,
  type RuntimeSummary,
  type RuntimeVersions,
  type ServerHealth,
  tokenDigest,
  type UpgradeOperation,
  type UpgradeRequest,
} from "../contract/api.js";
import { HOST_SIGNATURE_HEADER, hostKeyOf, signHostRequest } from "../contract/host-auth.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { httpRequest } from "../net/http.js";

/**
 * The server answered with an error envelope. `apiCode` is one of the
 * contract's codes ("unknown" for a code this openwork does not know; the
 * message then names it).
 */
export class ApiCallError extends OpenworkError {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly apiCode: ApiErrorCode | "unknown",
    readonly apiMessage: string,
    readonly operationId: string | undefined,
    hint?: string,
  ) {
    super(`${method} ${path} answered ${status} ${apiCode}: ${apiMessage}`, { code: apiCode, hint });
    this.name = "ApiCallError";
  }
}

export interface ClientTokens {
  client?: string | undefined;
  host?: string | undefined;
}

interface CallOptions {
  params?: Record<string, string>;
  query?: Record<string, string> | undefined;
  body?: unknown;
  timeoutMs?: number;
}

/**
 * A typed client of the runtime server's API (src/contract/api.ts): each
 * method calls one endpoint with the token its auth level needs and parses
 * the answer with the endpoint's schema, so callers get contract types and a
 * server that answers something else is reported as such, never guessed at.
 */
export class RuntimeClient {
  constructor(
    readonly baseUrl: string,
    private readonly tokens: ClientTokens = {},
  ) {}

  health(timeoutMs = 2000, challenge?: string): Promise<ServerHealth> {
    return this.call(endpoints.health, 200, endpoints.health.responses[200].data, {
      timeoutMs,
      query: challenge === undefined ? undefined : { challenge },
    });
  }

  /**
   * Is the server that answers the one holding our host token? It proves it
   * by answering a fresh challenge (healthProof); the token is never sent.
   * Needs the host token; never throws.
   */
  async identify(
    timeoutMs = 2000,
  ): Promise<{ answers: false; reason: string } | { answers: true; ours: boolean }> {
    const hostToken = this.tokens.host;
    if (!hostToken) throw new Error("identify: the host token is needed to check the server's proof");
    const challenge = randomBytes(18).toString("base64url");
    let health: ServerHealth;
    try {
      health = await this.health(timeoutMs, challenge);
    } catch (error) {
      return { answers: false, reason: errorMessage(error) };
    }
    const hostKey = hostKeyOf(hostToken);
    if (!hostKey) return { answers: true, ours: false };
    const expected = Buffer.from(healthProof(Buffer.from(hostKey, "hex"), challenge), "hex");
    const given = Buffer.from(health.proof ?? "", "hex");
    return { answers: true, ours: given.length === expected.length && timingSafeEqual(given, expected) };
  }

  /** Is the server answering its health check? Never throws. */
  async healthy(timeoutMs = 2000): Promise<{ ok: true } | { ok: false; reason: string }> {
    try {
      await this.health(timeoutMs);
      return { ok: true };
    } catch (error) {
      return { ok: false, reason: errorMessage(error) };
    }
  }

  /**
   * Wait up to `waitMs` for the runtime to be ready (a long-poll): the answer, or undefined when
   * it is still starting. A failed start is an ApiCallError with apiCode start_failed.
   */
  async ready(waitMs: number): Promise<RuntimeReady | undefined> {
    try {
      return await this.call(endpoints.ready, 200, endpoints.ready.responses[200].data, {
        query: { waitMs: String(waitMs) },
        timeoutMs: waitMs + 5000,
      });
    } catch (error) {
      if (error instanceof ApiCallError && error.apiCode === "runtime_starting") return undefined;
      throw error;
    }
  }

  summary(timeoutMs?: number): Promise<RuntimeSummary> {
    return this.call(endpoints.summary, 200, endpoints.summary.responses[200].data, { timeoutMs });
  }

  versions(timeoutMs?: number): Promise<RuntimeVersions> {
    return this.call(endpoints.versions, 200, endpoints.versions.responses[200].data, { timeoutMs });
  }

  /** Start an upgrade; a 409 is an ApiCallError whose apiCode says which (upgrade_in_progress, runtime_unhealthy). */
  upgrade(body: UpgradeRequest): Promise<UpgradeOperation> {
    return this.call(endpoints.upgrade, 202, endpoints.upgrade.responses[202].data, {
      body,
      timeoutMs: 30_000,
    });
  }

  operation(operationId: string): Promise<UpgradeOperation> {
    return this.call(endpoints.operation, 200, endpoints.operation.responses[200].data, {
      params: { operationId },
    });
  }

  mintOwnerToken(label?: string): Promise<MintedToken> {
    return this.call(endpoints.mintToken, 201, endpoints.mintToken.responses[201].data, {
      body: label === undefined ? {} : { label },
    });
  }

  /** A one-time login code for the engine's web UI (docs/web-ui.md). */
  loginCode(): Promise<LoginCode> {
    return this.call(endpoints.loginCode, 201, endpoints.loginCode.responses[201].data, {});
  }

  /** A request through the proxy (/opencode/…): the engine's own answer, not an envelope. */
  async engine(
    method: "GET" | "POST",
    path: string,
    options: { body?: unknown; timeoutMs?: number } = {},
  ): Promise<{ status: number; body: unknown }> {
    const { status, text } = await this.send(
      method,
      `/opencode${path}`,
      "client",
      options.body,
      options.timeoutMs,
    );
    return { status, body: parseJson(text) };
  }

  private async call<T extends z.ZodType>(
    endpoint: EndpointSpec,
    status: number,
    data: T,
    options: CallOptions = {},
  ): Promise<z.output<T>> {
    const query = options.query ? `?${new URLSearchParams(options.query).toString()}` : "";
    const path = `${pathOf(endpoint, options.params)}${query}`;
    const method = endpoint.method === "ALL" ? "GET" : endpoint.method;
    const answer = await this.send(method, path, endpoint.auth, options.body, options.timeoutMs);
    const json = parseJson(answer.text);
    if (answer.status === status) {
      const parsed = okEnvelopeSchema(data).safeParse(json);
      if (parsed.success) return (parsed.data as { data: unknown }).data as z.output<T>;
      const issue = parsed.error.issues[0];
      throw new OpenworkError(
        `${method} ${path} answered data this openwork does not understand (${issue?.path.filter((part, index) => index > 0 || part !== "data").join(".") || "body"}: ${issue?.message})`,
        {
          code: "protocol_mismatch",
          hint: "the runtime's server and this openwork are different releases; `openwork runtime versions` shows the server's",
        },
      );
    }
    const failure = errorEnvelopeSchema.safeParse(json);
    if (!failure.success) {
      throw new OpenworkError(
        `${method} ${path} answered HTTP ${answer.status}: ${answer.text.slice(0, 200)}`,
        {
          code: "protocol_mismatch",
        },
      );
    }
    const error = failure.data.error;
    const known = isApiErrorCode(error.code);
    throw new ApiCallError(
      method,
      path,
      answer.status,
      known ? (error.code as ApiErrorCode) : "unknown",
      known ? error.message : `${error.code}: ${error.message}`,
      error.operationId,
      error.hint,
    );
  }

  private async send(
    method: string,
    path: string,
    auth: "none" | "client" | "host",
    body: unknown,
    timeoutMs = 3000,
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = {};
    if (auth === "client" && this.tokens.client) headers.authorization = `Bearer ${this.tokens.client}`;
    // The host token itself never leaves this process: each host request is signed (src/contract/host-auth.ts).
    const url = new URL(path, this.baseUrl);
    if (auth === "host" && this.tokens.host)
      headers[HOST_SIGNATURE_HEADER] = signHostRequest(
        this.tokens.host,
        method,
        `${url.pathname}${url.search}`,
      );
    if (body !== undefined) headers["content-type"] = "application/json";
    // node:http, not undici: loading undici would cost every command that asks a runtime anything ~130 ms of
    // CPU, and `start` pays it beside the booting engine (src/net/http.ts).
    return httpRequest(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      timeoutMs,
    });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
