/**
 * Whether the runtime is ready: the engine (and router) healthy once since
 * the server started. A server started while the engine boots is "starting"
 * until then; one started after the entrypoint saw them healthy is ready at
 * once. Clients learn the change from a long-poll (GET /system/ready), not by
 * polling at an interval.
 */
export class Readiness {
  #state: "starting" | "ready" | "failed";
  #at: string | undefined;
  #reason: string | undefined;
  /** this server waited for the engine (it started beside it), so it saw the moment it became healthy */
  readonly #waitedForEngine: boolean;
  #settle!: () => void;
  readonly #settled: Promise<void>;

  private constructor(state: "starting" | "ready") {
    this.#state = state;
    this.#waitedForEngine = state === "starting";
    if (state === "ready") this.#at = new Date().toISOString();
    this.#settled = new Promise<void>((resolve) => {
      this.#settle = resolve;
    });
    if (state === "ready") this.#settle();
  }

  /** The entrypoint saw the components healthy before the server started. */
  static ready(): Readiness {
    return new Readiness("ready");
  }

  /** The server waits for the engine itself. */
  static starting(): Readiness {
    return new Readiness("starting");
  }

  get state(): "starting" | "ready" | "failed" {
    return this.#state;
  }

  /** when it became ready or failed */
  get at(): string | undefined {
    return this.#at;
  }

  get reason(): string | undefined {
    return this.#reason;
  }

  /** when this server saw the engine healthy first (undefined when the entrypoint did) */
  get engineHealthyAt(): string | undefined {
    return this.#waitedForEngine && this.#state === "ready" ? this.#at : undefined;
  }

  /** The engine is healthy (marked the moment this server saw it). */
  markReady(): void {
    if (this.#state !== "starting") return;
    this.#state = "ready";
    this.#at = new Date().toISOString();
    this.#settle();
  }

  markFailed(reason: string): void {
    if (this.#state !== "starting") return;
    this.#state = "failed";
    this.#at = new Date().toISOString();
    this.#reason = reason;
    this.#settle();
  }

  /** Resolves when ready or failed, or after `ms`, whichever comes first. */
  async wait(ms: number): Promise<void> {
    if (this.#state !== "starting" || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.#settled,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      }),
    ]);
    clearTimeout(timer);
  }
}
