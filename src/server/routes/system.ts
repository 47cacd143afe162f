import type http from "node:http";
import {
  type ComponentHealth,
  endpoints,
  HEALTH_CHALLENGE,
  READY_WAIT_MAX_MS,
  type RuntimeSummary,
  type RuntimeVersions,
  type UpgradeOperation,
} from "../../contract/api.js";
import type { ServeEnv } from "../../contract/env.js";
import type { PersistLayout } from "../../contract/layout.js";
import { openApiDocument } from "../../contract/openapi.js";
import { pinnedVersions } from "../../contract/runtime.js";
import { readCurrentRuntime } from "../../staging/current-runtime.js";
import type { Route } from "../dispatch.js";
import { HttpError, sendError, sendOk } from "../http.js";
import { serverMetrics } from "../metrics.js";
import type { Readiness } from "../readiness.js";
import type { Supervised } from "../supervisor.js";
import type { Topology } from "../topology.js";
import type { OperationStore } from "../upgrade-record.js";
import { nodeFeatures, SERVER_VERSION } from "../version.js";

export interface SystemDeps {
  topology: Topology;
  env: ServeEnv;
  layout: PersistLayout;
  operations: OperationStore;
  /** the upgrade in progress, if any */
  runningUpgrade(): UpgradeOperation | undefined;
  startedAt: string;
  /** the answer to a health challenge */
  proof(challenge: string): string;
  readiness: Readiness;
}

/** /system/versions: active from the running processes, pinned from runtime.json, target from an upgrade. */
export function versionsOf(deps: SystemDeps): RuntimeVersions {
  const { topology } = deps;
  const running = deps.runningUpgrade();
  return {
    active: {
      opencode: topology.engine.version ?? null,
      "opencode-router": topology.router?.version ?? null,
      "openwork-server": SERVER_VERSION,
      node: process.versions.node,
    },
    pinned: { runtimeId: topology.runtime.json.runtimeId, versions: pinnedVersions(topology.runtime.json) },
    target: running
      ? { runtimeId: running.to.runtimeId, versions: running.to.versions, operationId: running.operationId }
      : null,
  };
}

export function summaryOf(deps: SystemDeps): RuntimeSummary {
  const { topology, env } = deps;
  const runtime = topology.runtime.json;
  return {
    server: {
      status: "healthy",
      pid: process.pid,
      version: SERVER_VERSION,
      node: process.versions.node,
      features: nodeFeatures(),
      startedAt: deps.startedAt,
      url: `http://${env.OPENWORK_SERVER_HOST}:${env.OPENWORK_SERVER_PORT}`,
    },
    runtime: {
      runtimeId: runtime.runtimeId,
      target: runtime.target,
      runtimeVersion: runtime.runtimeVersion,
      nextStart: readCurrentRuntime(deps.layout) ?? runtime.runtimeId,
    },
    workspace: env.OPENWORK_WORKSPACE,
    components: {
      opencode: topology.engine.summary(),
      "opencode-router": topology.router ? topology.router.summary() : { status: "disabled" },
    },
    upgrade: {
      running: deps.runningUpgrade()?.operationId ?? null,
      last: deps.operations.all().at(-1) ?? null,
    },
  };
}

/** A component's health, probed now: 200 with the probe's view, or 503 `<name>_unhealthy` with the same data. */
async function componentHealth(
  component: Supervised,
  code: "engine_unhealthy" | "router_unhealthy",
  res: http.ServerResponse,
  requestId: string,
): Promise<void> {
  const probe = await component.probe(2000);
  const data: ComponentHealth = {
    healthy: probe.ok,
    version: probe.version ?? null,
    detail: probe.detail,
    status: component.status,
    url: component.definition.url,
  };
  if (probe.ok) sendOk(res, requestId, 200, data);
  else
    sendError(res, requestId, 503, code, `the ${component.name} is not healthy: ${probe.detail}`, { data });
}

export function systemRoutes(deps: SystemDeps): Route[] {
  return [
    {
      endpoint: endpoints.health,
      handle: ({ res, requestId, url }) => {
        const challenge = url.searchParams.get("challenge");
        if (challenge !== null && !HEALTH_CHALLENGE.test(challenge))
          throw new HttpError(
            400,
            "invalid_request",
            "challenge: expected 16-128 characters of [A-Za-z0-9_-]",
          );
        sendOk(res, requestId, 200, {
          status: "ok",
          version: SERVER_VERSION,
          ...(challenge !== null ? { proof: deps.proof(challenge) } : {}),
        });
      },
    },
    {
      endpoint: endpoints.ready,
      handle: async ({ res, requestId, url }) => {
        const raw = url.searchParams.get("waitMs") ?? "0";
        const waitMs = /^[0-9]{1,6}$/.test(raw) ? Number(raw) : Number.NaN;
        if (!(waitMs <= READY_WAIT_MAX_MS))
          throw new HttpError(
            400,
            "invalid_request",
            `waitMs: expected a whole number of milliseconds from 0 to ${READY_WAIT_MAX_MS}`,
          );
        const { readiness } = deps;
        await readiness.wait(waitMs);
        if (readiness.state === "ready")
          sendOk(res, requestId, 200, {
            ready: true,
            at: readiness.at as string,
            engineHealthyAt: readiness.engineHealthyAt ?? null,
          });
        else if (readiness.state === "failed")
          sendError(res, requestId, 503, "start_failed", `the runtime failed to start: ${readiness.reason}`);
        else
          sendError(
            res,
            requestId,
            503,
            "runtime_starting",
            `the engine is not healthy yet (${deps.topology.engine.status})`,
          );
      },
    },
    {
      endpoint: endpoints.openapi,
      handle: ({ res, requestId }) => {
        const text = JSON.stringify(openApiDocument(Object.values(endpoints), SERVER_VERSION));
        res.writeHead(200, {
          "content-type": endpoints.openapi.responses[200].mediaType,
          "x-request-id": requestId,
        });
        res.end(text);
      },
    },
    {
      endpoint: endpoints.metrics,
      handle: async ({ res, requestId }) => {
        const { registry } = serverMetrics();
        const text = await registry.metrics();
        res.writeHead(200, {
          "content-type": registry.contentType,
          "content-length": Buffer.byteLength(text),
          "x-request-id": requestId,
          "cache-control": "no-store",
        });
        res.end(text);
      },
    },
    {
      endpoint: endpoints.summary,
      handle: async ({ res, requestId }) => {
        await Promise.all([deps.topology.engine.tail.poll(), deps.topology.router?.tail.poll()]);
        sendOk(res, requestId, 200, summaryOf(deps));
      },
    },
    {
      endpoint: endpoints.versions,
      handle: ({ res, requestId }) => sendOk(res, requestId, 200, versionsOf(deps)),
    },
    {
      endpoint: endpoints.engineHealth,
      handle: ({ res, requestId }) =>
        componentHealth(deps.topology.engine, "engine_unhealthy", res, requestId),
    },
    {
      endpoint: endpoints.routerHealth,
      handle: async ({ res, requestId }) => {
        const router = deps.topology.router;
        if (!router) throw new HttpError(404, "router_disabled", "the router is not enabled in this runtime");
        await componentHealth(router, "router_unhealthy", res, requestId);
      },
    },
  ];
}
