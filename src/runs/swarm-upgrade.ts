import { sandboxEntrypointConfig } from "../entrypoint/write.js";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { done, notYet, pollUntil } from "../retry/poll.js";
import { SwarmBackend } from "../sandbox/swarm/swarm-backend.js";
import { RuntimeClient } from "./client.js";
import { resolveRequest } from "./prepare.js";
import { backendOf } from "./reconcile.js";
import type { RunRecord, RunSecrets } from "./record.js";
import type { RunRegistry } from "./registry.js";
import { swarmImage, waitForPlace } from "./swarm-launch.js";
import { recordVersions } from "./versions.js";

export interface SwarmUpgrade {
  runId: string;
  /** succeeded: the new image runs and answers; rolled_back: Swarm went back to the old one */
  state: "succeeded" | "rolled_back";
  from: { runtimeId: string | null; image: string | null };
  to: { runtimeId: string; image: string };
  /** Swarm's own words on the update (UpdateStatus.Message) */
  message: string | null;
  node: string | null;
  url: string | null;
  durationMs: number;
}

/** UpdateStatus states after which Swarm does nothing more on its own. */
const SETTLED = new Set(["completed", "rollback_completed", "paused", "rollback_paused"]);

/**
 * Upgrade a Swarm runtime with Swarm's own rolling update: the new runtime is
 * baked and pushed like a start's, and the service is updated to it by digest.
 * Swarm replaces the task stop-first (a host-mode port cannot be bound twice
 * on one node), watches the new task's health check, and rolls back to the
 * old image by itself when it does not become healthy (failure_action
 * rollback). The runtime is baked into an image, so the in-place upgrade of
 * `runtime upgrade` (docs/upgrades.md) cannot run there: docs/swarm.md.
 */
export async function upgradeSwarmRun(options: {
  registry: RunRegistry;
  record: RunRecord;
  secrets: RunSecrets;
  manifest: string;
  log: Logger;
  signal?: AbortSignal;
  timeoutMs?: number;
}): Promise<SwarmUpgrade> {
  const { record, log } = options;
  const started = performance.now();
  const backend = backendOf(record);
  if (!(backend instanceof SwarmBackend) || !record.handle || !record.swarm)
    throw new OpenworkError(`run ${record.runId} is not recorded as a Swarm service`, {
      code: "record_invalid",
    });
  const resolved = await resolveRequest({
    manifest: options.manifest,
    sandboxed: true,
    router: record.router,
    log,
  });
  const config = sandboxEntrypointConfig({
    runtimeId: resolved.runtimeId,
    router: record.router,
    healthDeadlineS: 90,
  });
  const image = await swarmImage({ resolved, backend, registry: record.swarm.registry, config, log });
  const service = backend.docker.getService(record.handle.id);
  const before = (await service.inspect()) as ServiceInfo;
  const spec = structuredClone(before.Spec);
  const container = spec.TaskTemplate.ContainerSpec;
  container.Image = image.pinned;
  log.info(
    { image: image.pinned },
    "updating the Swarm service (stop-first, health-gated, rollback on failure)",
  );
  await service.update({ ...spec, version: before.Version.Index });
  const settled = await pollUntil(
    async () => {
      const now = (await service.inspect()) as ServiceInfo;
      const state = now.UpdateStatus?.State ?? "";
      return SETTLED.has(state) ? done(now) : notYet(`update ${state || "starting"}`);
    },
    {
      what: "the Swarm update to settle",
      pace: { intervalMs: 250 },
      deadlineMs: options.timeoutMs ?? 10 * 60_000,
      signal: options.signal,
    },
  );
  const state = settled.UpdateStatus?.State;
  const message = settled.UpdateStatus?.Message ?? null;
  if (state === "paused" || state === "rollback_paused")
    throw new OpenworkError(`the Swarm update stopped (${state}): ${message ?? "no reason given"}`, {
      code: "upgrade_failed",
      hint: `see \`docker service ps ${record.handle.id}\` on the manager`,
    });
  const rolledBack = state === "rollback_completed";
  const placed = await waitForPlace(backend, record.handle, { deadlineMs: 120_000, signal: options.signal });
  const url = `http://${placed.address}:${record.ports.server}`;
  const client = new RuntimeClient(url, {
    client: options.secrets.clientToken,
    host: options.secrets.hostToken,
  });
  await pollUntil(async () => ((await client.healthy()).ok ? done(true) : notYet("not healthy yet")), {
    what: "the upgraded runtime to answer",
    pace: { intervalMs: 250 },
    deadlineMs: 120_000,
    signal: options.signal,
  });
  const versions = recordVersions(await client.versions());
  await options.registry.update(record.runId, {
    url,
    versions,
    ...(rolledBack ? {} : { runtimeId: resolved.runtimeId, image: image.pinned }),
    swarm: { ...record.swarm, node: placed.node, ...(rolledBack ? {} : { image: image.pinned }) },
  });
  return {
    runId: record.runId,
    state: rolledBack ? "rolled_back" : "succeeded",
    from: { runtimeId: record.runtimeId ?? null, image: record.image ?? null },
    to: { runtimeId: resolved.runtimeId, image: image.pinned },
    message,
    node: placed.node,
    url,
    durationMs: Math.round(performance.now() - started),
  };
}

interface ServiceInfo {
  Version: { Index: number };
  Spec: {
    TaskTemplate: { ContainerSpec: { Image: string } };
  } & Record<string, unknown>;
  UpdateStatus?: { State?: string; Message?: string };
}
