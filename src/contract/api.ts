import { createHash, createHmac } from "node:crypto";
import { z } from "zod";
import { SIDECAR_NAMES, type SidecarName } from "../sidecars/names.js";
import { runtimeIdSchema } from "./runtime.js";

/**
 * The runtime server's HTTP API (DESIGN.md §2) as data: every endpoint's
 * method, path, auth, body and answers, with zod schemas for each. The server
 * builds its route table and its OpenAPI document from these; the CLI's
 * RuntimeClient parses every answer with them; the tests use them too.
 */

// ---- envelopes and errors ----------------------------------------------------------------

/** Every error code the server answers with. */
export const API_ERROR_CODES = [
  // any endpoint
  "invalid_url",
  "not_found",
  "method_not_allowed",
  "unauthorized",
  "forbidden",
  "invalid_json",
  "invalid_request",
  "body_too_large",
  "request_timeout",
  "internal",
  // the proxy
  "engine_unavailable",
  // the web UI (docs/web-ui.md)
  "misdirected_request",
  "origin_mismatch",
  // components
  "engine_unhealthy",
  "router_unhealthy",
  "router_disabled",
  // readiness
  "runtime_starting",
  "start_failed",
  // upgrades
  "upgrade_in_progress",
  "runtime_unhealthy",
  "runtime_not_found",
  "runtime_invalid",
  "manifest_invalid",
  "operation_not_found",
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export function isApiErrorCode(value: string): value is ApiErrorCode {
  return (API_ERROR_CODES as readonly string[]).includes(value);
}

export const apiErrorSchema = z
  .object({
    code: z.string(),
    message: z.string(),
    requestId: z.string(),
    hint: z.string().optional(),
    /** 409 upgrade_in_progress: the operation that holds the upgrade */
    operationId: z.string().optional(),
    /** 503 from a component's health: what the probe saw */
    data: z.unknown().optional(),
  })
  .strict();
export type ApiErrorBody = z.output<typeof apiErrorSchema> & { code: ApiErrorCode };

export const errorEnvelopeSchema = z.object({ ok: z.literal(false), error: apiErrorSchema }).strict();

export function okEnvelopeSchema<T extends z.ZodType>(data: T) {
  return z.object({ ok: z.literal(true), data, meta: z.object({ requestId: z.string() }).strict() }).strict();
}

// ---- shared pieces ----------------------------------------------------------------------------

import { UPGRADABLE } from "./upgradable.js";

export { UPGRADABLE, type Upgradable } from "./upgradable.js";

const sidecarVersions = z.partialRecord(z.enum(SIDECAR_NAMES), z.string());
export type SidecarVersions = Partial<Record<SidecarName, string>>;

export const healthSchema = z
  .object({
    status: z.literal("ok"),
    version: z.string(),
    /** present when asked with ?challenge=: proves the server holds this run's host token (healthProof) */
    proof: z.string().optional(),
  })
  .strict();
export type ServerHealth = z.output<typeof healthSchema>;

/** The longest a client may hold GET /system/ready open (?waitMs=). */
export const READY_WAIT_MAX_MS = 30_000;

export const readySchema = z
  .object({
    ready: z.literal(true),
    /** when the runtime became ready */
    at: z.string(),
    /** when this server saw the engine healthy first; null when the entrypoint did, before the server ran */
    engineHealthyAt: z.string().nullable(),
  })
  .strict();
export type RuntimeReady = z.output<typeof readySchema>;

/** A token as the server keeps it (fixed length: compared in constant time; the key of healthProof). */
export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** A challenge a client may send to /system/health (?challenge=…). */
export const HEALTH_CHALLENGE = /^[A-Za-z0-9_-]{16,128}$/;

/**
 * The proof a server gives for a challenge: HMAC-SHA256, keyed with the
 * sha256 of the host token, over "openwork-health:" and the challenge. A
 * client that knows the host token checks it before it sends the server any
 * token: another process answering on the port (a stale runtime, another
 * run) cannot produce it, and the token itself never crosses the wire.
 */
export function healthProof(hostTokenDigest: Buffer, challenge: string): string {
  return createHmac("sha256", hostTokenDigest).update(`openwork-health:${challenge}`).digest("hex");
}

/**
 * Versions. `active` is what the running processes report about themselves
 * (the engine's own health answer; null until it has answered), never what a
 * binary claimed at `--version` before it ran; `pinned` is runtime.json of the
 * active runtime; `target` the runtime an upgrade in progress moves to.
 */
export const versionsSchema = z
  .object({
    active: z
      .object({
        opencode: z.string().nullable(),
        "opencode-router": z.string().nullable(),
        "openwork-server": z.string(),
        node: z.string(),
      })
      .strict(),
    pinned: z.object({ runtimeId: runtimeIdSchema, versions: sidecarVersions }).strict(),
    target: z
      .object({ runtimeId: runtimeIdSchema, versions: sidecarVersions, operationId: z.string() })
      .strict()
      .nullable(),
  })
  .strict();
export type RuntimeVersions = z.output<typeof versionsSchema>;

// ---- upgrade operations -----------------------------------------------------------------------

export const UPGRADE_STEPS = [
  /** manifest upgrades only: copy and hash the manifest's files into a content-addressed runtime */
  "stage",
  "verify",
  "start-engine",
  "gate-engine",
  "switch-proxy",
  "restart-router",
  "gate-router",
  "load-server",
  "swap-server",
  "retire-engine",
  "record",
] as const;
export type UpgradeStep = (typeof UPGRADE_STEPS)[number];
export const ROLLBACK_STEPS = [
  "rollback:switch-proxy",
  "rollback:restart-router",
  "rollback:stop-new-engine",
] as const;
export type RollbackStep = (typeof ROLLBACK_STEPS)[number];

export const OPERATION_STATES = ["running", "succeeded", "failed", "interrupted"] as const;
export type OperationState = (typeof OPERATION_STATES)[number];
export function isFinished(state: OperationState): boolean {
  return state !== "running";
}

export const stepRecordSchema = z
  .object({
    name: z.enum([...UPGRADE_STEPS, ...ROLLBACK_STEPS]),
    state: z.enum(["running", "done", "failed"]),
    startedAt: z.string(),
    finishedAt: z.string().nullable(),
    detail: z.string().nullable(),
  })
  .strict();
export type StepRecord = z.output<typeof stepRecordSchema>;

export const operationSchema = z
  .object({
    operationId: z.string(),
    state: z.enum(OPERATION_STATES),
    request: z
      .object({
        runtimeId: z.string().optional(),
        manifest: z.string().optional(),
        components: z.array(z.enum(UPGRADABLE)).optional(),
      })
      .strict(),
    from: z.object({ runtimeId: runtimeIdSchema, versions: sidecarVersions }).strict(),
    to: z.object({ runtimeId: runtimeIdSchema, versions: sidecarVersions }).strict(),
    components: z.array(z.enum(UPGRADABLE)),
    step: z.enum(UPGRADE_STEPS).nullable(),
    steps: z.array(stepRecordSchema),
    error: z
      .object({
        /** the step that failed ("interrupted" operations may not know it) */
        step: z.enum(UPGRADE_STEPS).nullable(),
        /** the failing error's own code (verify_failed, health_timeout, wrong_version, usage, …) */
        code: z.string(),
        message: z.string(),
        hint: z.string().optional(),
        /** the failing component's last output */
        recentOutput: z.array(z.string()).optional(),
      })
      .strict()
      .nullable(),
    rolledBack: z.boolean().nullable(),
    notes: z.array(z.string()),
    serverPid: z.number().int(),
    createdAt: z.string(),
    updatedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .strict();
export type UpgradeOperation = z.output<typeof operationSchema>;

export const upgradeRequestSchema = z
  .object({
    /** a runtime staged under the persisted directory */
    runtimeId: runtimeIdSchema.optional(),
    /** a Manifest v1 file the server can read (docs/manifest.md); its files are in `dir` */
    manifest: z.string().min(1).optional(),
    /** the directory holding the manifest's files (default: the manifest's own directory) */
    dir: z.string().min(1).optional(),
    components: z.array(z.enum(UPGRADABLE)).min(1).optional(),
  })
  .strict()
  .refine((body) => (body.runtimeId === undefined) !== (body.manifest === undefined), {
    message: "give exactly one of runtimeId (a staged runtime) or manifest (a manifest file path)",
  })
  .refine((body) => body.dir === undefined || body.manifest !== undefined, {
    message: "dir goes with manifest",
  });
export type UpgradeRequest = z.output<typeof upgradeRequestSchema>;

// ---- the summary ------------------------------------------------------------------------------

export const COMPONENT_STATUSES = [
  "starting",
  "healthy",
  "unhealthy",
  "restarting",
  "cooldown",
  "stopped",
] as const;
export type ComponentStatus = (typeof COMPONENT_STATUSES)[number];

export const COMPONENT_EVENTS = [
  "adopted",
  "started",
  "healthy",
  "exited",
  "hung",
  "restart-scheduled",
  "cooldown",
  "stopped",
  "start-failed",
] as const;

export const exitInfoSchema = z
  .object({
    code: z.number().int().nullable(),
    signal: z.string().nullable(),
    at: z.string(),
    /** false for adopted processes: nobody told us how they ended */
    statusKnown: z.boolean(),
  })
  .strict();
export type ExitInfo = z.output<typeof exitInfoSchema>;

export const componentSummarySchema = z
  .object({
    status: z.enum(COMPONENT_STATUSES),
    pid: z.number().int(),
    adopted: z.boolean(),
    startedAt: z.string(),
    url: z.string(),
    runtimeId: runtimeIdSchema,
    /** what the running process reported in its last healthy answer (null until it answered) */
    version: z.string().nullable(),
    pinnedVersion: z.string().nullable(),
    lastExit: exitInfoSchema.extend({ pid: z.number().int(), reason: z.string() }).strict().nullable(),
    lastProbe: z.object({ at: z.string(), ok: z.boolean(), detail: z.string() }).strict().nullable(),
    restarts: z
      .object({
        total: z.number().int(),
        inWindow: z.number().int(),
        budget: z.number().int(),
        windowMs: z.number().int(),
        cooldownUntil: z.string().nullable(),
      })
      .strict(),
    events: z.array(
      z.object({ at: z.string(), type: z.enum(COMPONENT_EVENTS), detail: z.string() }).strict(),
    ),
    log: z.object({ file: z.string(), rotations: z.number().int() }).strict(),
    recentOutput: z.array(z.string()),
  })
  .strict();
export type ComponentSummary = z.output<typeof componentSummarySchema>;

export const disabledComponentSchema = z.object({ status: z.literal("disabled") }).strict();

export const summarySchema = z
  .object({
    server: z
      .object({
        status: z.literal("healthy"),
        pid: z.number().int(),
        version: z.string(),
        node: z.string(),
        features: z.object({ reusePort: z.boolean(), execve: z.boolean() }).strict(),
        startedAt: z.string(),
        url: z.string(),
      })
      .strict(),
    runtime: z
      .object({
        runtimeId: runtimeIdSchema,
        target: z.string(),
        runtimeVersion: z.string(),
        /** the runtime the next start of this workspace runs (state/current-runtime) */
        nextStart: z.string(),
      })
      .strict(),
    workspace: z.string(),
    components: z
      .object({
        opencode: componentSummarySchema,
        "opencode-router": z.union([componentSummarySchema, disabledComponentSchema]),
      })
      .strict(),
    upgrade: z.object({ running: z.string().nullable(), last: operationSchema.nullable() }).strict(),
  })
  .strict();
export type RuntimeSummary = z.output<typeof summarySchema>;

export const componentHealthSchema = z
  .object({
    healthy: z.boolean(),
    version: z.string().nullable(),
    detail: z.string(),
    status: z.enum(COMPONENT_STATUSES),
    url: z.string(),
  })
  .strict();
export type ComponentHealth = z.output<typeof componentHealthSchema>;

// ---- tokens -----------------------------------------------------------------------------------

export const mintTokenRequestSchema = z.object({ label: z.string().max(200).optional() }).strict();
export type MintTokenRequest = z.output<typeof mintTokenRequestSchema>;

export const mintedTokenSchema = z
  .object({
    id: z.string(),
    token: z.string(),
    scope: z.literal("owner"),
    label: z.string().nullable(),
    createdAt: z.string(),
  })
  .strict();
export type MintedToken = z.output<typeof mintedTokenSchema>;

// ---- the web UI (docs/web-ui.md) ----------------------------------------------------------------

export const loginCodeSchema = z
  .object({
    /** single use, valid until expiresAt */
    code: z.string(),
    expiresAt: z.string(),
    /** the path and query to open on the server's published address: /login?code=… */
    path: z.string(),
  })
  .strict();
export type LoginCode = z.output<typeof loginCodeSchema>;

// ---- endpoints --------------------------------------------------------------------------------

export type Auth = "none" | "client" | "host";

export interface ResponseSpec {
  description: string;
  /** the `data` of the success envelope */
  data?: z.ZodType;
  /** not an envelope (the OpenAPI document, the metrics, the engine's own answers) */
  raw?: boolean;
  /**
   * a raw answer's media type, when the server makes it (the OpenAPI document
   * and the metrics); absent when it is whatever the engine answers
   */
  mediaType?: string;
}

/**
 * The Prometheus text exposition format, version 0.0.4 (what prom-client's
 * Registry answers with: the server sends its registry's contentType, and a
 * unit test holds the two equal).
 */
export const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

/** One endpoint as data: what the server routes and documents, and what the client calls and parses. */
export interface EndpointSpec {
  method: "GET" | "POST" | "ALL";
  /** `:name` marks a path parameter; a trailing `/*` matches the rest */
  path: string;
  auth: Auth;
  /**
   * Also accept HTTP basic auth (any username, the client or an owner token as
   * the password): opencode's own clients (`opencode attach`, the SDK) speak
   * only that. Never the host token, which stays bearer or signature only.
   */
  basicAuth?: boolean;
  /**
   * Authenticated by the web UI's session cookie (ow_session) instead of a token: the dispatcher
   * checks no token (auth is "none"); the route checks the cookie, the Host and the Origin.
   */
  sessionCookie?: boolean;
  summary: string;
  description?: string;
  body?: z.ZodType;
  responses: Record<number, ResponseSpec>;
  /** error codes particular to this endpoint (the generic ones apply to all) */
  errors?: readonly ApiErrorCode[];
}

export const endpoints = {
  health: {
    method: "GET",
    path: "/system/health",
    auth: "none",
    summary: "Liveness of the server itself; with ?challenge=, a proof that it holds the run's host token",
    responses: { 200: { description: "the server answers", data: healthSchema } },
  },
  ready: {
    method: "GET",
    path: "/system/ready",
    auth: "client",
    summary:
      "Readiness: the engine (and router) healthy since the server started; a long-poll with ?waitMs= (0-30000)",
    description:
      "The server may answer before the engine is healthy (it starts while the engine boots). This answers 200 as soon as the runtime is ready, or 503 runtime_starting once waitMs passed without it, or 503 start_failed when the engine never became healthy (the server then exits).",
    responses: {
      200: { description: "ready", data: readySchema },
      503: { description: "not ready within waitMs (runtime_starting), or the start failed (start_failed)" },
    },
    errors: ["runtime_starting", "start_failed", "invalid_request"],
  },
  openapi: {
    method: "GET",
    path: "/system/openapi.json",
    auth: "none",
    summary: "This API's OpenAPI document, generated from the contract",
    responses: {
      200: {
        description: "OpenAPI 3.1 document",
        raw: true,
        mediaType: "application/json; charset=utf-8",
      },
    },
  },
  metrics: {
    method: "GET",
    path: "/system/metrics",
    auth: "host",
    summary: "Prometheus metrics of the runtime server (text exposition format 0.0.4)",
    description:
      "Counters and histograms of this server process, kept across in-place server upgrades: openwork_server_component_restarts_total{component} (restarts by the supervisor; component opencode or opencode-router), openwork_server_health_probe_duration_seconds{component,outcome} (every health probe of a supervised component; outcome ok or fail), openwork_server_proxied_requests_total{target,code} (answers to authenticated /opencode/* requests and WebSocket handshakes, by exact HTTP status, the proxy's own 502/503 included; target opencode, or web for the web UI's cookie-authenticated requests), openwork_server_upgrade_duration_seconds{outcome} (finished upgrade operations: succeeded, rolled_back, or failed when the rollback itself did not complete), and the process metrics of prom-client, all prefixed openwork_server_.",
    responses: {
      200: { description: "Prometheus text exposition", raw: true, mediaType: PROMETHEUS_TEXT },
    },
  },
  summary: {
    method: "GET",
    path: "/system/runtime/summary",
    auth: "client",
    summary:
      "Every component's status, pid, url, version, last exit, restart counters, recent output; upgrade state",
    responses: { 200: { description: "the summary", data: summarySchema } },
  },
  versions: {
    method: "GET",
    path: "/system/runtime/versions",
    auth: "client",
    summary:
      "active (reported by the running processes), pinned (runtime.json) and target (an upgrade in progress) versions",
    responses: { 200: { description: "versions", data: versionsSchema } },
  },
  upgrade: {
    method: "POST",
    path: "/system/runtime/upgrade",
    auth: "host",
    summary:
      "Start a rolling, health-gated upgrade to a staged runtime (or a Manifest v1 the server can verify)",
    description:
      "Answers 202 with the operation; 409 upgrade_in_progress while another upgrade runs, 409 runtime_unhealthy while the engine is not healthy. Steps: stage (manifest upgrades), verify, start-engine, gate-engine, switch-proxy, restart-router, gate-router, load-server, swap-server, retire-engine, record. Any failed gate rolls back.",
    body: upgradeRequestSchema,
    responses: {
      202: { description: "the upgrade started", data: operationSchema },
      404: { description: "no such staged runtime" },
      409: { description: "another upgrade is running, or the runtime is not healthy" },
    },
    errors: [
      "upgrade_in_progress",
      "runtime_unhealthy",
      "runtime_not_found",
      "runtime_invalid",
      "manifest_invalid",
    ],
  },
  operation: {
    method: "GET",
    path: "/system/runtime/upgrade/:operationId",
    auth: "client",
    summary: "Progress and result of one upgrade operation",
    responses: {
      200: { description: "the operation", data: operationSchema },
      404: { description: "no such operation" },
    },
    errors: ["operation_not_found"],
  },
  engineHealth: {
    method: "GET",
    path: "/system/opencode/health",
    auth: "client",
    summary: "The engine's health, probed now",
    responses: {
      200: { description: "healthy", data: componentHealthSchema },
      503: { description: "not healthy (the error's data has the same fields)" },
    },
    errors: ["engine_unhealthy"],
  },
  routerHealth: {
    method: "GET",
    path: "/system/router/health",
    auth: "client",
    summary: "The router's health, probed now",
    responses: {
      200: { description: "healthy", data: componentHealthSchema },
      404: { description: "the router is not enabled" },
      503: { description: "not healthy (the error's data has the same fields)" },
    },
    errors: ["router_unhealthy", "router_disabled"],
  },
  mintToken: {
    method: "POST",
    path: "/tokens",
    auth: "host",
    summary: "Mint an owner token (client scope; kept hashed by the server)",
    body: mintTokenRequestSchema,
    responses: { 201: { description: "the new token (shown once)", data: mintedTokenSchema } },
  },
  proxy: {
    method: "ALL",
    path: "/opencode/*",
    auth: "client",
    basicAuth: true,
    summary:
      "Reverse proxy to the engine (streaming, server-sent events and WebSockets included); the engine's credentials are added server-side",
    responses: {
      200: { description: "the engine's answer, as is", raw: true },
      502: { description: "the engine did not answer" },
      503: { description: "the engine is restarting and was not healthy in time" },
    },
    errors: ["engine_unavailable"],
  },
  loginCode: {
    method: "POST",
    path: "/system/login-codes",
    auth: "host",
    summary: "Mint a one-time login code for the engine's web UI (single use, valid 60 s)",
    description:
      "Opening path (/login?code=…) on the server's address exchanges the code for a session cookie. The code is kept hashed and forgotten once used.",
    responses: { 201: { description: "the code (shown once)", data: loginCodeSchema } },
  },
  login: {
    method: "GET",
    path: "/login",
    auth: "none",
    summary:
      "Exchange a login code (?code=) for the web UI's session cookie (ow_session: HttpOnly, SameSite=Strict, client scope), then 303 to /",
    description:
      "A bad, expired or used code answers 401 with a plain HTML page. The Host header must be the address the server was started for (421 otherwise).",
    responses: {
      303: { description: "the cookie is set; redirects to / (the code leaves the address bar)", raw: true },
      401: {
        description: "bad, expired or used code (text/html)",
        raw: true,
        mediaType: "text/html; charset=utf-8",
      },
      421: { description: "the Host header is not this server's address" },
    },
    errors: ["misdirected_request"],
  },
  webUi: {
    method: "ALL",
    path: "/*",
    auth: "none",
    sessionCookie: true,
    summary:
      "The engine's web UI and the API calls, server-sent events and WebSockets it makes, for a browser with a valid session cookie (every path outside /system, /tokens, /opencode and /login)",
    description:
      "Proxied to the engine as is (no prefix), the cookie removed and the engine's credentials added. Without a valid ow_session cookie: 401 (a plain page for Accept: text/html). The Host must be the server's address (421); POST, PUT, PATCH and DELETE need an Origin equal to the server's own (403 origin_mismatch). Tokens are not accepted here.",
    responses: {
      200: { description: "the engine's answer, as is", raw: true },
      401: { description: "no valid session cookie" },
      403: { description: "a state-changing request from another origin" },
      421: { description: "the Host header is not this server's address" },
    },
    errors: ["misdirected_request", "origin_mismatch", "engine_unavailable"],
  },
} as const satisfies Record<string, EndpointSpec>;

export type EndpointName = keyof typeof endpoints;

/** The success data an endpoint answers with (for `status`). */
export type DataOf<E extends EndpointSpec, S extends keyof E["responses"]> = E["responses"][S] extends {
  data: infer D extends z.ZodType;
}
  ? z.output<D>
  : never;

/** A concrete path for an endpoint with parameters (`:operationId` → the value, URL-encoded). */
export function pathOf(endpoint: EndpointSpec, params: Record<string, string> = {}): string {
  return endpoint.path.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`${endpoint.path}: no value for :${name}`);
    return encodeURIComponent(value);
  });
}
