import { readFile } from "node:fs/promises";
import type http from "node:http";
import type { Logger } from "pino";
import { parseServeEnv, type ServeEnv } from "../contract/env.js";
import type { HandoffInput, NextGeneration } from "../contract/handoff.js";
import { errorMessage, OpenworkError, StartFailedError } from "../errors/errors.js";
import { createLogger } from "../logging/logger.js";
import { redactText, registerSecret } from "../logging/redact.js";
import { nodeHttp } from "../net/http.js";
import { applyTimeouts, capUnauthenticated } from "./connections.js";
import { Generation } from "./generation.js";
import { rotateOwnOutput } from "./own-output.js";
import { nodeFeatures, SERVER_VERSION } from "./version.js";

function serverLogger(): Logger {
  return createLogger({ format: "json", name: "openwork-server" });
}

function registerEnvSecrets(env: ServeEnv): void {
  registerSecret(env.OPENWORK_TOKEN_SHA256);
  registerSecret(env.OPENCODE_SERVER_PASSWORD);
}

/**
 * The generation answering requests now, and how to shut it down. Kept on
 * globalThis because a server upgrade loads a second copy of this code (the
 * new bundle) into the same process: the signal handler installed by the
 * first copy must reach the generation that is current now.
 */
const CURRENT = Symbol.for("openwork.server.current-generation");
interface GenerationSlot {
  generation: Generation;
  shutdown(reason: string): Promise<void>;
}
function currentGeneration(): GenerationSlot | undefined {
  return (globalThis as Record<symbol, GenerationSlot | undefined>)[CURRENT];
}
function setCurrentGeneration(slot: GenerationSlot): void {
  (globalThis as Record<symbol, GenerationSlot | undefined>)[CURRENT] = slot;
}

function makeShutdown(server: http.Server, log: Logger): (reason: string) => Promise<void> {
  let stopping: Promise<void> | undefined;
  return (reason) => {
    stopping ??= (async () => {
      log.info({ reason }, "shutting down");
      server.close();
      server.closeIdleConnections();
      await currentGeneration()?.generation.topology.shutdown(reason);
      server.closeAllConnections();
    })();
    return stopping;
  };
}

/**
 * `openwork-server serve`: adopt the engine (and router) the entrypoint
 * started, listen, supervise. Runs until SIGTERM/SIGINT, then stops the
 * router and the engine (SIGTERM, deadline, SIGKILL) and exits 0.
 */
export async function serveMain(): Promise<number> {
  const env = parseServeEnv(process.env);
  registerEnvSecrets(env);
  const log = serverLogger();
  // The server is the runtime's main process (in a container, the one the init waits on):
  // a stray rejection is logged, not allowed to take the engine and router down with it.
  process.on("unhandledRejection", (reason) => log.error({ err: reason }, "unhandled rejection"));
  // Timeouts are enforced by a periodic check: every second, not Node's default 30 s.
  const server = nodeHttp.createServer({ connectionsCheckingInterval: 1000 });
  applyTimeouts(server);
  capUnauthenticated(server);
  rotateOwnOutput(env.OPENWORK_LOG_MAX_BYTES, log);
  const generation = await Generation.create({ env, log, server });
  server.on("request", generation.listener.handler);
  server.on("upgrade", generation.listener.upgradeHandler);
  const shutdown = makeShutdown(server, log);
  setCurrentGeneration({ generation, shutdown });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new OpenworkError(
          `cannot listen on ${env.OPENWORK_SERVER_HOST}:${env.OPENWORK_SERVER_PORT}: ${error.message}`,
          {
            code: "listen_failed",
            hint: "another process holds the port; pick another OPENWORK_SERVER_PORT",
          },
        ),
      ),
    );
    server.listen(env.OPENWORK_SERVER_PORT, env.OPENWORK_SERVER_HOST, () => resolve());
  }).catch(async (error) => {
    await generation.topology.shutdown("the server could not listen");
    throw error;
  });
  log.info(
    {
      version: SERVER_VERSION,
      node: process.versions.node,
      features: nodeFeatures(),
      url: `http://${env.OPENWORK_SERVER_HOST}:${env.OPENWORK_SERVER_PORT}`,
    },
    // Replacing the server during an upgrade swaps handlers on this listener: no reusePort or execve needed.
    "openwork-server listening (upgrades replace it in place by handler swap)",
  );
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      const slot = currentGeneration();
      void (slot?.shutdown ?? shutdown)(`received ${signal}`).then(
        () => resolve(0),
        () => resolve(0),
      );
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    // An engine that boots beside the server and never becomes healthy ends the start, as the
    // entrypoint's own wait would have: the report, the engine's last output, exit 1.
    generation.booted.catch(async (error: unknown) => {
      await reportBootFailure(env, error);
      await shutdown("the engine failed to start");
      resolve(1);
    });
  });
}

/**
 * The entrypoint's words for a component that failed to start (the CLI reads them from the
 * runtime's output to name it: src/runs/wait.ts), then what the engine printed last.
 */
async function reportBootFailure(env: ServeEnv, error: unknown): Promise<void> {
  const exitCode = env.OPENWORK_ENGINE_EXIT_FILE
    ? await keeperExitCode(env.OPENWORK_ENGINE_EXIT_FILE)
    : undefined;
  const what =
    error instanceof StartFailedError && error.code === "health_timeout"
      ? `was not healthy within ${env.OPENWORK_HEALTH_DEADLINE_S}s (${error.message})`
      : exitCode !== undefined
        ? `exited with code ${exitCode} before it was healthy`
        : `failed before it was healthy: ${errorMessage(error)}`;
  const lines = error instanceof StartFailedError ? error.lastOutput : [];
  process.stderr.write(
    `openwork-server: engine ${redactText(what)}; its last output:\n${lines.map((line) => `${redactText(line)}\n`).join("")}`,
  );
}

/** The exit code the entrypoint's keeper recorded; it lands a moment after the process is gone. */
async function keeperExitCode(file: string): Promise<string | undefined> {
  for (let tries = 0; tries < 20; tries++) {
    try {
      const text = (await readFile(file, "utf8")).trim();
      if (/^\d+$/.test(text)) return text;
    } catch {
      // not written yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return undefined;
}

/**
 * Called in a running server, from the new bundle, during an upgrade (the
 * handoff of src/contract/handoff.ts): build a generation that adopts the
 * processes named in `env` on the existing listener. It answers requests
 * only once activated (the caller swaps listeners).
 */
export async function takeOver(input: HandoffInput): Promise<NextGeneration> {
  const env = parseServeEnv(input.env);
  registerEnvSecrets(env);
  const log = serverLogger();
  const generation = await Generation.create({
    env,
    log,
    server: input.server,
    handoff: { operationId: input.operationId },
  });
  return {
    version: SERVER_VERSION,
    handler: generation.listener.handler,
    upgradeHandler: generation.listener.upgradeHandler,
    activate() {
      generation.topology.watch();
      setCurrentGeneration({ generation, shutdown: makeShutdown(input.server, log) });
      log.info(
        { version: SERVER_VERSION, operationId: input.operationId },
        "this server generation now answers requests",
      );
    },
    abandon() {
      generation.topology.detach();
    },
  };
}
