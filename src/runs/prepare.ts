import { persistLayout } from "../contract/layout.js";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { defaultManifest, loadManifest, sidecarsFor } from "../manifest/index.js";
import type { SidecarName } from "../sidecars/names.js";
import { hostTarget, sandboxTarget, type Target } from "../sidecars/platform.js";
import type { SourcePolicy } from "../sources/resolve.js";
import { readCurrentRuntime } from "../staging/current-runtime.js";
import { gcRuntimes, stageRuntime, verifyStagedRuntime } from "../staging/index.js";
import { resolveRuntime } from "../staging/stage.js";
import { checkReportedVersions } from "../staging/versions.js";
import { openStore } from "../store/store.js";
import type { RunRecord } from "./record.js";

/** What the user asked of the runtime's sidecars: a manifest, and where sidecars may come from. */
export interface RuntimeRequest {
  manifest?: string | undefined;
  sources?: SourcePolicy | undefined;
}

export interface PreparedRuntime {
  runtimeId: string;
  /** the staged runtime directory on the host */
  dir: string;
  target: Target;
  /** what runtime.json pins (what the processes must report once they run) */
  pinned: RunRecord["versions"];
}

/** The manifest, target and sidecars a runtime request means (checked: the router must be available). */
async function planOf(request: RuntimeRequest & { sandboxed: boolean; router: boolean }) {
  const target = request.sandboxed ? sandboxTarget() : hostTarget();
  const manifest = request.manifest ? await loadManifest(request.manifest) : await defaultManifest(target);
  const wanted: SidecarName[] = ["opencode", "openwork-server", "node"];
  if (request.router) {
    const available =
      sidecarsFor(manifest, target).includes("opencode-router") ||
      request.sources?.external?.["opencode-router"];
    if (!available) {
      throw new OpenworkError(
        `the router is asked for, but the manifest has no opencode-router for ${target}`,
        {
          code: "router_unavailable",
          exitCode: 2,
          hint: "give a router binary, or a manifest that carries opencode-router",
        },
      );
    }
    wanted.push("opencode-router");
  }
  return { target, manifest, wanted };
}

/**
 * The runtime id a request would stage, resolved and verified but staged
 * nowhere: what a start compares with the runtime already running.
 */
export async function plannedRuntimeId(
  request: RuntimeRequest & { sandboxed: boolean; router: boolean; log: Logger },
): Promise<string> {
  return (await resolveRequest(request)).runtimeId;
}

/** A request resolved (every sidecar verified in the store), not yet staged: its runtime id is known. */
export interface ResolvedRequest {
  runtimeId: string;
  target: Target;
  manifest: Awaited<ReturnType<typeof planOf>>["manifest"];
  wanted: SidecarName[];
  store: ReturnType<typeof openStore>;
  resolution: Awaited<ReturnType<typeof resolveRuntime>>;
  sources: SourcePolicy | undefined;
}

/** Resolve and verify the sidecars a request means: the runtime id, before anything is staged. */
export async function resolveRequest(
  request: RuntimeRequest & { sandboxed: boolean; router: boolean; log: Logger },
): Promise<ResolvedRequest> {
  const { target, manifest, wanted } = await planOf(request);
  const store = openStore({ log: request.log });
  const resolution = await resolveRuntime({
    manifest,
    target,
    sources: request.sources,
    log: request.log,
    only: wanted,
    store,
  });
  return {
    runtimeId: resolution.runtimeJson.runtimeId,
    target,
    manifest,
    wanted,
    store,
    resolution,
    sources: request.sources,
  };
}

/**
 * Stage a resolved request into `stagingRoot`/runtimes (the host substrate's
 * persisted directory, or a directory beside a sandbox's, mounted read-only
 * into it), then verify the staged files again — they are what will be
 * executed (cheap through the stat cache; a tampered file is refused with
 * both hashes) — and check the versions they report (once per content hash:
 * the store's version cache). Older runtimes not in use are garbage-collected.
 */
export async function stageResolved(
  resolved: ResolvedRequest,
  options: {
    stagingRoot: string;
    log: Logger;
    /** runtime ids still in use (other runs of this workspace), kept by gc */
    inUse?: string[];
  },
): Promise<PreparedRuntime> {
  const { store } = resolved;
  const { log } = options;
  const staged = await stageRuntime({
    manifest: resolved.manifest,
    target: resolved.target,
    stagingRoot: options.stagingRoot,
    sources: resolved.sources,
    log,
    only: resolved.wanted,
    store,
    resolved: resolved.resolution,
  });
  const runtimeJson = await verifyStagedRuntime(staged.dir, { statCache: store.statCache });
  await checkReportedVersions(staged.dir, runtimeJson, { cache: store.versions, log });
  await gcRuntimes(options.stagingRoot, [staged.runtimeId, ...(options.inUse ?? [])], { log }).catch(
    (error: unknown) => log.warn({ err: error }, "could not garbage-collect old runtimes"),
  );
  return {
    runtimeId: staged.runtimeId,
    dir: staged.dir,
    target: resolved.target,
    pinned: {
      opencode: staged.sidecars.opencode?.version ?? null,
      router: staged.sidecars["opencode-router"]?.version ?? null,
      server: staged.sidecars["openwork-server"]?.version ?? null,
    },
  };
}

/** Resolve, then stage (resolveRequest + stageResolved). */
export async function prepareRuntime(
  request: RuntimeRequest & {
    stagingRoot: string;
    sandboxed: boolean;
    router: boolean;
    log: Logger;
    inUse?: string[];
  },
): Promise<PreparedRuntime> {
  return stageResolved(await resolveRequest(request), request);
}

/**
 * state/current-runtime names the runtime that runs in this workspace (the
 * server writes it when it starts and after an upgrade). A start runs what it
 * was asked for (a manifest, or this openwork's pins), so when that differs
 * from what the last upgrade left, say so out loud.
 */
export function noteCurrentRuntime(persistDir: string, runtimeId: string, log: Logger): void {
  const previous = readCurrentRuntime(persistLayout(persistDir));
  if (previous && previous !== runtimeId) {
    log.warn(
      { previous, starting: runtimeId },
      "this workspace last ran another runtime (e.g. after `openwork runtime upgrade`); starting the one asked for — pass --manifest to choose",
    );
  }
}
