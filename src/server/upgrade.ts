import path from "node:path";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import {
  type SidecarVersions,
  type StepRecord,
  UPGRADABLE,
  type Upgradable,
  type UpgradeOperation,
  type UpgradeRequest,
  type UpgradeStep,
} from "../contract/api.js";
import { type ServeEnv, serializeServeEnv } from "../contract/env.js";
import {
  asHandoffModule,
  checkNextGeneration,
  HANDOFF_FLAG,
  type NextGeneration,
} from "../contract/handoff.js";
import type { PersistLayout } from "../contract/layout.js";
import { pinnedVersions, type RuntimeContent } from "../contract/runtime.js";
import { errorMessage, isOpenworkError, OpenworkError } from "../errors/errors.js";
import { freeLoopbackPort } from "../net/ports.js";
import { writeCurrentRuntime } from "../staging/current-runtime.js";
import { engineAuthorization, engineDefinition, routerDefinition } from "./components.js";
import { HttpError } from "./http.js";
import { observeUpgrade, type UpgradeOutcome } from "./metrics.js";
import { createUpstream, drain, type Upstream } from "./proxy.js";
import {
  type ManifestPlan,
  planManifest,
  readRuntime,
  removeStaged,
  type StagedRuntime,
  sidecarPath,
  stagePlan,
  verifyRuntime,
} from "./runtime-files.js";
import { Supervised, type SupervisionPolicy } from "./supervisor.js";
import type { Listener, Topology } from "./topology.js";
import { beginStep, endStep, type OperationStore } from "./upgrade-record.js";

export { UPGRADABLE };

/** One upgrade at a time per process, whichever server generation holds it. */
const LOCK = Symbol.for("openwork.server.upgrade-lock");
type LockSlot = { operationId: string; record: () => UpgradeOperation | undefined } | undefined;
function lockSlot(): LockSlot {
  return (globalThis as Record<symbol, LockSlot>)[LOCK];
}
function setLock(slot: LockSlot): void {
  (globalThis as Record<symbol, LockSlot>)[LOCK] = slot;
}

/** What the upgrade runner works on: one generation's topology and what it needs to change it. */
export interface UpgradeDeps {
  topology: Topology;
  env: ServeEnv;
  layout: PersistLayout;
  log: Logger;
  operations: OperationStore;
  policy: SupervisionPolicy;
  /** this generation's listeners (the handler swap replaces them) */
  listener(): Listener;
}

class StepFailure extends Error {
  constructor(
    readonly step: UpgradeStep,
    readonly code: string,
    message: string,
    readonly hint: string | undefined,
    readonly recentOutput: readonly string[] | undefined,
  ) {
    super(message);
  }
}

/** The last output a failure carries, whichever copy of the error classes made it. */
function lastOutputOf(error: unknown): string[] | undefined {
  const lines = (error as { lastOutput?: unknown }).lastOutput;
  return Array.isArray(lines) && lines.every((line) => typeof line === "string") ? lines : undefined;
}

function versionsOfContent(content: RuntimeContent): SidecarVersions {
  return pinnedVersions({ runtimeId: "", ...content });
}

/** How a finished operation ended, for the upgrade duration histogram of /system/metrics. */
export function upgradeOutcome(record: UpgradeOperation): UpgradeOutcome {
  if (record.state === "succeeded") return "succeeded";
  return record.rolledBack === true ? "rolled_back" : "failed";
}

/** Where the target runtime comes from: staged already, or a manifest to stage first. */
type Target = { kind: "staged"; runtime: StagedRuntime } | { kind: "manifest"; plan: ManifestPlan };

/**
 * Rolling, health-gated upgrade (DESIGN.md §2). Order, and why:
 * (stage a manifest) → verify → start the new engine beside the old → gate it
 * (healthy, pinned version) → switch the proxy → restart the router against
 * the new URL and gate it → load the new server bundle and gate it → swap the
 * request handler → only then retire the old engine (drain in-flight
 * requests, close streams) → record the new runtime for the next start. The
 * old engine stays alive until every gate has passed, so any failure rolls
 * back by switching back.
 */
export class UpgradeRunner {
  constructor(private readonly deps: UpgradeDeps) {}

  running(): UpgradeOperation | undefined {
    return lockSlot()?.record();
  }

  async begin(request: UpgradeRequest): Promise<UpgradeOperation> {
    const { topology } = this.deps;
    const held = lockSlot();
    if (held) {
      throw new HttpError(
        409,
        "upgrade_in_progress",
        `upgrade ${held.operationId} is running; wait for it to finish`,
        { operationId: held.operationId },
      );
    }
    // Claim the lock before any await: a second request in the same tick must see it.
    let record: UpgradeOperation | undefined;
    setLock({ operationId: "pending", record: () => record });
    try {
      // A request that names nothing usable is refused as such (400/404) whatever the engine's state.
      const target = this.resolveTarget(request);
      if (topology.engine.status !== "healthy") {
        throw new HttpError(
          409,
          "runtime_unhealthy",
          `the engine is ${topology.engine.status}: upgrade a healthy runtime, so that a failed gate has something to roll back to`,
        );
      }
      const content = target.kind === "staged" ? target.runtime.json : target.plan.content;
      const toId = target.kind === "staged" ? target.runtime.json.runtimeId : target.plan.runtimeId;
      const from = topology.runtime.json;
      const components = this.componentsFor(request, from, content);
      record = this.deps.operations.create({
        request: { runtimeId: request.runtimeId, manifest: request.manifest, components: request.components },
        from: { runtimeId: from.runtimeId, versions: pinnedVersions(from) },
        to: { runtimeId: toId, versions: versionsOfContent(content) },
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
      if (isOpenworkError(error)) {
        if (error.code === "runtime_not_found") throw new HttpError(404, "runtime_not_found", error.message);
        if (error.code === "manifest_invalid")
          throw new HttpError(400, "manifest_invalid", error.message, { hint: error.hint });
        if (error.code === "runtime_invalid" || error.code === "runtime_tampered")
          throw new HttpError(400, "runtime_invalid", error.message, { hint: error.hint });
        throw new HttpError(400, "invalid_request", error.message, { hint: error.hint });
      }
      throw error;
    }
  }

  private resolveTarget(request: UpgradeRequest): Target {
    const { layout, topology } = this.deps;
    if (request.runtimeId) return { kind: "staged", runtime: readRuntime(layout, request.runtimeId) };
    const manifest = path.resolve(request.manifest as string);
    const dir = path.resolve(request.dir ?? path.dirname(manifest));
    return { kind: "manifest", plan: planManifest(manifest, dir, topology.runtime) };
  }

  private componentsFor(request: UpgradeRequest, from: RuntimeContent, to: RuntimeContent): Upgradable[] {
    const routerOn = this.deps.topology.router !== undefined;
    const candidates = request.components ?? [...UPGRADABLE];
    const out: Upgradable[] = [];
    for (const name of candidates) {
      if (name === "opencode-router" && !routerOn) {
        if (request.components)
          throw new OpenworkError("the router is not enabled in this runtime", { code: "invalid_request" });
        continue;
      }
      const next = to.sidecars[name];
      if (!next) {
        if (request.components)
          throw new OpenworkError(`the target runtime has no ${name} sidecar`, { code: "invalid_request" });
        continue;
      }
      // Without an explicit list, only what changed is replaced.
      if (!request.components && from.sidecars[name]?.sha256 === next.sha256) continue;
      out.push(name);
    }
    return out;
  }

  private async execute(record: UpgradeOperation, target: Target): Promise<void> {
    const started = performance.now();
    try {
      await this.run(record, target);
    } finally {
      observeUpgrade(upgradeOutcome(record), (performance.now() - started) / 1000);
    }
  }

  private async run(record: UpgradeOperation, target: Target): Promise<void> {
    const { topology, env, log: parentLog, policy, layout } = this.deps;
    const log = parentLog.child({ operationId: record.operationId });
    // A state that cannot be written (a full disk) must not stop the upgrade or its rollback half-way:
    // the server still answers with what it knows.
    const save = () => {
      try {
        this.deps.operations.save(record);
      } catch (error) {
        log.warn(`could not write the state of upgrade ${record.operationId}: ${errorMessage(error)}`);
      }
    };
    const step = async <T>(
      name: UpgradeStep,
      fn: () => Promise<T> | T,
      detail?: (value: T) => string,
    ): Promise<T> => {
      const entry = beginStep(record, name);
      record.step = name;
      save();
      try {
        const value = await fn();
        endStep(entry, "done", detail ? detail(value) : null);
        save();
        return value;
      } catch (error) {
        endStep(entry, "failed", errorMessage(error));
        save();
        if (error instanceof StepFailure) throw error;
        // The error may come from the new bundle's own copy of our classes: recognised by brand, not instanceof.
        throw new StepFailure(
          name,
          isOpenworkError(error) ? error.code : "step_failed",
          errorMessage(error),
          isOpenworkError(error) ? error.hint : undefined,
          lastOutputOf(error),
        );
      }
    };
    const has = (name: Upgradable) => record.components.includes(name);
    const oldEngine = topology.engine;
    const oldUpstream = topology.upstream;
    const oldRouter = topology.router;
    let newEngine: Supervised | undefined;
    let newUpstream: Upstream | undefined;
    let newRouter: Supervised | undefined;
    let proxySwitched = false;
    let routerTouched = false;
    let createdRuntime: string | undefined;
    log.info(
      { from: record.from.runtimeId, to: record.to.runtimeId, components: record.components },
      "upgrade started",
    );
    try {
      const runtime =
        target.kind === "staged"
          ? target.runtime
          : await step(
              "stage",
              async () => {
                const staged = await stagePlan(layout, target.plan);
                if (staged.created) createdRuntime = staged.runtime.json.runtimeId;
                return staged;
              },
              (staged) =>
                `${staged.created ? "staged" : "already staged:"} ${staged.runtime.dir}${staged.created ? " (copied and hashed)" : ""}`,
            ).then((staged) => staged.runtime);
      if (
        runtime.json.sidecars.node &&
        topology.runtime.json.sidecars.node?.sha256 !== runtime.json.sidecars.node.sha256
      ) {
        record.notes.push(
          "the node sidecar differs: it runs the server from the next start (state/current-runtime)",
        );
      }
      if (record.components.length === 0)
        record.notes.push("nothing to replace: the running runtime already has these sidecars");
      await step(
        "verify",
        () => verifyRuntime(runtime, record.components),
        () => `${record.components.join(", ") || "nothing"} verified`,
      );
      if (has("opencode")) {
        const binary = sidecarPath(runtime, "opencode") as string;
        newEngine = await step(
          "start-engine",
          async () => {
            const port = await freeLoopbackPort();
            const definition = engineDefinition(env, {
              runtimeId: runtime.json.runtimeId,
              binary,
              port,
              pinnedVersion: runtime.json.sidecars.opencode?.version,
            });
            return Supervised.spawn(definition, policy, log, oldEngine.tail);
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
              `${runtime.json.runtimeId}:${started.definition.port}`,
              started.definition.port,
              engineAuthorization(env),
            );
            topology.switchEngine(started, newUpstream);
            proxySwitched = true;
          },
          () => `proxy → ${started.definition.url}`,
        );
      }
      if (oldRouter && (has("opencode-router") || has("opencode"))) {
        const routerRuntime = has("opencode-router")
          ? runtime
          : readRuntime(layout, oldRouter.definition.runtimeId);
        newRouter = await step(
          "restart-router",
          async () => {
            routerTouched = true;
            // One router at a time: two would both answer the same chats.
            await oldRouter.stop("replaced by upgrade");
            const definition = routerDefinition(env, {
              runtimeId: routerRuntime.json.runtimeId,
              binary: sidecarPath(routerRuntime, "opencode-router") as string,
              healthPort: oldRouter.definition.port,
              pinnedVersion: routerRuntime.json.sidecars["opencode-router"]?.version,
              engineUrl: () => topology.engine.definition.url,
            });
            return Supervised.spawn(definition, policy, log, oldRouter.tail);
          },
          (router) => `pid ${router.handle.pid}, OPENCODE_URL=${topology.engine.definition.url}`,
        );
        const started = newRouter;
        await step(
          "gate-router",
          () => started.waitHealthy(),
          (probe) => probe.detail,
        );
        topology.replaceRouter(started);
      }
      if (has("openwork-server")) {
        const next = await step(
          "load-server",
          () => this.loadServer(record, runtime),
          (generation) => `server ${generation.version} loaded`,
        );
        await step(
          "swap-server",
          // Same listener, same sockets: only the functions that answer requests change.
          () => topology.swapHandler(this.deps.listener(), next),
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
            writeCurrentRuntime(layout, runtime.json.runtimeId);
            topology.adoptRuntime(runtime);
          },
          () => `state/current-runtime = ${runtime.json.runtimeId}`,
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
          : new StepFailure(
              record.step ?? "verify",
              "step_failed",
              errorMessage(error),
              undefined,
              undefined,
            );
      log.error({ step: failure.step, reason: failure.message }, "upgrade failed; rolling back");
      record.error = {
        step: failure.step,
        code: failure.code,
        message: failure.message,
        ...(failure.hint ? { hint: failure.hint } : {}),
        ...(failure.recentOutput && failure.recentOutput.length > 0
          ? { recentOutput: [...failure.recentOutput] }
          : {}),
      };
      record.rolledBack = await this.rollback(
        record,
        {
          oldEngine,
          oldUpstream,
          oldRouter,
          newEngine,
          newUpstream,
          newRouter,
          proxySwitched,
          routerTouched,
        },
        save,
      );
      if (createdRuntime) {
        // Staged for this operation alone, and nothing runs from it now: remove it.
        await removeStaged(layout, createdRuntime).then(
          () =>
            record.notes.push(
              `removed ${layout.runtimeDir(createdRuntime as string)}, staged for this upgrade`,
            ),
          (removeError: unknown) =>
            record.notes.push(
              `could not remove the runtime staged for this upgrade: ${errorMessage(removeError)}`,
            ),
        );
      }
      record.state = "failed";
      record.finishedAt = new Date().toISOString();
      save();
    }
  }

  /** Import the new server bundle and let it build the next generation; gate its version. */
  private async loadServer(record: UpgradeOperation, runtime: StagedRuntime): Promise<NextGeneration> {
    const { topology, env } = this.deps;
    const bundle = sidecarPath(runtime, "openwork-server") as string;
    const serveEnv = serializeServeEnv(env);
    serveEnv.OPENWORK_RUNTIME_ID = runtime.json.runtimeId;
    serveEnv.OPENWORK_ENGINE_PID = String(topology.engine.handle.pid);
    serveEnv.OPENWORK_ENGINE_PORT = String(topology.engine.definition.port);
    serveEnv.OPENWORK_ENGINE_RUNTIME_ID = topology.engine.definition.runtimeId;
    if (topology.router) {
      serveEnv.OPENWORK_ROUTER_PID = String(topology.router.handle.pid);
      serveEnv.OPENWORK_ROUTER_RUNTIME_ID = topology.router.definition.runtimeId;
    }
    (globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] = true;
    let loaded: unknown;
    try {
      // A query per operation: a retried upgrade loads the bundle afresh, not from the module cache.
      loaded = await import(`${pathToFileURL(bundle).href}?operation=${record.operationId}`);
    } finally {
      (globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] = false;
    }
    const mod = asHandoffModule(loaded);
    if ("problem" in mod)
      throw new OpenworkError(`${bundle} cannot take over: ${mod.problem}`, { code: "server_incompatible" });
    const next = await mod.takeOver({
      env: serveEnv,
      server: this.deps.listener().server,
      operationId: record.operationId,
    });
    const problem = checkNextGeneration(next);
    if (problem)
      throw new OpenworkError(`${bundle} cannot take over: ${problem}`, { code: "server_incompatible" });
    const pinned = runtime.json.sidecars["openwork-server"]?.version;
    if (pinned !== undefined && next.version !== pinned) {
      next.abandon();
      throw new OpenworkError(`the new server reports version ${next.version}, runtime.json pins ${pinned}`, {
        code: "wrong_version",
      });
    }
    return next;
  }

  private async rollback(
    record: UpgradeOperation,
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
    save: () => void,
  ): Promise<boolean> {
    const { topology, policy, log } = this.deps;
    let clean = true;
    const undo = async (name: StepRecord["name"], fn: () => Promise<string> | string) => {
      const entry = beginStep(record, name);
      save();
      try {
        endStep(entry, "done", await fn());
      } catch (error) {
        clean = false;
        endStep(entry, "failed", errorMessage(error));
      }
      save();
    };
    if (parts.proxySwitched) {
      await undo("rollback:switch-proxy", () => {
        topology.switchEngine(parts.oldEngine, parts.oldUpstream);
        return `proxy → ${parts.oldEngine.definition.url}`;
      });
    }
    if (parts.routerTouched && parts.oldRouter) {
      const oldRouter = parts.oldRouter;
      await undo("rollback:restart-router", async () => {
        await parts.newRouter?.stop("upgrade rolled back");
        const restarted = Supervised.spawn(oldRouter.definition, policy, log, oldRouter.tail);
        topology.replaceRouter(restarted);
        await restarted.waitHealthy();
        return `previous router pid ${restarted.handle.pid}, OPENCODE_URL=${topology.engine.definition.url}`;
      });
    }
    if (parts.newEngine) {
      const newEngine = parts.newEngine;
      await undo("rollback:stop-new-engine", async () => {
        if (parts.newUpstream) await drain(parts.newUpstream, 10_000);
        await newEngine.stop("upgrade rolled back");
        return `new engine pid ${newEngine.handle.pid} stopped`;
      });
    }
    return clean;
  }
}
