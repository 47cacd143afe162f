import http from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import { z } from "zod";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { engineAuthorization, engineDefinition, routerDefinition } from "./components.js";
import { routerEnabled, type ServeEnv } from "./env.js";
import { HttpError, parseBody, readJsonBody, requestIdOf, sendError, sendOk } from "./http.js";
import { openApiDocument, type RouteSpec } from "./openapi.js";
import { adopt, reapStaleChildren, sleep, useChildLedger } from "./proc.js";
import { createUpstream, proxyRequest, proxyUpgrade, type Upstream } from "./proxy.js";
import { readRuntime, type StagedRuntime, sidecarPath } from "./runtime-files.js";
import { StateDir } from "./state.js";
import { defaultPolicy, Supervised, type SupervisionPolicy } from "./supervisor.js";
import { allows, TokenStore } from "./tokens.js";
import { UpgradeRunner, upgradeRequestSchema } from "./upgrade.js";
import { OperationStore } from "./upgrade-record.js";
import { nodeFeatures, SERVER_VERSION } from "./version.js";

interface Route extends RouteSpec {
  handle(ctx: RequestContext): Promise<void> | void;
}

interface RequestContext {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  requestId: string;
  params: Record<string, string>;
  url: URL;
}

const componentSummary = z
  .object({ status: z.string(), pid: z.number(), url: z.string(), version: z.string().nullable() })
  .loose();
const versionsData = z.object({
  active: z.record(z.string(), z.string().nullable()),
  pinned: z.object({ runtimeId: z.string(), versions: z.record(z.string(), z.string()) }),
  target: z
    .object({ runtimeId: z.string(), versions: z.record(z.string(), z.string()), operationId: z.string() })
    .nullable(),
});
const operationData = z
  .object({
    operationId: z.string(),
    state: z.enum(["running", "succeeded", "failed", "interrupted"]),
    step: z.string().nullable(),
  })
  .loose();

export interface AppOptions {
  env: ServeEnv;
  log: Logger;
  server: http.Server;
  /** set when this module takes over from a previous server during an upgrade */
  handoff?: { operationId: string } | undefined;
}

/**
 * One generation of the runtime server: the components it supervises, the
 * proxy's upstream, and the request handler. A rolling upgrade of the server
 * builds the next generation from the new bundle and swaps handlers.
 */
/** A component's health, probed now: 200 with the probe's view, or 503 `<name>_unhealthy` with the same data. */
async function componentHealth(
  component: Supervised,
  name: "engine" | "router",
  res: http.ServerResponse,
  requestId: string,
): Promise<void> {
  const probe = await component.definition.probe(2000);
  const data = {
    healthy: probe.ok,
    version: probe.version ?? null,
    detail: probe.detail,
    status: component.status,
    url: component.definition.url,
  };
  if (probe.ok) sendOk(res, requestId, 200, data);
  else
    sendError(res, requestId, 503, `${name}_unhealthy`, `the ${name} is not healthy: ${probe.detail}`, {
      data,
    });
}

export class ServerApp {
  readonly state: StateDir;
  readonly operations: OperationStore;
  readonly tokens: TokenStore;
  readonly policy: SupervisionPolicy;
  readonly upgrades: UpgradeRunner;
  readonly startedAt = new Date().toISOString();
  /** set once a newer generation has taken over: this one only finishes what it had started */
  retired = false;
  runtime: StagedRuntime;
  upstream: Upstream;
  private readonly routes: Route[];

  private constructor(
    readonly env: ServeEnv,
    readonly log: Logger,
    readonly server: http.Server,
    public engine: Supervised,
    public router: Supervised | undefined,
  ) {
    this.state = new StateDir(env.OPENWORK_PERSIST);
    this.operations = new OperationStore(this.state);
    this.tokens = new TokenStore(env.OPENWORK_TOKEN, env.OPENWORK_HOST_TOKEN, this.state);
    this.policy = defaultPolicy(env.OPENWORK_HEALTH_DEADLINE_S * 1000);
    this.runtime = readRuntime(env.OPENWORK_PERSIST, env.OPENWORK_RUNTIME_ID);
    this.upstream = createUpstream(
      `${engine.definition.runtimeId}:${engine.definition.port}`,
      engine.definition.port,
      engineAuthorization(env),
    );
    this.upgrades = new UpgradeRunner(this);
    this.routes = this.buildRoutes();
  }

  /** Adopt the processes the environment names (started by the entrypoint, or by the previous server generation). */
  static async create(options: AppOptions): Promise<ServerApp> {
    const { env, log } = options;
    const state = new StateDir(env.OPENWORK_PERSIST);
    if (!options.handoff) {
      const reaped = reapStaleChildren(state.childrenFile);
      if (reaped.length > 0)
        log.warn({ processes: reaped }, "stopped processes a previous server had started and left behind");
    }
    useChildLedger(state.childrenFile);
    const policy = defaultPolicy(env.OPENWORK_HEALTH_DEADLINE_S * 1000);
    const engineRuntime = readRuntime(
      env.OPENWORK_PERSIST,
      env.OPENWORK_ENGINE_RUNTIME_ID ?? env.OPENWORK_RUNTIME_ID,
    );
    const engineBinary = sidecarPath(engineRuntime, "opencode");
    if (!engineBinary) {
      throw new OpenworkError(`runtime ${engineRuntime.json.runtimeId} has no opencode sidecar`, {
        code: "runtime_invalid",
      });
    }
    const engine = new Supervised(
      engineDefinition(env, {
        runtimeId: engineRuntime.json.runtimeId,
        binary: engineBinary,
        port: env.OPENWORK_ENGINE_PORT,
        pinnedVersion: engineRuntime.json.sidecars.opencode?.version,
      }),
      adopt(env.OPENWORK_ENGINE_PID),
      policy,
      log,
    );
    let router: Supervised | undefined;
    if (routerEnabled(env)) {
      const routerRuntime = readRuntime(
        env.OPENWORK_PERSIST,
        env.OPENWORK_ROUTER_RUNTIME_ID ?? env.OPENWORK_RUNTIME_ID,
      );
      const routerBinary = sidecarPath(routerRuntime, "opencode-router");
      if (!routerBinary) {
        throw new OpenworkError(
          `runtime ${routerRuntime.json.runtimeId} has no opencode-router sidecar, but the router is enabled`,
          {
            code: "runtime_invalid",
          },
        );
      }
      router = new Supervised(
        routerDefinition(env, {
          runtimeId: routerRuntime.json.runtimeId,
          binary: routerBinary,
          healthPort: env.OPENWORK_ROUTER_HEALTH_PORT as number,
          pinnedVersion: routerRuntime.json.sidecars["opencode-router"]?.version,
          engineUrl: () => app.engine.definition.url,
        }),
        adopt(env.OPENWORK_ROUTER_PID as number),
        policy,
        log,
      );
    }
    const app = new ServerApp(env, log, options.server, engine, router);
    if (!options.handoff) {
      const interrupted = app.operations.markInterrupted();
      if (interrupted.length > 0)
        log.warn({ operations: interrupted }, "upgrade operations were interrupted by a restart");
    }
    // One probe each before serving, so the first summary already has versions.
    await Promise.all(
      [engine, router].map((component) => component?.waitHealthy(3000).catch(() => undefined)),
    );
    // A generation taking over watches only once it is activated: two supervisors must never both restart a process.
    if (!options.handoff) app.watch();
    return app;
  }

  watch(): void {
    this.engine.watch();
    this.router?.watch();
  }

  /** Stop supervising without touching the processes (a newer generation adopts them). */
  detach(): void {
    this.engine.unwatch();
    this.router?.unwatch();
    this.engine.tail.stop();
    this.router?.tail.stop();
  }

  /** Graceful stop of the whole runtime: the router, then the engine. */
  async shutdown(reason: string): Promise<void> {
    await this.router?.stop(reason);
    await this.engine.stop(reason);
    this.engine.tail.stop();
    this.router?.tail.stop();
  }

  readonly handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    void this.handle(req, res);
  };

  /** HTTP upgrades (WebSockets): only under /opencode/, with a client token, proxied to the engine. */
  readonly upgradeHandler = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    void this.handleUpgrade(req, socket, head);
  };

  private async handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const requestId = requestIdOf(req);
    const refuse = (status: number, reason: string) => {
      const body = JSON.stringify({ ok: false, error: { code: reason, message: reason, requestId } });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\nx-request-id: ${requestId}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    };
    const url = new URL(req.url ?? "/", "http://openwork.invalid");
    if (url.pathname !== "/opencode" && !url.pathname.startsWith("/opencode/"))
      return refuse(404, "not_found");
    if (this.tokens.authenticate(req) === undefined) return refuse(401, "unauthorized");
    const upstream = await this.readyUpstream();
    if (!upstream) return refuse(503, "engine_unavailable");
    proxyUpgrade(req, socket, head, {
      upstream,
      target: `${url.pathname.slice("/opencode".length) || "/"}${url.search}`,
      workspace: this.env.OPENWORK_WORKSPACE,
      requestId,
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestId = requestIdOf(req);
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://openwork.invalid");
    } catch {
      sendError(res, requestId, 400, "invalid_url", "the request target is not a valid URL");
      return;
    }
    const method = req.method ?? "GET";
    let matched: { route: Route; params: Record<string, string> } | undefined;
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchPath(route.path, url.pathname);
      if (!params) continue;
      pathMatched = true;
      if (
        route.method === "ALL" ||
        route.method === method ||
        (method === "HEAD" && route.method === "GET")
      ) {
        matched = { route, params };
        break;
      }
    }
    if (!matched) {
      if (pathMatched)
        sendError(res, requestId, 405, "method_not_allowed", `${method} is not allowed on ${url.pathname}`);
      else sendError(res, requestId, 404, "not_found", `no route for ${method} ${url.pathname}`);
      return;
    }
    const { route, params } = matched;
    if (route.auth !== "none") {
      const scope = this.tokens.authenticate(req);
      if (scope === undefined) {
        res.setHeader("www-authenticate", 'Bearer realm="openwork"');
        sendError(
          res,
          requestId,
          401,
          "unauthorized",
          "a valid token is required (Authorization: Bearer <token>)",
        );
        return;
      }
      if (!allows(scope, route.auth)) {
        sendError(
          res,
          requestId,
          403,
          "forbidden",
          `${method} ${route.path} needs the host token; this token has ${scope} scope`,
        );
        return;
      }
    }
    try {
      await route.handle({ req, res, requestId, params, url });
    } catch (error) {
      if (error instanceof HttpError) {
        sendError(res, requestId, error.status, error.code, error.message, error.extra);
      } else if (error instanceof OpenworkError) {
        sendError(res, requestId, 500, error.code, error.message, error.hint ? { hint: error.hint } : {});
      } else {
        this.log.error({ err: error, requestId }, "request failed");
        sendError(res, requestId, 500, "internal", errorMessage(error));
      }
    }
  }

  /**
   * The upstream to proxy to, once the engine can take requests. A (re)starting
   * engine accepts connections before it answers them, so requests wait for
   * the supervisor to see it healthy (bounded) instead of hanging inside it.
   */
  async readyUpstream(afterRefusal = false): Promise<Upstream | undefined> {
    const deadline = Date.now() + Math.min(30_000, this.policy.startDeadlineMs);
    // after a refused connection the pid poll may not have noticed the death yet
    if (afterRefusal) await sleep(this.policy.pidPollMs + 50);
    for (;;) {
      const status = this.engine.status;
      if (status === "healthy" || status === "unhealthy") return this.upstream;
      if (status === "cooldown" || status === "stopped" || Date.now() > deadline) return undefined;
      await sleep(50);
    }
  }

  versions(): z.output<typeof versionsData> {
    const pinned: Record<string, string> = {};
    for (const [name, entry] of Object.entries(this.runtime.json.sidecars)) pinned[name] = entry.version;
    const running = this.upgrades.running();
    return {
      active: {
        opencode: this.engine.version ?? null,
        "opencode-router": this.router ? (this.router.version ?? null) : null,
        "openwork-server": SERVER_VERSION,
        node: process.versions.node,
      },
      pinned: { runtimeId: this.runtime.json.runtimeId, versions: pinned },
      target: running
        ? { runtimeId: running.to.runtimeId, versions: running.to.versions, operationId: running.operationId }
        : null,
    };
  }

  summary(): Record<string, unknown> {
    const operations = this.operations.all();
    const features = nodeFeatures();
    return {
      server: {
        status: "healthy",
        pid: process.pid,
        version: SERVER_VERSION,
        node: process.versions.node,
        features,
        startedAt: this.startedAt,
        url: `http://${this.env.OPENWORK_SERVER_HOST}:${this.env.OPENWORK_SERVER_PORT}`,
      },
      runtime: {
        runtimeId: this.runtime.json.runtimeId,
        target: this.runtime.json.target,
        runtimeVersion: this.runtime.json.runtimeVersion ?? null,
        nextStart: this.state.readCurrentRuntime() ?? this.runtime.json.runtimeId,
      },
      workspace: this.env.OPENWORK_WORKSPACE,
      components: {
        opencode: this.engine.summary(),
        "opencode-router": this.router ? this.router.summary() : { status: "disabled" },
      },
      upgrade: {
        running: this.upgrades.running()?.operationId ?? null,
        last: operations.at(-1) ?? null,
      },
    };
  }

  private buildRoutes(): Route[] {
    const routes: Route[] = [
      {
        method: "GET",
        path: "/system/health",
        auth: "none",
        summary: "Liveness of the server itself",
        responses: {
          200: {
            description: "the server answers",
            data: z.object({ status: z.literal("ok"), version: z.string() }),
          },
        },
        handle: ({ res, requestId }) =>
          sendOk(res, requestId, 200, { status: "ok", version: SERVER_VERSION }),
      },
      {
        method: "GET",
        path: "/system/openapi.json",
        auth: "none",
        summary: "This API's OpenAPI document, generated from the route definitions",
        responses: { 200: { description: "OpenAPI 3.1 document", raw: true } },
        handle: ({ res, requestId }) => {
          const text = JSON.stringify(openApiDocument(this.routes, SERVER_VERSION));
          res.writeHead(200, {
            "content-type": "application/json; charset=utf-8",
            "x-request-id": requestId,
          });
          res.end(text);
        },
      },
      {
        method: "GET",
        path: "/system/runtime/summary",
        auth: "client",
        summary:
          "Every component's status, pid, url, version, last exit, restart counters, recent output; upgrade state",
        responses: {
          200: {
            description: "the summary",
            data: z
              .object({
                components: z.record(
                  z.string(),
                  componentSummary.or(z.object({ status: z.literal("disabled") })),
                ),
              })
              .loose(),
          },
        },
        handle: async ({ res, requestId }) => {
          await Promise.all([this.engine.tail.poll(), this.router?.tail.poll()]);
          sendOk(res, requestId, 200, this.summary());
        },
      },
      {
        method: "GET",
        path: "/system/runtime/versions",
        auth: "client",
        summary:
          "active (reported by the running processes), pinned (runtime.json) and target (an upgrade in progress) versions",
        responses: { 200: { description: "versions", data: versionsData } },
        handle: ({ res, requestId }) => sendOk(res, requestId, 200, this.versions()),
      },
      {
        method: "POST",
        path: "/system/runtime/upgrade",
        auth: "host",
        summary: "Start a rolling, health-gated upgrade to a staged runtime (or a verifiable manifest)",
        description:
          "Answers 202 with an operationId; 409 while another upgrade runs. Steps: verify, start-engine, gate-engine, switch-proxy, restart-router, gate-router, load-server, swap-server, retire-engine, record. Any failed gate rolls back.",
        body: upgradeRequestSchema,
        responses: {
          202: { description: "the upgrade started", data: operationData },
          409: { description: "another upgrade is running" },
        },
        handle: async ({ req, res, requestId }) => {
          const request = parseBody(upgradeRequestSchema, await readJsonBody(req));
          const operation = await this.upgrades.begin(request);
          res.setHeader("location", `/system/runtime/upgrade/${operation.operationId}`);
          sendOk(res, requestId, 202, operation);
        },
      },
      {
        method: "GET",
        path: "/system/runtime/upgrade/:operationId",
        auth: "client",
        summary: "Progress and result of one upgrade operation",
        responses: {
          200: { description: "the operation", data: operationData },
          404: { description: "no such operation" },
        },
        handle: ({ res, requestId, params }) => {
          const operation = this.operations.get(params.operationId ?? "");
          if (!operation)
            throw new HttpError(404, "operation_not_found", `no upgrade operation ${params.operationId}`);
          sendOk(res, requestId, 200, operation);
        },
      },
      {
        method: "GET",
        path: "/system/opencode/health",
        auth: "client",
        summary: "The engine's health, probed now",
        responses: { 200: { description: "healthy" }, 503: { description: "not healthy" } },
        handle: async ({ res, requestId }) => componentHealth(this.engine, "engine", res, requestId),
      },
      {
        method: "GET",
        path: "/system/router/health",
        auth: "client",
        summary: "The router's health, probed now",
        responses: {
          200: { description: "healthy" },
          404: { description: "the router is not enabled" },
          503: { description: "not healthy" },
        },
        handle: async ({ res, requestId }) => {
          if (!this.router)
            throw new HttpError(404, "router_disabled", "the router is not enabled in this runtime");
          await componentHealth(this.router, "router", res, requestId);
        },
      },
      {
        method: "POST",
        path: "/tokens",
        auth: "host",
        summary: "Mint an owner token (client scope; kept hashed in state/tokens.json)",
        body: z.object({ label: z.string().max(200).optional() }),
        responses: {
          201: {
            description: "the new token (shown once)",
            data: z.object({ id: z.string(), token: z.string(), scope: z.literal("owner") }).loose(),
          },
        },
        handle: async ({ req, res, requestId }) => {
          const body = parseBody(
            z.object({ label: z.string().max(200).optional() }),
            await readJsonBody(req),
          );
          sendOk(res, requestId, 201, this.tokens.mintOwner(body.label));
        },
      },
      {
        method: "ALL",
        path: "/opencode/*",
        auth: "client",
        summary:
          "Reverse proxy to the engine (streaming, server-sent events included); the engine's credentials are added server-side",
        responses: {
          200: { description: "the engine's answer, as is", raw: true },
          502: { description: "the engine did not answer" },
        },
        handle: async ({ req, res, requestId, url }) => {
          const target = `${url.pathname.slice("/opencode".length) || "/"}${url.search}`;
          const upstream = await this.readyUpstream();
          if (!upstream) {
            throw new HttpError(
              503,
              "engine_unavailable",
              `the engine is ${this.engine.status}; try again shortly`,
              {
                status: this.engine.status,
              },
            );
          }
          const bodyless =
            req.headers["content-length"] === undefined && req.headers["transfer-encoding"] === undefined;
          proxyRequest(req, res, {
            upstream,
            target,
            workspace: this.env.OPENWORK_WORKSPACE,
            requestId,
            onError: (status, code, message) => sendError(res, requestId, status, code, message),
            retry: bodyless ? () => this.readyUpstream(true) : undefined,
          });
        },
      },
    ];
    return routes;
  }
}

function matchPath(pattern: string, pathname: string): Record<string, string> | undefined {
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
    if (part.startsWith(":")) params[part.slice(1)] = decodeURIComponent(b[i] as string);
    else if (part !== b[i]) return undefined;
  }
  return params;
}
