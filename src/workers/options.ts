import type { Logger } from "../logging/logger.js";
import type { RunRegistry } from "../runs/registry.js";
import type { StartOptions } from "../runs/start.js";
import { sourcePolicyFrom } from "../sources/policy.js";
import type { WorkerSpec } from "./config.js";

/**
 * A worker's start, exactly as `openwork start --detach` would make it from
 * the same options typed on the command line: what the file does not say is
 * left undefined, so it takes start's default (and a running runtime is not
 * compared on it).
 */
export function startOptionsFor(
  worker: WorkerSpec,
  context: {
    registry: RunRegistry;
    log: Logger;
    signal?: AbortSignal | undefined;
    replace?: boolean;
    extraLabels?: Record<string, string>;
  },
): StartOptions {
  const start = worker.start;
  return {
    // An uploaded workspace is named by --workspace-upload alone, as on the command line.
    workspace: start.uploadWorkspace ? "" : worker.workspace,
    ...(start.uploadWorkspace ? { workspaceUpload: worker.workspace } : {}),
    ...(start.dockerHost === undefined ? {} : { dockerHost: start.dockerHost }),
    ...(start.publishAddress === undefined ? {} : { publishAddress: start.publishAddress }),
    ...(start.ship === undefined ? {} : { ship: start.ship }),
    ...(start.allowRemote === undefined ? {} : { allowRemote: start.allowRemote }),
    ...(start.registry === undefined ? {} : { imageRegistry: start.registry }),
    ...(start.constraints === undefined ? {} : { constraints: start.constraints }),
    sandbox: start.sandbox,
    image: start.image,
    mounts: start.mounts,
    port: start.port,
    router: start.router,
    replace: context.replace === true,
    limits: { cpus: start.cpus, memoryBytes: start.memoryBytes, pids: start.pids },
    credentials: {
      env: start.env,
      envFiles: start.envFiles,
      ...(start.proxyEnv === undefined ? {} : { proxyEnv: start.proxyEnv }),
      caCert: start.caCert,
      ...(start.hostConfig === undefined ? {} : { hostConfig: start.hostConfig }),
      ...(start.hostAuth === undefined ? {} : { hostAuth: start.hostAuth }),
    },
    ...(start.healthTimeoutMs === undefined ? {} : { healthTimeoutMs: start.healthTimeoutMs }),
    // The rule `start` applies to its flags: an unverified file needs allowExternal.
    runtime: { manifest: start.manifest, sources: sourcePolicyFrom(start) },
    registry: context.registry,
    log: context.log.child({ worker: worker.name }),
    signal: context.signal,
    ...(context.extraLabels ? { extraLabels: context.extraLabels } : {}),
  };
}
