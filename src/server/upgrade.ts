import { createHash } from "node:crypto";
import { copyFileSync, existsSync, linkSync, mkdirSync, rmSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { ServerApp } from "./app.js";
import { engineAuthorization, engineDefinition, routerDefinition } from "./components.js";
import { serializeServeEnv } from "./env.js";
import { HttpError } from "./http.js";
import { createUpstream, drain, type Upstream } from "./proxy.js";
import {
  readRuntime,
  runtimeDir,
  runtimeFromManifest,
  type StagedRuntime,
  sidecarPath,
  verifyRuntime,
} from "./runtime-files.js";
import { writeFileAtomic } from "./state.js";
import { Supervised } from "./supervisor.js";
import type { OperationRecord, StepName } from "./upgrade-record.js";

export const UPGRADABLE = ["opencode", "opencode-router", "openwork-server"] as const;
type Upgradable = (typeof UPGRADABLE)[number];

const runtimeIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, "expected a runtime id ([A-Za-z0-9._-], at most 64)");

export const upgradeRequestSchema = z
  .object({
    runtimeId: runtimeIdSchema.optional(),
    manifest: z.string().min(1).optional(),
    /** the directory holding the manifest's files (default: the manifest's own directory) */
    dir: z.string().min(1).optional(),
    components: z.array(z.enum(UPGRADABLE)).min(1).optional(),
  })
  .strict()
  .refine((body) => (body.runtimeId === undefined) !== (body.manifest === undefined), {
    message: "give exactly one of runtimeId (a staged runtime) or manifest (a manifest file path)",
  });
export type UpgradeRequest = z.output<typeof upgradeRequestSchema>;

/** One upgrade at a time per process, whichever server generation holds it. */
const LOCK = Symbol.for("openwork.server.upgrade-lock");
type LockSlot = { operationId: string; record: () => OperationRecord } | undefined;
function lockSlot(): LockSlot {
  return (globalThis as Record<symbol, LockSlot>)[LOCK];
}
function setLock(slot: LockSlot): void {
  (globalThis as Record<symbol, LockSlot>)[LOCK] = slot;
}

/** What a server bundle exports for a handoff (entrypoints/openwork-server.ts). */
export interface HandoffModule {
  OPENWORK_SERVER_HANDOFF: number;
  takeOver(input: {
    env: Record<string, string>;
    server: import("node:http").Server;
    operationId: string;
  }): Promise<{
    version: string;
    handler: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => void;
    /** absent in bundles older than WebSocket proxying */
    upgradeHandler?: (
      req: import("node:http").IncomingMessage,
      socket: import("node:stream").Duplex,
      head: Buffer,
    ) => void;
    activate(): void;
    abandon(): void;
  }>;
}
export const HANDOFF_FLAG = Symbol.for("openwork.server.handoff-import");

class StepFailure extends Error {
  constructor(
    readonly step: StepName,
    readonly code: string,
    message: string,
    readonly recentOutput?: string[] | undefined,
  ) {
    super(message);
  }
}

function versionsOf(runtime: StagedRuntime): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, entry] of Object.entries(runtime.json.sidecars)) out[name] = entry.version;
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/**
 * Rolling, health-gated upgrade (DESIGN.md §2). Order, and why:
 * verify → start the new engine beside the old → gate it (healthy, pinned
 * version) → switch the proxy → restart the router against the new URL and
 * gate it → load the new server bundle and gate it → swap the request handler
 * → only then retire the old engine (drain in-flight requests, close streams)
 * → record the new runtime for the next start. The old engine stays alive
 * until every gate has passed, so any failure rolls back by switching back.
 */
export class UpgradeRunner {
  constructor(private readonly app: ServerApp) {}

  running(): OperationRecord | undefined {
    return lockSlot()?.record();
  }

  async begin(request: UpgradeRequest): Promise<OperationRecord> {
    const held = lockSlot();
    if (held) {
      throw new HttpError(
        409,
        "upgrade_in_progress",
        `upgrade ${held.operationId} is running; wait for it to finish`,
        {
          operationId: held.operationId,
        },
      );
    }
    if (this.app.engine.status !== "healthy") {
      throw new HttpError(
        409,
        "runtime_unhealthy",
        `the engine is ${this.app.engine.status}: upgrade a healthy runtime, so that a failed gate has something to roll back to`,
      );
    }
    // Claim the lock before any await: a second request in the same tick must see it.
    let record: OperationRecord | undefined;
    setLock({ operationId: "pending", record: () => record as OperationRecord });
    try {
      const target = this.resolveTarget(request);
      const from = this.app.runtime;
      const components = this.componentsFor(request, from, target);
      record = this.app.operations.create({
        request: { runtimeId: request.runtimeId, manifest: request.manifest, components: request.components },
        from: { runtimeId: from.json.runtimeId, versions: versionsOf(from) },
        to: { runtimeId: target.json.runtimeId, versions: versionsOf(target) },
        components,
      });
      const current = record;
      setLock({ operationId: current.operationId, record: () => current });
      void this.execute(current, target).finally(() => {
        if (lockSlot()?.operationId === current.operationId) setLock(undefined);
      });
      return structuredClone(current);
    } catch (error) {
      setLock(undefined);
      if (error instanceof OpenworkError) {
        const status = error.code === "runtime_not_found" ? 404 : 400;
        throw new HttpError(status, error.code, error.message);
      }
      throw error;
    }
  }

  private resolveTarget(request: UpgradeRequest): StagedRuntime {
    const persist = this.app.env.OPENWORK_PERSIST;
    if (request.runtimeId) return readRuntime(persist, request.runtimeId);
    const manifest = path.resolve(request.manifest as string);
    const dir = path.resolve(request.dir ?? path.dirname(manifest));
    const id = `m-${createHash("sha256").update(manifest).update(dir).digest("hex").slice(0, 14)}`;
    const loose = runtimeFromManifest(manifest, dir, this.app.runtime.json.target, id);
    // Stage the manifest's files as a runtime (hard links, copies across devices) so the
    // rest of the upgrade, and the next start, see one layout; verify checks the linked bytes.
    const stagedDir = runtimeDir(persist, id);
    rmSync(stagedDir, { recursive: true, force: true });
    mkdirSync(stagedDir, { recursive: true });
    for (const entry of Object.values(loose.json.sidecars)) {
      const source = path.resolve(dir, entry.file);
      const dest = path.join(stagedDir, path.basename(entry.file));
      if (!existsSync(source))
        throw new OpenworkError(`manifest names ${source}, which does not exist`, {
          code: "manifest_invalid",
        });
      try {
        linkSync(source, dest);
      } catch {
        copyFileSync(source, dest);
      }
      entry.file = path.basename(entry.file);
    }
    // What the manifest does not name is carried over from the running runtime, so the
    // recorded runtime is complete for the next start.
    const current = this.app.runtime;
    for (const [name, entry] of Object.entries(current.json.sidecars)) {
      if (loose.json.sidecars[name]) continue;
      const source = sidecarPath(current, name) as string;
      const dest = path.join(stagedDir, path.basename(entry.file));
      try {
        linkSync(source, dest);
      } catch {
        copyFileSync(source, dest);
      }
      loose.json.sidecars[name] = { ...entry, file: path.basename(entry.file) };
    }
    loose.json.runtimeVersion = current.json.runtimeVersion;
    writeFileAtomic(path.join(stagedDir, "runtime.json"), `${JSON.stringify(loose.json, null, 2)}\n`);
    return readRuntime(persist, id);
  }

  private componentsFor(request: UpgradeRequest, from: StagedRuntime, to: StagedRuntime): Upgradable[] {
    const routerOn = this.app.router !== undefined;
    const candidates = request.components ?? [...UPGRADABLE];
    const out: Upgradable[] = [];
    for (const name of candidates) {
      if (name === "opencode-router" && !routerOn) {
        if (request.components)
          throw new OpenworkError("the router is not enabled in this runtime", { code: "invalid_request" });
        continue;
      }
      const next = to.json.sidecars[name];
      if (!next) {
        if (request.components)
          throw new OpenworkError(`runtime ${to.json.runtimeId} has no ${name} sidecar`, {
            code: "invalid_request",
          });
        continue;
      }
      // Without an explicit list, only what changed is replaced.
      if (!request.components && from.json.sidecars[name]?.sha256 === next.sha256) continue;
      out.push(name);
    }
    return out;
  }

  private async execute(record: OperationRecord, target: StagedRuntime): Promise<void> {
    const app = this.app;
    const log = app.log.child({ operationId: record.operationId });
    const save = () => app.operations.save(record);
    const step = async <T>(
      name: StepName,
      fn: () => Promise<T> | T,
      detail?: (value: T) => string,
    ): Promise<T> => {
      const entry = {
        name,
        state: "running" as const,
        startedAt: new Date().toISOString(),
        finishedAt: null,
        detail: null,
      };
      record.steps.push(entry);
      record.step = name;
      save();
      try {
        const value = await fn();
        Object.assign(entry, {
          state: "done",
          finishedAt: new Date().toISOString(),
          detail: detail ? detail(value) : null,
        });
        save();
        return value;
      } catch (error) {
        Object.assign(entry, {
          state: "failed",
          finishedAt: new Date().toISOString(),
          detail: errorMessage(error),
        });
        save();
        if (error instanceof StepFailure) throw error;
        const code = error instanceof OpenworkError ? error.code : "step_failed";
        const recent =
          error instanceof OpenworkError ? (error.details?.recentOutput as string[] | undefined) : undefined;
        throw new StepFailure(name, code, errorMessage(error), recent);
      }
    };
    const has = (name: Upgradable) => record.components.includes(name);
    const oldEngine = app.engine;
    const oldUpstream = app.upstream;
    const oldRouter = app.router;
    let newEngine: Supervised | undefined;
    let newUpstream: Upstream | undefined;
    let newRouter: Supervised | undefined;
    let proxySwitched = false;
    let routerTouched = false;
    let handoff: Awaited<ReturnType<HandoffModule["takeOver"]>> | undefined;
    log.info(
      { from: record.from.runtimeId, to: record.to.runtimeId, components: record.components },
      "upgrade started",
    );
    try {
      if (
        target.json.sidecars.node &&
        app.runtime.json.sidecars.node?.sha256 !== target.json.sidecars.node.sha256
      ) {
        record.notes.push(
          "the node sidecar differs: it runs the server from the next start (state/current-runtime)",
        );
      }
      await step(
        "verify",
        () => verifyRuntime(target, record.components),
        () => `${record.components.join(", ") || "nothing"} verified`,
      );
      if (has("opencode")) {
        const binary = sidecarPath(target, "opencode") as string;
        newEngine = await step(
          "start-engine",
          async () => {
            const port = await freePort();
            const definition = engineDefinition(app.env, {
              runtimeId: target.json.runtimeId,
              binary,
              port,
              pinnedVersion: target.json.sidecars.opencode?.version,
            });
            return Supervised.spawn(definition, app.policy, log, oldEngine.tail);
          },
          (engine) => `pid ${engine.handle.pid} on port ${engine.definition.port}`,
        );
        const started = newEngine;
        await step(
          "gate-engine",
          () => started.waitHealthy(),
          (probe) => probe.detail,
        );
        await step(
          "switch-proxy",
          () => {
            newUpstream = createUpstream(
              `${target.json.runtimeId}:${started.definition.port}`,
              started.definition.port,
              engineAuthorization(app.env),
            );
            // One assignment: every request from now on goes to the new engine.
            app.upstream = newUpstream;
            app.engine = started;
            proxySwitched = true;
            oldEngine.unwatch();
            started.watch();
          },
          () => `proxy → ${started.definition.url}`,
        );
      }
      if (oldRouter && (has("opencode-router") || has("opencode"))) {
        const routerRuntime = has("opencode-router")
          ? target
          : readRuntime(app.env.OPENWORK_PERSIST, oldRouter.definition.runtimeId);
        newRouter = await step(
          "restart-router",
          async () => {
            routerTouched = true;
            // One router at a time: two would both answer the same chats.
            await oldRouter.stop("replaced by upgrade");
            const definition = routerDefinition(app.env, {
              runtimeId: routerRuntime.json.runtimeId,
              binary: sidecarPath(routerRuntime, "opencode-router") as string,
              healthPort: oldRouter.definition.port,
              pinnedVersion: routerRuntime.json.sidecars["opencode-router"]?.version,
              engineUrl: () => app.engine.definition.url,
            });
            return Supervised.spawn(definition, app.policy, log, oldRouter.tail);
          },
          (router) => `pid ${router.handle.pid}, OPENCODE_URL=${app.engine.definition.url}`,
        );
        const started = newRouter;
        await step(
          "gate-router",
          () => started.waitHealthy(),
          (probe) => probe.detail,
        );
        app.router = started;
        started.watch();
      }
      if (has("openwork-server")) {
        const bundle = sidecarPath(target, "openwork-server") as string;
        handoff = await step(
          "load-server",
          async () => {
            const env = serializeServeEnv(app.env);
            env.OPENWORK_RUNTIME_ID = target.json.runtimeId;
            env.OPENWORK_ENGINE_PID = String(app.engine.handle.pid);
            env.OPENWORK_ENGINE_PORT = String(app.engine.definition.port);
            env.OPENWORK_ENGINE_RUNTIME_ID = app.engine.definition.runtimeId;
            if (app.router) {
              env.OPENWORK_ROUTER_PID = String(app.router.handle.pid);
              env.OPENWORK_ROUTER_RUNTIME_ID = app.router.definition.runtimeId;
            }
            (globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] = true;
            let mod: HandoffModule;
            try {
              // A query per operation: a retried upgrade loads the bundle afresh, not from the module cache.
              mod = (await import(
                `${pathToFileURL(bundle).href}?operation=${record.operationId}`
              )) as HandoffModule;
            } finally {
              (globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] = false;
            }
            if (mod.OPENWORK_SERVER_HANDOFF !== 1 || typeof mod.takeOver !== "function") {
              throw new OpenworkError(
                `${bundle} does not export the server handoff (OPENWORK_SERVER_HANDOFF = 1)`,
                { code: "server_incompatible" },
              );
            }
            const next = await mod.takeOver({ env, server: app.server, operationId: record.operationId });
            const pinned = target.json.sidecars["openwork-server"]?.version;
            if (pinned !== undefined && next.version !== pinned) {
              next.abandon();
              throw new OpenworkError(
                `the new server reports version ${next.version}, runtime.json pins ${pinned}`,
                { code: "wrong_version" },
              );
            }
            return next;
          },
          (next) => `server ${next.version} loaded`,
        );
        const next = handoff;
        await step(
          "swap-server",
          () => {
            // Same listener, same sockets: only the function that answers requests changes.
            app.server.removeListener("request", app.handler);
            app.server.on("request", next.handler);
            app.retired = true;
            app.detach();
            next.activate();
          },
          () => `server ${next.version} answers requests`,
        );
      }
      // Past this point every gate has passed and the new runtime serves: what follows is
      // clean-up, and a failure there is reported on the operation, never rolled back.
      const afterCommit = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (error) {
          record.notes.push(`after the switch, step ${record.step} failed: ${errorMessage(error)}`);
          log.error({ step: record.step, err: error }, "clean-up after the upgrade failed");
        }
      };
      if (proxySwitched) {
        await afterCommit(() =>
          step(
            "retire-engine",
            async () => {
              const drained = await drain(oldUpstream, 30_000);
              await oldEngine.stop("retired after upgrade");
              return drained;
            },
            (drained) =>
              `old engine pid ${oldEngine.handle.pid} stopped; ${drained.finished} request(s) drained, ${drained.closedStreams} stream(s) closed`,
          ),
        );
      }
      await afterCommit(() =>
        step(
          "record",
          () => {
            app.state.writeCurrentRuntime(target.json.runtimeId);
            if (!app.retired) app.runtime = target;
          },
          () => `state/current-runtime = ${target.json.runtimeId}`,
        ),
      );
      record.state = "succeeded";
      record.step = null;
      record.finishedAt = new Date().toISOString();
      save();
      log.info({ to: record.to.runtimeId }, "upgrade succeeded");
    } catch (error) {
      const failure =
        error instanceof StepFailure
          ? error
          : new StepFailure((record.step as StepName) ?? "verify", "step_failed", errorMessage(error));
      log.error({ step: failure.step, reason: failure.message }, "upgrade failed; rolling back");
      record.error = {
        step: failure.step,
        code: failure.code,
        message: failure.message,
        recentOutput: failure.recentOutput,
      };
      record.rolledBack = await this.rollback(record, {
        oldEngine,
        oldUpstream,
        oldRouter,
        newEngine,
        newUpstream,
        newRouter,
        proxySwitched,
        routerTouched,
      });
      record.state = "failed";
      record.finishedAt = new Date().toISOString();
      save();
    }
  }

  private async rollback(
    record: OperationRecord,
    parts: {
      oldEngine: Supervised;
      oldUpstream: Upstream;
      oldRouter: Supervised | undefined;
      newEngine: Supervised | undefined;
      newUpstream: Upstream | undefined;
      newRouter: Supervised | undefined;
      proxySwitched: boolean;
      routerTouched: boolean;
    },
  ): Promise<boolean> {
    const app = this.app;
    let clean = true;
    const undo = async (name: string, fn: () => Promise<string | undefined> | string | undefined) => {
      const entry = {
        name: `rollback:${name}` as const,
        state: "running" as const,
        startedAt: new Date().toISOString(),
        finishedAt: null,
        detail: null,
      };
      record.steps.push(entry);
      app.operations.save(record);
      try {
        const detail = await fn();
        Object.assign(entry, { state: "done", finishedAt: new Date().toISOString(), detail: detail ?? null });
      } catch (error) {
        clean = false;
        Object.assign(entry, {
          state: "failed",
          finishedAt: new Date().toISOString(),
          detail: errorMessage(error),
        });
      }
      app.operations.save(record);
    };
    if (parts.proxySwitched) {
      await undo("switch-proxy", () => {
        app.upstream = parts.oldUpstream;
        app.engine = parts.oldEngine;
        parts.newEngine?.unwatch();
        parts.oldEngine.watch();
        return `proxy → ${parts.oldEngine.definition.url}`;
      });
    }
    if (parts.routerTouched && parts.oldRouter) {
      const oldRouter = parts.oldRouter;
      await undo("restart-router", async () => {
        await parts.newRouter?.stop("upgrade rolled back");
        const restarted = Supervised.spawn(
          { ...oldRouter.definition, launch: oldRouter.definition.launch },
          app.policy,
          app.log,
          oldRouter.tail,
        );
        app.router = restarted;
        restarted.watch();
        await restarted.waitHealthy();
        return `previous router pid ${restarted.handle.pid}, OPENCODE_URL=${app.engine.definition.url}`;
      });
    }
    if (parts.newEngine) {
      const newEngine = parts.newEngine;
      await undo("stop-new-engine", async () => {
        if (parts.newUpstream) await drain(parts.newUpstream, 10_000);
        await newEngine.stop("upgrade rolled back");
        return `new engine pid ${newEngine.handle.pid} stopped`;
      });
    }
    return clean;
  }
}
