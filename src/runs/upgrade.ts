import { isFinished, type Upgradable, type UpgradeOperation } from "../contract/api.js";
import { persistLayout } from "../contract/layout.js";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { done, notYet, pollUntil, WaitAbortedError, WaitTimeoutError } from "../retry/poll.js";
import { LABEL_HOME, LABEL_MANAGED } from "../sandbox/backend.js";
import { DockerBackend } from "../sandbox/docker/docker-backend.js";
import { readCurrentRuntime } from "../staging/current-runtime.js";
import { ApiCallError, RuntimeClient } from "./client.js";
import { prepareRuntime } from "./prepare.js";
import { backendOf } from "./reconcile.js";
import { engineOf, type RunRecord, type RunSecrets, stagingRootOf } from "./record.js";
import type { RunRegistry } from "./registry.js";
import { recordVersions } from "./versions.js";

export type { UpgradeOperation };

/** How the CLI words each refusal of an upgrade, by the server's code. */
export function upgradeRefusal(error: ApiCallError): OpenworkError {
  switch (error.apiCode) {
    case "upgrade_in_progress":
      return new OpenworkError(
        `another upgrade${error.operationId ? ` (${error.operationId})` : ""} is running in this runtime`,
        {
          code: "upgrade_in_progress",
          hint: "wait for it to finish (openwork runtime versions shows the target)",
        },
      );
    case "runtime_unhealthy":
      return new OpenworkError(
        `the runtime is not healthy, so there is nothing safe to roll back to: ${error.apiMessage}`,
        {
          code: "runtime_unhealthy",
          hint: "upgrade once `openwork status` says healthy (or start it again with --replace)",
        },
      );
    default:
      return new OpenworkError(`the server refused the upgrade: ${error.apiCode}: ${error.apiMessage}`, {
        code: "upgrade_refused",
        hint: error.hint,
      });
  }
}

/**
 * Drive a rolling upgrade from the host: stage the new runtime into the run's
 * persisted directory (where the server, in any substrate, sees it), then ask
 * the server to upgrade to it and follow the operation to its end.
 */
export async function upgradeRun(options: {
  registry: RunRegistry;
  record: RunRecord;
  secrets: RunSecrets;
  manifest: string;
  components?: Upgradable[] | undefined;
  log: Logger;
  signal?: AbortSignal;
  onProgress?: (operation: UpgradeOperation) => void;
  timeoutMs?: number;
}): Promise<UpgradeOperation> {
  const { record, secrets, log } = options;
  // (a shipped run's current-runtime file is in its volume; its record's runtime is the one in use)
  const current = record.shipped ? undefined : readCurrentRuntime(persistLayout(record.persistDir));
  const staged = await prepareRuntime({
    manifest: options.manifest,
    stagingRoot: stagingRootOf(record),
    sandboxed: record.sandbox !== "none",
    router: record.router,
    log,
    // The running runtime (and what the server last recorded as current) must survive gc.
    inUse: [record.runtimeId, current].filter((id): id is string => Boolean(id)),
  });
  // A shipped run sees runtimes in its engine's runtimes volume: the new one goes there, as at its start.
  if (record.sandbox === "swarm")
    throw new OpenworkError(
      `run ${record.runId} runs on Swarm: it is upgraded by a Swarm update (upgradeSwarmRun)`,
      {
        code: "upgrade_refused",
      },
    );
  if (record.shipped?.runtimesVolume) {
    const backend = backendOf(record);
    if (!(backend instanceof DockerBackend) || !record.image)
      throw new OpenworkError(
        `run ${record.runId} is recorded as shipped but not as a Docker run with an image`,
        {
          code: "record_invalid",
        },
      );
    const { shipRuntime } = await import("../shipping/index.js");
    const sent = await shipRuntime({
      docker: backend.docker,
      engine: engineOf(record) ?? "",
      image: record.image,
      runtimesVolume: record.shipped.runtimesVolume,
      runtimeDir: staged.dir,
      runtimeId: staged.runtimeId,
      labels: { [LABEL_MANAGED]: "1", [LABEL_HOME]: options.registry.homeId() },
      log,
    });
    log.info({ runtimeId: staged.runtimeId, bytes: sent.shippedBytes }, "new runtime shipped to the engine");
  }
  log.info({ runtimeId: staged.runtimeId }, "new runtime staged; asking the server to upgrade");
  const client = new RuntimeClient(record.url as string, {
    client: secrets.clientToken,
    host: secrets.hostToken,
  });
  let started: UpgradeOperation;
  try {
    started = await client.upgrade({
      runtimeId: staged.runtimeId,
      ...(options.components ? { components: options.components } : {}),
    });
  } catch (error) {
    if (error instanceof ApiCallError) throw upgradeRefusal(error);
    throw error;
  }
  let last = "";
  try {
    const operation = await pollUntil(
      async () => {
        const operation = await client.operation(started.operationId);
        const marker = `${operation.state}:${operation.step ?? ""}`;
        if (marker !== last) {
          last = marker;
          options.onProgress?.(operation);
        }
        return isFinished(operation.state) ? done(operation) : notYet(`step ${operation.step ?? "?"}`);
      },
      {
        what: `upgrade ${started.operationId} to finish`,
        pace: { intervalMs: 250 },
        deadlineMs: options.timeoutMs ?? 10 * 60_000,
        signal: options.signal,
      },
    );
    if (operation.state === "succeeded") {
      await options.registry.update(record.runId, {
        runtimeId: staged.runtimeId,
        versions: recordVersions(await client.versions()),
      });
    }
    return operation;
  } catch (error) {
    if (error instanceof WaitTimeoutError)
      throw new OpenworkError(
        `upgrade ${started.operationId} did not finish in time; it goes on in the server`,
        {
          code: "upgrade_timeout",
        },
      );
    if (error instanceof WaitAbortedError)
      throw new OpenworkError(`stopped following upgrade ${started.operationId}; it goes on in the server`, {
        code: "interrupted",
        hint: "openwork runtime versions shows the result",
      });
    throw error;
  }
}
