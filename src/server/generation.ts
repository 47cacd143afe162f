import type http from "node:http";
import type { Logger } from "pino";
import { routerEnabled, type ServeEnv } from "../contract/env.js";
import { type PersistLayout, persistLayout } from "../contract/layout.js";
import { OpenworkError, StartFailedError } from "../errors/errors.js";
import { Wakeup } from "../retry/poll.js";
import { writeCurrentRuntime } from "../staging/current-runtime.js";
import { engineAuthorization, engineDefinition, routerDefinition } from "./components.js";
import { createDispatcher } from "./dispatch.js";
import { watchWrites, writtenSince } from "./logtail.js";
import { adopt, reapStaleChildren, useChildLedger } from "./proc.js";
import { createUpstream } from "./proxy.js";
import { Readiness } from "./readiness.js";
import { proxyRoutes, proxyUpgrades } from "./routes/proxy.js";
import { systemRoutes } from "./routes/system.js";
import { tokenRoutes } from "./routes/tokens.js";
import { upgradeRoutes } from "./routes/upgrade.js";
import { loginRoutes, webUiRoute, webUiUpgrade } from "./routes/web.js";
import { readRuntime, sidecarPath } from "./runtime-files.js";
import { defaultPolicy, Supervised } from "./supervisor.js";
import { TokenStore } from "./tokens.js";
import { type Listener, Topology } from "./topology.js";
import { UpgradeRunner } from "./upgrade.js";
import { OperationStore } from "./upgrade-record.js";
import { WebLogins } from "./web-sessions.js";

export interface GenerationOptions {
  env: ServeEnv;
  log: Logger;
  server: http.Server;
  /** set when this generation takes over from a previous one during an upgrade */
  handoff?: { operationId: string } | undefined;
}

/**
 * One generation of the runtime server: the components it adopted (its
 * topology), the upgrade runner that may change them, and the request
 * listeners built from the contract's endpoints. A rolling upgrade of the
 * server builds the next generation from the new bundle and swaps listeners.
 */
export class Generation {
  readonly listener: Listener;
  /**
   * Settles when the start is over: at once when the entrypoint saw the engine healthy; for an
   * engine that boots beside this server, when it is healthy (then it is watched), or rejects
   * with why it never was (the server then ends the start: src/server/serve.ts).
   */
  booted: Promise<void> = Promise.resolve();

  private constructor(
    readonly topology: Topology,
    readonly readiness: Readiness,
    server: http.Server,
    handler: Pick<Listener, "handler" | "upgradeHandler">,
  ) {
    this.listener = { server, ...handler };
  }

  /** Adopt the processes the environment names (started by the entrypoint, or by the previous generation). */
  static async create(options: GenerationOptions): Promise<Generation> {
    const { env, log } = options;
    const layout = persistLayout(env.OPENWORK_PERSIST, env.OPENWORK_RUNTIMES);
    if (!options.handoff) {
      const reaped = reapStaleChildren(layout.childrenFile);
      if (reaped.length > 0)
        log.warn({ processes: reaped }, "stopped processes a previous server had started and left behind");
    }
    useChildLedger(layout.childrenFile);
    if (!options.handoff) {
      // What runs here now (the CLI only reads this: it never writes into a persisted directory a sandbox can write).
      try {
        writeCurrentRuntime(layout, env.OPENWORK_RUNTIME_ID);
      } catch (error) {
        log.warn({ err: error }, "could not record the current runtime in state/current-runtime");
      }
    }
    const policy = defaultPolicy(env.OPENWORK_HEALTH_DEADLINE_S * 1000, env.OPENWORK_LOG_MAX_BYTES);
    const runtime = readRuntime(layout, env.OPENWORK_RUNTIME_ID);
    const engine = adoptEngine(options, layout, policy);
    const router = routerEnabled(env)
      ? adoptRouter(options, layout, policy, () => topology.engine.definition.url)
      : undefined;
    const topology = new Topology({
      engine,
      router,
      runtime,
      upstream: createUpstream(
        `${engine.definition.runtimeId}:${engine.definition.port}`,
        engine.definition.port,
        engineAuthorization(env),
      ),
    });
    // An engine still booting (the entrypoint started this server beside it) is waited for here.
    const booting = !options.handoff && env.OPENWORK_ENGINE_BOOTING === true;
    const readiness = booting ? Readiness.starting() : Readiness.ready();
    const operations = new OperationStore(layout);
    const tokens = new TokenStore(env.OPENWORK_TOKEN_SHA256, env.OPENWORK_HOST_KEY);
    let generation: Generation | undefined;
    const upgrades = new UpgradeRunner({
      topology,
      env,
      layout,
      log,
      operations,
      policy,
      listener: () => (generation as Generation).listener,
    });
    const web = { topology, policy, env, log, logins: new WebLogins() };
    const dispatcher = createDispatcher({
      routes: [
        ...systemRoutes({
          topology,
          env,
          layout,
          operations,
          runningUpgrade: () => upgrades.running(),
          startedAt: new Date().toISOString(),
          proof: (challenge) => tokens.proof(challenge),
          readiness,
        }),
        ...upgradeRoutes(upgrades, operations),
        ...tokenRoutes(tokens),
        ...proxyRoutes({ topology, policy, env }),
        ...loginRoutes(web),
      ],
      upgrades: proxyUpgrades({ topology, policy, env }),
      fallback: webUiRoute(web),
      fallbackUpgrade: webUiUpgrade(web),
      tokens,
      log,
    });
    generation = new Generation(topology, readiness, options.server, dispatcher);
    if (!options.handoff) {
      const interrupted = operations.markInterrupted();
      if (interrupted.length > 0)
        log.warn({ operations: interrupted }, "upgrade operations were interrupted by a restart");
    }
    if (booting) {
      // Served at once; the engine is watched (and restarted if it dies) only once it was healthy:
      // before that, its death or its deadline fails the start, as the entrypoint's own wait did.
      const ready = () => {
        readiness.markReady();
        topology.watch();
        log.info({ version: engine.version }, "engine healthy: the runtime is ready");
      };
      // The user's start waits on exactly this moment, but 25-ms probes of a port that still refuses cost
      // this server ~125 ms of CPU over a 3-s boot, taken from the engine booting on the same cores. The
      // engine prints a line when it listens: probed then and every 25 ms after its log first grows,
      // every 500 ms before (or every 25 ms throughout when its log cannot be watched).
      const wake = new Wakeup(25);
      const watcher = watchWrites(engine.definition.logFile, () => wake.fire());
      // Written before it was watched (an engine quicker than this server's boot; coarse mtimes, hence
      // the margin): the fast pace from the start. A previous run's last lines only cost that too.
      if (watcher && writtenSince(engine.definition.logFile, performance.timeOrigin - 2000)) wake.fire();
      const waited = engine.waitHealthy(undefined, watcher ? 500 : 25, watcher ? wake : undefined);
      void waited.finally(() => watcher?.close()).catch(() => undefined);
      generation.booted = waited.then(ready, (error: unknown) => {
        // Healthy, but not the version runtime.json pins (a start that allowed a mismatch): it runs,
        // as when the entrypoint waited; the versions report and `check` name the difference.
        if (error instanceof StartFailedError && error.code === "wrong_version") {
          log.warn({ err: error }, "the engine runs another version than runtime.json pins");
          ready();
          return;
        }
        readiness.markFailed(error instanceof Error ? error.message : String(error));
        throw error;
      });
      return generation;
    }
    // One probe each before serving, so the first summary already has versions.
    await Promise.all(
      [engine, router].map((component) => component?.waitHealthy(3000).catch(() => undefined)),
    );
    // A generation taking over watches only once it is activated: two supervisors must never both restart a process.
    if (!options.handoff) topology.watch();
    return generation;
  }
}

function adoptEngine(
  options: GenerationOptions,
  layout: PersistLayout,
  policy: ReturnType<typeof defaultPolicy>,
): Supervised {
  const { env, log } = options;
  const runtime = readRuntime(layout, env.OPENWORK_ENGINE_RUNTIME_ID ?? env.OPENWORK_RUNTIME_ID);
  return new Supervised(
    engineDefinition(env, {
      runtimeId: runtime.json.runtimeId,
      binary: sidecarPath(runtime, "opencode") as string,
      port: env.OPENWORK_ENGINE_PORT,
      pinnedVersion: runtime.json.sidecars.opencode?.version,
    }),
    adopt(env.OPENWORK_ENGINE_PID),
    policy,
    log,
  );
}

function adoptRouter(
  options: GenerationOptions,
  layout: PersistLayout,
  policy: ReturnType<typeof defaultPolicy>,
  engineUrl: () => string,
): Supervised {
  const { env, log } = options;
  const runtime = readRuntime(layout, env.OPENWORK_ROUTER_RUNTIME_ID ?? env.OPENWORK_RUNTIME_ID);
  const binary = sidecarPath(runtime, "opencode-router");
  if (!binary) {
    throw new OpenworkError(
      `runtime ${runtime.json.runtimeId} has no opencode-router sidecar, but the router is enabled`,
      { code: "runtime_invalid" },
    );
  }
  return new Supervised(
    routerDefinition(env, {
      runtimeId: runtime.json.runtimeId,
      binary,
      healthPort: env.OPENWORK_ROUTER_HEALTH_PORT as number,
      pinnedVersion: runtime.json.sidecars["opencode-router"]?.version,
      engineUrl,
    }),
    adopt(env.OPENWORK_ROUTER_PID as number),
    policy,
    log,
  );
}
