import type http from "node:http";
import type { Duplex } from "node:stream";
import type { NextGeneration } from "../contract/handoff.js";
import type { Upstream } from "./proxy.js";
import type { StagedRuntime } from "./runtime-files.js";
import type { Supervised } from "./supervisor.js";

/** What answers on the listening socket: the request and upgrade listeners of one generation. */
export interface Listener {
  server: http.Server;
  handler: http.RequestListener;
  upgradeHandler: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * What one server generation is made of: the engine and the upstream the proxy
 * sends to, the router, and the runtime they run from. It changes only through
 * the named transitions below, which the upgrade runner (and its rollback) use;
 * everything else reads it.
 */
export class Topology {
  #engine: Supervised;
  #upstream: Upstream;
  #router: Supervised | undefined;
  #runtime: StagedRuntime;
  #retired = false;

  constructor(init: {
    engine: Supervised;
    upstream: Upstream;
    router: Supervised | undefined;
    runtime: StagedRuntime;
  }) {
    this.#engine = init.engine;
    this.#upstream = init.upstream;
    this.#router = init.router;
    this.#runtime = init.runtime;
  }

  get engine(): Supervised {
    return this.#engine;
  }

  get upstream(): Upstream {
    return this.#upstream;
  }

  get router(): Supervised | undefined {
    return this.#router;
  }

  /** the runtime this generation runs (runtime.json pins its versions) */
  get runtime(): StagedRuntime {
    return this.#runtime;
  }

  /** a newer generation answers requests: this one only finishes what it had started */
  get retired(): boolean {
    return this.#retired;
  }

  /**
   * Send every request from now on to `engine` through `upstream` (one
   * assignment; requests in flight finish where they are) and move the watch
   * to it. Returns what was there, to switch back on a rollback.
   */
  switchEngine(engine: Supervised, upstream: Upstream): { engine: Supervised; upstream: Upstream } {
    const previous = { engine: this.#engine, upstream: this.#upstream };
    this.#engine = engine;
    this.#upstream = upstream;
    previous.engine.unwatch();
    engine.watch();
    return previous;
  }

  /** The router is now `router` (already started and healthy): watch it. */
  replaceRouter(router: Supervised): void {
    this.#router = router;
    router.watch();
  }

  /** The upgrade has committed: this generation now runs `runtime` (a retired generation keeps its own). */
  adoptRuntime(runtime: StagedRuntime): void {
    if (!this.#retired) this.#runtime = runtime;
  }

  /**
   * Hand the listening socket to the next generation: its listeners replace
   * ours (the socket and every open connection stay), this generation stops
   * supervising, and the next one starts.
   */
  swapHandler(current: Listener, next: NextGeneration): void {
    current.server.removeListener("request", current.handler);
    current.server.on("request", next.handler);
    current.server.removeListener("upgrade", current.upgradeHandler);
    current.server.on("upgrade", next.upgradeHandler);
    this.#retired = true;
    this.detach();
    next.activate();
  }

  watch(): void {
    this.#engine.watch();
    this.#router?.watch();
  }

  /** Stop supervising without touching the processes (a newer generation adopts them). */
  detach(): void {
    this.#engine.unwatch();
    this.#router?.unwatch();
    this.#engine.tail.stop();
    this.#router?.tail.stop();
  }

  /** Graceful stop of the whole runtime: the router, then the engine. */
  async shutdown(reason: string): Promise<void> {
    await this.#router?.stop(reason);
    await this.#engine.stop(reason);
    this.#engine.tail.stop();
    this.#router?.tail.stop();
  }
}
