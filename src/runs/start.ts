import { createHmac, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import { secretEnv } from "../contract/env.js";
import { newHostToken } from "../contract/host-auth.js";
import { persistLayout, SANDBOX_PATHS } from "../contract/layout.js";
import { hasImports, removeImportDir, writeImportDir } from "../credentials/import-dir.js";
import { installImports } from "../credentials/install.js";
import {
  type CredentialsPlan,
  type CredentialsPlanView,
  type CredentialsRequest,
  describePlan,
  describeSource,
  maskUrl,
  resolveCredentials,
} from "../credentials/plan.js";
import { probeDocker } from "../docker/client.js";
import {
  type EntrypointConfig,
  renderEntrypoint,
  SANDBOX_PORTS,
  sandboxEntrypointConfig,
  writeEntrypoint,
} from "../entrypoint/write.js";
import { errorMessage, OpenworkError, UsageError } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { BAKED_NODE } from "../image/bake-names.js";
import { ensureImage, plannedImage } from "../image/local.js";
import { withLock } from "../locks/lock.js";
import type { Logger } from "../logging/logger.js";
import { registerSecret } from "../logging/redact.js";
import { freeLoopbackPort } from "../net/ports.js";
import { identityOf } from "../processes/identity.js";
import {
  type CreatedSandbox,
  LABEL_HOME,
  LABEL_MANAGED,
  LABEL_RUN,
  LABEL_RUNTIME,
  LABEL_WORKSPACE,
  type LaunchSpec,
  type SandboxBackend,
  type SandboxHandle,
  type ValidatedMount,
} from "../sandbox/backend.js";
import { DockerBackend } from "../sandbox/docker/docker-backend.js";
import { defaultLimits, formatLimits, type SandboxLimits } from "../sandbox/limits.js";
import { type SandboxChoice, selectBackend } from "../sandbox/select.js";
import { SwarmBackend } from "../sandbox/swarm/swarm-backend.js";
import { BAKED_USER, formatUser, giveToSandboxUser, type SandboxUser, sandboxUser } from "../sandbox/user.js";
import {
  ENGINE_WORKSPACE_PREFIX,
  type EngineTarget,
  enginePath,
  engineTarget,
  parseGitWorkspace,
  publishing,
  type ShippedWorkspace,
} from "../shipping/target.js";
import { volumeNames } from "../shipping/volumes.js";
import { CleanupStack } from "./cleanup.js";
import { RuntimeClient } from "./client.js";
import { validateRunMounts } from "./mounts.js";
import { type OptionDifference, RunOptionsDifferError } from "./options-differ.js";
import {
  noteCurrentRuntime,
  plannedRuntimeId,
  type RuntimeRequest,
  resolveRequest,
  stageResolved,
} from "./prepare.js";
import { reconcileWorkspace, retireRun } from "./reconcile.js";
import type { RunRecord, RunSecrets } from "./record.js";
import { RunRegistry } from "./registry.js";
import { PhaseTimer, type StartTimings } from "./timings.js";
import { recordVersions } from "./versions.js";
import { waitHealthy, waitReady } from "./wait.js";

/**
 * What a start asks for. An option left undefined was not asked for: it takes
 * its default for a new run, and is not compared with a run already running.
 */
export interface StartOptions {
  workspace: string;
  /** default: none */
  sandbox?: SandboxChoice | undefined;
  image?: string | undefined;
  mounts: string[];
  /** host port for the server (default: a free one) */
  port?: number | undefined;
  /** default: off */
  router?: boolean | undefined;
  replace: boolean;
  /** publish on all interfaces instead of 127.0.0.1 (default: off) */
  allowRemote?: boolean | undefined;
  /** the Docker engine to run on: an endpoint URL or a docker context (default: DOCKER_HOST, the context) */
  dockerHost?: string | undefined;
  /** publish the server on this address of the engine's host (and form the URL from it) */
  publishAddress?: string | undefined;
  /** ship the runtime and state into volumes even on a local engine (a remote one always ships) */
  ship?: boolean | undefined;
  /** a shipped run's workspace: this local directory, copied into a volume at the first start */
  workspaceUpload?: string | undefined;
  /** a shipped run's workspace: this repository (URL[#REF]), cloned into a volume at the first start */
  workspaceGit?: string | undefined;
  /** Swarm: the registry (HOST[:PORT]) the baked image is pushed to and nodes pull from */
  imageRegistry?: string | undefined;
  /** Swarm: placement constraints in Swarm's syntax (node.hostname==…, node.labels.x==…) */
  constraints?: string[] | undefined;
  /** CPU, memory and process limits of a sandbox; what is not given takes defaultLimits() */
  limits?: Partial<SandboxLimits> | undefined;
  /** the runtime's environment, the user's opencode config and logins, proxies and CAs (default: all imported, no extra env) */
  credentials?: Partial<CredentialsRequest> | undefined;
  healthTimeoutMs?: number;
  runtime: RuntimeRequest;
  registry: RunRegistry;
  log: Logger;
  signal?: AbortSignal | undefined;
  /** extra labels on every sandbox (OPENWORK_LABELS, used by tests) */
  extraLabels?: Record<string, string>;
  /** for tests: fail right after a step, to exercise recovery */
  faults?: { failRetire?: boolean; failStaging?: boolean } | undefined;
  /** times the phases (default: a new timer, counting from this process's start) */
  timer?: PhaseTimer | undefined;
}

export interface StartResult {
  record: RunRecord;
  secrets: RunSecrets;
  secretsFile: string;
  /** true when a healthy run for the workspace already existed and was returned */
  reused: boolean;
  retired: string[];
  /** ms per phase of this start (src/runs/timings.ts) */
  timings: StartTimings;
  /** a shipped run: the sidecar bytes sent to its engine by this start (0: the engine had the runtime) */
  shippedBytes?: number;
}

/**
 * openwork start: resolve → verify → stage → write entrypoint → launch → wait
 * for health → mint the owner token → record. One start per workspace at a
 * time (cross-process lock); a healthy run is returned, not duplicated; any
 * failure or signal on the way tears down everything this start made.
 */
export async function startRun(options: StartOptions): Promise<StartResult> {
  const { registry, log } = options;
  const timer = options.timer ?? new PhaseTimer(log);
  const validated = await timer.time("validate", () => validateStart(options));
  const { workspace, workspaceId, mounts, backend, credentials } = validated;
  for (const rewrite of credentials.proxyRewrites)
    log.info(
      { name: rewrite.name, from: maskUrl(rewrite.from), to: maskUrl(rewrite.to) },
      `${rewrite.name} names this machine's loopback, which in the sandbox is the sandbox: rewritten to the host as seen from there (the proxy must listen on an address the sandbox reaches)`,
    );

  const lockAsked = performance.now();
  return withLock(
    registry.workspaceLock(workspaceId),
    async (lockSignal) => {
      // Losing the workspace lock is handled like Ctrl-C: whatever this start made is removed.
      const signal = options.signal ? AbortSignal.any([options.signal, lockSignal]) : lockSignal;
      const reconciled = await reconcileWorkspace(registry, workspaceId, log);
      await refuseUnrecordedRuntimes(registry, workspaceId, reconciled.live, backend);
      // (with the wait for the workspace lock)
      timer.record("reconcile", performance.now() - lockAsked);
      const current = reconciled.live.find((record) => record.state === "running");
      if (current && !options.replace) {
        const secrets = await registry.readSecrets(current.runId);
        const healthy = current.url ? await new RuntimeClient(current.url).healthy() : { ok: false };
        if (secrets && healthy.ok) {
          // Everything asked for is checked before the running run is handed back: nothing is silently ignored.
          const differences = await differencesFrom(current, options, mounts, log);
          const credentialsDiffer = credentialDifferences(
            current.credentials,
            credentials,
            secrets.clientToken,
          );
          if (credentialsDiffer.length > 0)
            differences.push({
              option: "credentials",
              asked: credentialsDiffer.join(", "),
              running: "the values it was started with",
            });
          if (differences.length > 0) throw new RunOptionsDifferError(current.runId, differences);
          log.info(
            { runId: current.runId, url: current.url },
            "a healthy runtime is already running for this workspace",
          );
          return {
            record: current,
            secrets,
            secretsFile: registry.secretsFile(current.runId),
            reused: true,
            retired: [],
            timings: timer.toJSON(),
          };
        }
        log.warn(
          { runId: current.runId },
          "the recorded runtime for this workspace is not healthy; replacing it",
        );
      }
      // Runtimes of live runs stay staged: gc must not remove what is running.
      const inUse = reconciled.live.flatMap((record) => (record.runtimeId ? [record.runtimeId] : []));
      const result = await launchNew(
        { ...options, signal, timer },
        {
          backend,
          workspace,
          workspaceId,
          mounts,
          credentials,
          engine: validated.engine,
          shipped: validated.shipped,
        },
        current?.runId,
        inUse,
      );
      // Safe handoff: the new runtime is healthy; only now retire the old ones.
      const retired: string[] = [];
      for (const old of reconciled.live) {
        if (old.runId === result.record.runId) continue;
        await retireRun(registry, old, log, { failAfterMarking: options.faults?.failRetire === true });
        retired.push(old.runId);
      }
      return { ...result, retired, timings: timer.toJSON() };
    },
    {
      onWait: () =>
        log.info("another openwork process is starting or stopping this workspace; waiting for it"),
      staleMs: 20_000,
    },
  );
}

/** Everything a start checks before it locks or starts anything: what the user typed, resolved. */
async function validateStart(options: StartOptions) {
  const named = namesEngine(options);
  const sandbox = options.sandbox ?? (named ? "docker" : "none");
  if (sandbox === "swarm") checkSwarmOptions(options);
  else if (options.imageRegistry !== undefined || (options.constraints?.length ?? 0) > 0)
    throw new UsageError("--registry and --constraint apply to --sandbox swarm");
  if (named && sandbox !== "docker" && sandbox !== "auto" && !(sandbox === "swarm" && options.ship !== true))
    throw new UsageError(
      `${options.dockerHost !== undefined ? "--docker-host" : "--ship"} applies to a Docker sandbox, not --sandbox ${sandbox}`,
      "use --sandbox docker",
    );
  const target = targetOf(options, sandbox);
  const place = await placeWorkspace(options, target, sandbox === "swarm");
  const { workspace, workspaceId } = place;
  const mounts = place.shipped ? [] : validateRunMounts(sandbox, options.mounts, workspace);
  if (place.shipped && options.mounts.length > 0)
    throw new UsageError(
      `--mount binds a directory of this machine, which the engine ${target?.endpoint.host} does not share`,
      "drop --mount (upload what the runtime needs with --workspace-upload, or use engine:/path)",
    );
  if (sandbox !== "swarm") publishing(target, options);
  if (Object.keys(definedOnly(options.limits)).length > 0 && sandbox === "none") {
    throw new UsageError(
      "--cpus, --memory and --pids-limit limit a sandbox, and --sandbox none runs host processes, which nothing limits",
      "drop them, or choose --sandbox docker, container or auto",
    );
  }
  if (options.image && sandbox === "none") {
    throw new UsageError(
      "--image applies to a sandbox, and --sandbox none runs host processes",
      "drop --image, or choose --sandbox docker, container or auto",
    );
  }
  const backend = await selectBackend(sandbox, undefined, options.dockerHost ? target?.endpoint : undefined);
  options.log.debug({ sandbox: backend.kind }, "sandbox selected");
  const credentials = await resolveCredentials(credentialsRequest(options.credentials), backend.kind);
  const engine = backend.kind === "docker" || backend.kind === "swarm" ? target : undefined;
  return { workspace, workspaceId, mounts, backend, credentials, engine, shipped: place.shipped };
}

/**
 * What a Swarm start needs and refuses, before anything is asked of the cluster: a registry the
 * nodes pull from; no --mount or --publish-address (a node's files and address are the node's);
 * --allow-remote said out loud, since Swarm publishes on every interface of the node that runs it.
 */
function checkSwarmOptions(options: StartOptions): void {
  if (options.imageRegistry === undefined)
    throw new UsageError(
      "--sandbox swarm needs --registry HOST[:PORT]: Swarm nodes pull the runtime's image from a registry",
      "name one every node trusts, e.g. --registry 10.0.0.1:5000",
    );
  if (options.mounts.length > 0)
    throw new UsageError("--mount binds a directory of this machine, which Swarm nodes do not have");
  if (options.publishAddress !== undefined)
    throw new UsageError(
      "--publish-address does not apply to --sandbox swarm: the runtime is reached on the address of the node that runs it",
    );
  if (options.allowRemote !== true)
    throw new UsageError(
      "Swarm publishes a port on every interface of the node that runs the task (its API has no address for it)",
      "pass --allow-remote to accept that (docs/swarm.md), and keep the nodes' networks private",
    );
}

/** The workspace id a start with these options would run under (what its runs are found by). */
export async function workspaceIdOf(
  options: Pick<
    StartOptions,
    "workspace" | "workspaceUpload" | "workspaceGit" | "dockerHost" | "ship" | "sandbox"
  >,
): Promise<string> {
  const sandbox = options.sandbox ?? (namesEngine(options) ? "docker" : "none");
  return (await placeWorkspace(options, targetOf(options, sandbox), sandbox === "swarm")).workspaceId;
}

/** Naming an engine (or shipping) means Docker when no sandbox is said. */
function namesEngine(options: Pick<StartOptions, "dockerHost" | "ship">): boolean {
  return options.dockerHost !== undefined || options.ship === true;
}

/** The engine a start runs on, for the substrates that have one (a Swarm run's files always live there). */
function targetOf(
  options: Pick<StartOptions, "dockerHost" | "ship">,
  sandbox: SandboxChoice,
): EngineTarget | undefined {
  if (sandbox === "swarm") return { ...engineTarget(options), ship: true };
  return sandbox === "docker" || namesEngine(options) ? engineTarget(options) : undefined;
}

/**
 * The workspace of a start and its identity. At home: a local directory. On
 * an engine that does not share our files: a local directory uploaded into a
 * volume there (`--workspace-upload`), or a directory of the engine's host
 * (`--workspace engine:/path`); each is a workspace of that engine alone.
 */
async function placeWorkspace(
  options: Pick<StartOptions, "workspace" | "workspaceUpload" | "workspaceGit">,
  target: EngineTarget | undefined,
  swarm = false,
): Promise<{ workspace: string; workspaceId: string; shipped?: ShippedWorkspace }> {
  const onEngine = enginePath(options.workspace);
  if (swarm && onEngine === undefined)
    throw new UsageError(
      "a Swarm runtime's workspace is a directory of the nodes' hosts: pass --workspace engine:/path",
      "the same path on every node the service may land on (or constrain it with --constraint); --workspace-upload fills a volume of one engine, which a Swarm task may not run on",
    );
  const named = [
    options.workspace !== "" ? "--workspace" : undefined,
    options.workspaceUpload !== undefined ? "--workspace-upload" : undefined,
    options.workspaceGit !== undefined ? "--workspace-git" : undefined,
  ].filter(Boolean);
  if (named.length > 1) throw new UsageError(`${named.join(" and ")} each name the workspace; give one`);
  if (!target?.ship) {
    if (options.workspaceUpload !== undefined || options.workspaceGit !== undefined || onEngine !== undefined)
      throw new UsageError(
        `${onEngine ? "--workspace engine:" : options.workspaceGit !== undefined ? "--workspace-git" : "--workspace-upload"} is for an engine that does not share this machine's files`,
        "name one with --docker-host (tcp:// or ssh://), or pass --ship",
      );
    const workspace = await resolveWorkspace(options.workspace);
    return { workspace, workspaceId: RunRegistry.workspaceId(workspace) };
  }
  const engine = target.endpoint.host;
  if (options.workspaceGit !== undefined) {
    if (swarm)
      throw new UsageError("--workspace-git fills a volume of one engine, which a Swarm task may not run on");
    const git = parseGitWorkspace(options.workspaceGit);
    const shown = maskUrl(options.workspaceGit);
    return {
      workspace: shown,
      workspaceId: RunRegistry.workspaceId(`${engine}\0git\0${options.workspaceGit}`),
      shipped: { kind: "git", ...git },
    };
  }
  if (options.workspaceUpload !== undefined) {
    const from = await resolveWorkspace(options.workspaceUpload);
    return {
      workspace: from,
      workspaceId: RunRegistry.workspaceId(`${engine}\0upload\0${from}`),
      shipped: { kind: "upload", from },
    };
  }
  if (onEngine === undefined)
    throw new UsageError(
      `the engine ${engine} does not share this machine's files, so the workspace cannot be a directory of it`,
      "pass --workspace-upload DIR (copied into a volume there at the first start) or --workspace engine:/path (a directory of the engine's host)",
    );
  return {
    workspace: `${ENGINE_WORKSPACE_PREFIX}${onEngine}`,
    workspaceId: RunRegistry.workspaceId(`${engine}\0engine\0${onEngine}`),
    shipped: { kind: "engine", path: onEngine },
  };
}

/** What `start --dry-run` reports: everything a start would use, resolved and checked; values masked. */
export interface StartPlan {
  workspace: string;
  workspaceId: string;
  sandbox: SandboxBackend["kind"];
  /** the healthy run a start would return instead of starting one, if any */
  wouldReuse: string | null;
  runtimeId: string;
  image: string | null;
  limits: SandboxLimits | null;
  mounts: Array<{ hostPath: string; containerPath: string; readOnly: boolean }>;
  credentials: CredentialsPlanView;
}

/**
 * `start --dry-run`: resolve and check everything a start would — workspace,
 * substrate, mounts, limits, sidecars, credentials — and launch nothing,
 * write nothing, lock nothing.
 */
export async function planStart(options: StartOptions): Promise<StartPlan> {
  const { registry, log } = options;
  const { workspace, workspaceId, mounts, backend, credentials } = await validateStart(options);
  const sandboxed = backend.kind !== "none";
  const runtimeId = await plannedRuntimeId({
    ...options.runtime,
    sandboxed,
    router: options.router === true,
    log,
  });
  const running = (await registry.list()).records.find(
    (record) => record.workspaceId === workspaceId && record.state === "running",
  );
  const healthy = running?.url ? (await new RuntimeClient(running.url).healthy()).ok : false;
  return {
    workspace,
    workspaceId,
    sandbox: backend.kind,
    wouldReuse: healthy && running && !options.replace ? running.runId : null,
    runtimeId,
    image: sandboxed ? (options.image ?? (await plannedImage())) : null,
    limits: sandboxed ? { ...defaultLimits(), ...definedOnly(options.limits) } : null,
    mounts: mounts.map(({ hostPath, containerPath, readOnly }) => ({ hostPath, containerPath, readOnly })),
    credentials: describePlan(credentials),
  };
}

/** What validateStart settled: where the runtime runs and what it gets. */
interface StartPlace {
  backend: SandboxBackend;
  workspace: string;
  workspaceId: string;
  mounts: ValidatedMount[];
  credentials: CredentialsPlan;
  /** the Docker engine (Docker only) */
  engine: EngineTarget | undefined;
  /** the run's files live on its engine (src/shipping) */
  shipped: ShippedWorkspace | undefined;
}

async function launchNew(
  options: StartOptions & { timer: PhaseTimer },
  place: StartPlace,
  replaces: string | undefined,
  inUse: string[],
): Promise<Omit<StartResult, "retired" | "timings">> {
  const { registry, log, signal, timer } = options;
  const { backend, workspace, workspaceId, mounts, credentials, engine } = place;
  // Swarm: the runtime is baked into an image, the task placed by the cluster (src/runs/swarm-launch.ts).
  const swarm = backend instanceof SwarmBackend ? backend : undefined;
  const shipped = swarm ? undefined : place.shipped;
  const names = place.shipped ? volumeNames(registry.homeId(), workspaceId) : undefined;
  // Tar, ignore rules and progress bars are loaded by the starts that ship, not by every start.
  const shipping = shipped ? await import("../shipping/index.js") : undefined;
  const swarmLaunch = swarm ? await import("./swarm-launch.js") : undefined;
  const cleanup = new CleanupStack();
  const runId = RunRegistry.newRunId();
  const runDir = registry.runDir(runId);
  const persistDir = registry.persistDir(workspaceId, backend.kind);
  const stagingRoot = registry.stagingRoot(workspaceId, backend.kind);
  const sandboxed = backend.kind !== "none";
  const router = options.router === true;
  // Who the sandbox runs as (never root) and what it may use: decided before anything is made.
  const user = swarm ? BAKED_USER : shipped ? shippedUser() : sandboxed ? sandboxUser(workspace) : undefined;
  const limits = sandboxed ? { ...defaultLimits(), ...definedOnly(options.limits) } : undefined;
  const healthMs = options.healthTimeoutMs ?? 90_000;
  const owner = identityOf(process.pid);
  const ports = {
    server: options.port ?? (engine && !engine.local ? remotePort() : await freeLoopbackPort()),
    engine: sandboxed ? SANDBOX_PORTS.engine : await freeLoopbackPort(),
    routerHealth: sandboxed ? SANDBOX_PORTS.routerHealth : await freeLoopbackPort(),
  };
  // On Swarm the address is the node's, known once the task is placed (below).
  const published = swarm ? { hostIp: "0.0.0.0", urlHost: "" } : publishing(engine, options);
  const { hostIp, urlHost } = published;
  // An ssh:// engine: published on its loopback, reached through an SSH tunnel from a local port.
  const tunnelPort = "tunnel" in published ? await freeLoopbackPort() : undefined;
  let url = swarm ? "" : `http://${urlHost}:${tunnelPort ?? ports.server}`;
  let record: RunRecord = {
    version: 1,
    runId,
    workspace,
    workspaceId,
    sandbox: backend.kind,
    state: "starting",
    owner,
    ...(url ? { url } : {}),
    ports,
    persistDir,
    stagingRoot,
    runDir,
    logFile: path.join(runDir, "runtime.log"),
    router,
    allowRemote: options.allowRemote === true,
    ...(engine
      ? { engine: { host: engine.endpoint.host, source: engine.endpoint.source, local: engine.local } }
      : {}),
    ...(place.shipped && names
      ? {
          shipped: {
            persistVolume: names.persist,
            ...(swarm ? {} : { runtimesVolume: names.runtimes }),
            workspace:
              place.shipped.kind === "engine"
                ? { type: "bind" as const, source: place.shipped.path }
                : { type: "volume" as const, source: names.workspace },
            ...(place.shipped.kind === "upload" ? { uploadedFrom: place.shipped.from } : {}),
            ...(place.shipped.kind === "git" ? { clonedFrom: maskUrl(place.shipped.url) } : {}),
          },
        }
      : {}),
    ...(swarm && options.imageRegistry
      ? { swarm: { registry: options.imageRegistry, image: "", constraints: options.constraints ?? [] } }
      : {}),
    ...(options.publishAddress ? { publishAddress: options.publishAddress } : {}),
    ...(limits ? { limits } : {}),
    mounts: mounts.map(({ hostPath, containerPath, readOnly }) => ({ hostPath, containerPath, readOnly })),
    versions: { opencode: null, router: null, server: null },
    createdAt: new Date().toISOString(),
    replaces,
  };
  const secrets: RunSecrets = {
    clientToken: `owc_${randomBytes(24).toString("base64url")}`,
    hostToken: newHostToken(),
    enginePassword: randomBytes(24).toString("base64url"),
  };
  record.credentials = credentialsRecord(credentials, secrets.clientToken);
  await mkdir(persistDir, { recursive: true, mode: 0o700 });
  if (user) giveToSandboxUser(persistDir, user);
  await registry.write(record);
  for (const value of Object.values(secrets)) registerSecret(value);
  const secretsFile = await registry.writeSecrets(runId, secrets);
  const fail = async (reason: string) => {
    await cleanup.run((what, error) => log.warn(`cleanup: ${what} failed: ${errorMessage(error)}`));
    record = { ...record, state: "failed", reason, stoppedAt: new Date().toISOString() };
    await registry.write(record).catch(() => {});
  };
  const checkSignal = () => {
    if (signal?.aborted)
      throw new OpenworkError("start interrupted by a signal; everything it started was removed", {
        code: "interrupted",
      });
  };
  try {
    checkSignal();
    log.info("resolving and verifying sidecars");
    const resolved = await timer.time("resolve", () =>
      resolveRequest({ ...options.runtime, sandboxed, router, log }),
    );
    const runtimeId = resolved.runtimeId;
    noteCurrentRuntime(persistDir, runtimeId, log);
    // Versions stay unknown until the running processes report them (below).
    record = { ...record, runtimeId };
    await registry.write(record);
    checkSignal();
    const runtimesDir = persistLayout(stagingRoot).runtimesDir;
    // The mount's source exists before the sandbox is created (staging fills it meanwhile).
    await mkdir(runtimesDir, { recursive: true });
    const config: EntrypointConfig = sandboxed
      ? sandboxEntrypointConfig({ runtimeId, router, healthDeadlineS: Math.ceil(healthMs / 1000) })
      : {
          persist: persistDir,
          runtimes: runtimesDir,
          runtimeId,
          workspace,
          serverHost: hostIp,
          serverPort: ports.server,
          enginePort: ports.engine,
          router: { enabled: router, healthPort: ports.routerHealth },
          healthDeadlineS: Math.ceil(healthMs / 1000),
          earlyServer: !router,
          // On the host this process installs the imports itself (below).
          importsInstalled: true,
        };
    // The user's config, logins and CA bundle, for the entrypoint to install (then removed, below).
    // Nothing to import: no directory, and the entrypoint starts no install step for it.
    const importDir = hasImports(credentials)
      ? registry.importDir(workspaceId, backend.kind, runId)
      : undefined;
    if (importDir) {
      cleanup.push("remove the imports", () => removeImportDir(importDir));
      await writeImportDir(importDir, credentials, user);
    }
    // On the host this process is the runtime's user on the runtime's own files: it installs the imports
    // itself, as the entrypoint would (a Node process the engine would wait for), and drops the copies.
    if (!sandboxed && (importDir || existsSync(persistLayout(persistDir).importedFile))) {
      const hostLayout = persistLayout(persistDir);
      for (const note of installImports({
        from: importDir,
        persist: persistDir,
        configHome: hostLayout.configHome,
        dataHome: hostLayout.dataHome,
      }))
        log.info(note);
      if (importDir) await removeImportDir(importDir);
    }
    const runtimeLayout = persistLayout(sandboxed ? SANDBOX_PATHS.persist : persistDir);
    // A shipped run's imports go into its persisted volume under a name of this run (no bind of ours).
    const shippedImports = `.import-${runId}`;
    const labels = {
      [LABEL_MANAGED]: "1",
      [LABEL_HOME]: registry.homeId(),
      [LABEL_RUN]: runId,
      [LABEL_WORKSPACE]: workspaceId,
      [LABEL_RUNTIME]: runtimeId,
      ...options.extraLabels,
    };
    const spec: LaunchSpec = {
      runId,
      image: "",
      workspace,
      persistDir,
      runtimesDir,
      mounts,
      command: [
        "sh",
        shipping
          ? shipping.shippedEntrypoint(runtimeId, renderEntrypoint(config))
          : sandboxed
            ? persistLayout(SANDBOX_PATHS.persist, SANDBOX_PATHS.runtimes).entrypoint(runtimeId)
            : persistLayout(stagingRoot).entrypoint(runtimeId),
      ],
      // The user's values first: the run's own settings can never be overridden (reserved names are refused anyway).
      env: {
        ...Object.fromEntries(credentials.env.map((entry) => [entry.name, entry.value])),
        ...(credentials.ca
          ? { NODE_EXTRA_CA_CERTS: runtimeLayout.caExtraFile, SSL_CERT_FILE: runtimeLayout.caBundleFile }
          : {}),
        ...(importDir && sandboxed
          ? {
              OPENWORK_IMPORT: swarm
                ? SANDBOX_PATHS.swarmImports
                : shipped
                  ? `${SANDBOX_PATHS.persist}/${shippedImports}`
                  : SANDBOX_PATHS.imports,
            }
          : {}),
        // The web UI's Host check (docs/web-ui.md): the address a browser uses is the published one.
        ...(sandboxed ? { OPENWORK_PUBLISHED_PORT: String(tunnelPort ?? ports.server) } : {}),
        ...secretEnv(secrets),
      },
      imports: sandboxed && !shipped && !swarm ? importDir : undefined,
      storage: record.shipped
        ? {
            persistVolume: record.shipped.persistVolume,
            runtimesVolume: record.shipped.runtimesVolume,
            workspace: record.shipped.workspace,
          }
        : undefined,
      ports: sandboxed ? [{ container: SANDBOX_PORTS.server, host: ports.server, hostIp }] : [],
      labels,
      user: user ? formatUser(user) : undefined,
      limits,
      logFile: record.logFile,
    };
    // Registered before anything is created: a signal that lands mid-create still finds the sandbox by its run label.
    cleanup.push("remove the sandbox", async () => {
      for (const found of await backend.list({ [LABEL_RUN]: runId })) {
        await backend.stop(found, 2000);
        await backend.remove(found);
      }
    });
    // Independent of each other, so at the same time: staging (links, verification, version
    // checks) on one side; the image check and, where the substrate has that step, creating the
    // sandbox on the other. Both finish before anything is judged, so a failure never leaves
    // one of them running unseen.
    if (swarm && swarmLaunch && user && options.imageRegistry) {
      const baked = await timer.time("image", () =>
        swarmLaunch.swarmImage({
          resolved,
          backend: swarm,
          registry: options.imageRegistry as string,
          config,
          sandboxImage: options.image,
          log,
        }),
      );
      spec.image = baked.pinned;
      record = {
        ...record,
        image: baked.pinned,
        ...(record.swarm ? { swarm: { ...record.swarm, image: baked.pinned } } : {}),
      };
      cleanup.push("remove the run's secrets", () => swarm.removeSecrets(runId));
      spec.swarm = {
        constraints: options.constraints ?? [],
        nodeBinary: BAKED_NODE,
        secrets: importDir
          ? await swarmLaunch.importSecrets({ backend: swarm, importDir, runId, labels })
          : [],
        uid: user.uid,
        gid: user.gid,
      };
    }
    const [staging, sandbox] = await Promise.allSettled([
      timer.time("stage", async () => {
        if (options.faults?.failStaging)
          throw new OpenworkError("staging failed (fault injected by a test)", { code: "fault" });
        // (Swarm's runtime was staged and baked into its image above.)
        return swarm ? undefined : stageResolved(resolved, { stagingRoot, log, inUse });
      }),
      (async (): Promise<CreatedSandbox | undefined> => {
        if (!sandboxed || swarm) return undefined;
        spec.image = options.image ?? (await timer.time("image", () => ensureImage(backend.kind, log)));
        record = { ...record, image: spec.image };
        if (shipped && names && user && backend instanceof DockerBackend)
          await timer.time("volumes", () =>
            prepareEngine({
              backend,
              image: spec.image,
              names,
              shipped,
              user,
              labels,
              persistDir,
              log,
              shipping: shipping as ShippingModule,
            }),
          );
        const create = backend.create?.bind(backend);
        return create ? timer.time("create", () => create(spec)) : undefined;
      })(),
    ]);
    if (staging.status === "rejected") throw staging.reason;
    if (sandbox.status === "rejected") throw sandbox.reason;
    const runtime = staging.value;
    checkSignal();
    if (runtime) await writeEntrypoint(runtime.dir, config);
    checkSignal();
    let shippedBytes: number | undefined;
    if (runtime && shipped && names && user && backend instanceof DockerBackend) {
      const sent = await timer.time("ship", () =>
        (shipping as ShippingModule).shipRuntime({
          docker: backend.docker,
          engine: backend.endpoint?.host ?? "",
          image: spec.image,
          runtimesVolume: names.runtimes,
          runtimeDir: runtime.dir,
          runtimeId,
          labels: { [LABEL_MANAGED]: "1", [LABEL_HOME]: registry.homeId(), ...options.extraLabels },
          log,
        }),
      );
      shippedBytes = sent.shippedBytes;
      if (importDir)
        await (shipping as ShippingModule).uploadDirectory({
          docker: backend.docker,
          image: spec.image,
          volume: names.persist,
          from: importDir,
          into: shippedImports,
          owner: user,
          gitignore: false,
          labels,
          log,
          label: "sending your opencode config and logins",
        });
      checkSignal();
    }
    log.info({ sandbox: backend.kind, runtime: runtimeId }, "launching the runtime");
    const handle: SandboxHandle = await timer.time("launch", () =>
      sandbox.value ? sandbox.value.start() : backend.launch(spec),
    );
    const launched = { at: performance.now(), wall: Date.now() };
    cleanup.push("stop the sandbox", async () => {
      await backend.stop(handle, 3000);
      await backend.remove(handle);
    });
    record = {
      ...record,
      handle: { kind: handle.kind, id: handle.id, ...(handle.engine ? { engine: handle.engine } : {}) },
    };
    if (swarm && swarmLaunch) {
      // The server is published on the node that runs the task: the URL is known once Swarm placed it.
      const placed = await timer.time("place", () =>
        swarmLaunch.waitForPlace(swarm, handle, { deadlineMs: healthMs + 60_000, signal }),
      );
      url = `http://${placed.address.includes(":") ? `[${placed.address}]` : placed.address}:${ports.server}`;
      record = {
        ...record,
        url,
        ...(record.swarm ? { swarm: { ...record.swarm, node: placed.node } } : {}),
      };
      log.info({ node: placed.node, url }, "the Swarm task runs");
    }
    if (tunnelPort !== undefined && engine) {
      const { openTunnel, closeTunnel } = await import("../shipping/tunnel.js");
      const tunnel = await timer.time("tunnel", () =>
        openTunnel({
          target: engine.endpoint.host,
          localPort: tunnelPort,
          remotePort: ports.server,
          logFile: path.join(runDir, "tunnel.log"),
        }),
      );
      cleanup.push("close the SSH tunnel", async () => closeTunnel(tunnel));
      record = { ...record, tunnel };
      log.info({ url, via: engine.endpoint.host }, "SSH tunnel open");
    }
    // Recorded while the runtime boots: nothing waits on this write.
    const handleRecorded = registry.write(record);

    const client = new RuntimeClient(url, { client: secrets.clientToken, host: secrets.hostToken });
    const wait = {
      client,
      backend,
      handle,
      // The entrypoint gives the engine and then the router a deadline each; the server follows.
      deadlineMs: healthMs * (router ? 2 : 1) + 15_000,
      signal,
      onWaiting: (elapsed: number) =>
        log.info(`waiting for the runtime to be healthy (${Math.round(elapsed / 1000)} s)`),
    };
    await waitHealthy(wait);
    timer.record("serverHealthy", performance.now() - launched.at);
    const ready = await waitReady({
      ...wait,
      deadlineMs: Math.max(1000, wait.deadlineMs - (performance.now() - launched.at)),
    });
    timer.record("ready", performance.now() - launched.at);
    if (ready.engineHealthyAt)
      timer.record("engineHealthy", Date.parse(ready.engineHealthyAt) - launched.wall);
    checkSignal();
    const recordedAt = performance.now();
    await handleRecorded;
    const [owner, versions] = await Promise.all([client.mintOwnerToken(), client.versions()]);
    registerSecret(owner.token);
    secrets.ownerToken = owner.token;
    await registry.writeSecrets(runId, secrets);
    record = {
      ...record,
      state: "running",
      versions: recordVersions(versions),
      startedAt: new Date().toISOString(),
      owner: undefined,
    };
    await registry.write(record);
    cleanup.commit();
    timer.record("recorded", performance.now() - recordedAt);
    // Installed by the entrypoint: the copies of the user's secrets are not left lying around.
    if (importDir && sandboxed)
      await removeImportDir(importDir).catch((error: unknown) =>
        log.warn(`could not remove ${importDir}: ${errorMessage(error)}`),
      );
    if (importDir && shipped && backend instanceof DockerBackend)
      await backend
        .exec(handle, ["rm", "-rf", `${SANDBOX_PATHS.persist}/${shippedImports}`])
        .catch((error: unknown) =>
          log.warn(`could not remove the copies of your config on the engine: ${errorMessage(error)}`),
        );
    log.info({ runId, url }, "runtime healthy");
    return {
      record,
      secrets,
      secretsFile,
      reused: false,
      ...(shippedBytes === undefined ? {} : { shippedBytes }),
    };
  } catch (error) {
    await fail(errorMessage(error));
    throw error;
  }
}

export async function resolveWorkspace(input: string): Promise<string> {
  let real: string;
  try {
    real = await realpath(path.resolve(input));
  } catch {
    throw new UsageError(
      `the workspace ${input} does not exist`,
      "create it, or pass --workspace with an existing directory",
    );
  }
  if (!(await stat(real)).isDirectory()) throw new UsageError(`the workspace ${input} is not a directory`);
  return real;
}

/** One option a start asked for that the running run was started without (or with another value). */
async function differencesFrom(
  current: RunRecord,
  options: StartOptions,
  mounts: readonly ValidatedMount[],
  log: Logger,
): Promise<OptionDifference[]> {
  const out: OptionDifference[] = [];
  const differ = (option: OptionDifference["option"], asked: unknown, running: unknown) =>
    out.push({ option, asked: String(asked), running: String(running) });
  if (options.sandbox !== undefined) {
    const same =
      options.sandbox === "auto" ? current.sandbox !== "none" : options.sandbox === current.sandbox;
    if (!same) differ("sandbox", options.sandbox, current.sandbox);
  }
  if (options.image !== undefined && options.image !== current.image)
    differ("image", options.image, current.image ?? "the default image");
  if (options.port !== undefined && options.port !== current.ports.server)
    differ("port", options.port, current.ports.server);
  if (options.router !== undefined && options.router !== current.router)
    differ("router", options.router ? "on" : "off", current.router ? "on" : "off");
  if (options.allowRemote !== undefined && options.allowRemote !== (current.allowRemote ?? false))
    differ("allowRemote", options.allowRemote, current.allowRemote ?? false);
  if (options.publishAddress !== undefined && options.publishAddress !== current.publishAddress)
    differ("publishAddress", options.publishAddress, current.publishAddress ?? "127.0.0.1");
  const askedLimits = definedOnly(options.limits);
  if (Object.keys(askedLimits).length > 0 && current.limits) {
    const wanted = { ...current.limits, ...askedLimits };
    if (JSON.stringify(wanted) !== JSON.stringify(current.limits))
      differ("limits", formatLimits(wanted), formatLimits(current.limits));
  }
  if (options.mounts.length > 0) {
    const key = (m: { hostPath: string; containerPath: string; readOnly: boolean }) =>
      `${m.hostPath}:${m.containerPath}:${m.readOnly ? "ro" : "rw"}`;
    const asked = mounts.map(key).sort().join(", ");
    const running = (current.mounts ?? []).map(key).sort().join(", ");
    if (asked !== running) differ("mounts", asked, running || "none");
  }
  const sources = options.runtime.sources;
  const runtimeAsked =
    options.runtime.manifest !== undefined ||
    Object.keys(sources?.external ?? {}).length > 0 ||
    (sources?.prefer !== undefined && sources.prefer !== "auto");
  if (runtimeAsked) {
    const id = await plannedRuntimeId({
      ...options.runtime,
      sandboxed: current.sandbox !== "none",
      router: current.router,
      log,
    });
    if (id !== current.runtimeId) differ("runtime", `runtime ${id}`, `runtime ${current.runtimeId ?? "?"}`);
  }
  return out;
}

/**
 * A runtime holds its persisted directory as long as it runs, whatever its
 * record says: a sandbox of the substrate being started, labelled with this
 * workspace, that no live record accounts for (its record is corrupt, or was
 * removed) means another runtime still uses the directory, and a second one
 * must not be started beside it. Only the substrate being started is asked:
 * asking every engine on every start would cost each start their probes.
 */
async function refuseUnrecordedRuntimes(
  registry: RunRegistry,
  workspaceId: string,
  live: readonly RunRecord[],
  backend: SandboxBackend,
): Promise<void> {
  const known = new Set(live.map((record) => record.runId));
  const found = await backend
    .list({ [LABEL_MANAGED]: "1", [LABEL_HOME]: registry.homeId(), [LABEL_WORKSPACE]: workspaceId })
    .catch(() => []);
  for (const sandbox of found) {
    if (sandbox.state !== "running") continue;
    const runId = sandbox.labels[LABEL_RUN];
    if (runId && known.has(runId)) continue;
    const record = runId
      ? await registry.read(runId).then(
          (r) => (r ? `its record says ${r.state}` : "no record of it exists"),
          (error: unknown) => errorMessage(error),
        )
      : "it carries no run id";
    throw new OpenworkError(
      `a runtime of this workspace is still running (${backend.kind} ${sandbox.id}, run ${runId ?? "?"}) but ${record}`,
      {
        code: "runtime_unrecorded",
        hint: "stop it first with `openwork stop --orphans` (after fixing or removing the record), then start again",
      },
    );
  }
}

function credentialsRequest(given: Partial<CredentialsRequest> | undefined): CredentialsRequest {
  return {
    env: given?.env ?? [],
    envFiles: given?.envFiles ?? [],
    proxyEnv: given?.proxyEnv ?? true,
    caCert: given?.caCert,
    hostConfig: given?.hostConfig ?? true,
    hostAuth: given?.hostAuth ?? true,
  };
}

/**
 * What a run record keeps of its credentials: names and where they came from,
 * never a value — only a MAC of each, keyed with the run's client token (a
 * secret the record never holds), so that a later start can tell whether it
 * asks for the same values without the record revealing them.
 */
function credentialsRecord(plan: CredentialsPlan, key: string): NonNullable<RunRecord["credentials"]> {
  return {
    env: plan.env.map((entry) => ({
      name: entry.name,
      source: describeSource(entry.source),
      mac: valueMac(key, entry.name, entry.value),
    })),
    caMac: plan.ca ? valueMac(key, "ca", plan.ca.pem) : null,
    hostConfig: plan.hostConfig
      ? { dir: plan.host.configDir ?? null, files: plan.host.configFiles.length }
      : null,
    hostAuth: plan.hostAuth ? plan.host.authFiles.map((file) => file.source) : null,
    caCert: plan.ca ? plan.ca.sources : null,
    proxyRewrites: plan.proxyRewrites.map((rewrite) => ({ name: rewrite.name, to: maskUrl(rewrite.to) })),
  };
}

function valueMac(key: string, name: string, value: string): string {
  return createHmac("sha256", key).update(`${name}\0${value}`).digest("hex").slice(0, 32);
}

/** The credentials a start asks for that the running run does not have (by name; values compared by MAC). */
function credentialDifferences(
  running: RunRecord["credentials"],
  asked: CredentialsPlan,
  key: string,
): string[] {
  if (!running) return [];
  const out: string[] = [];
  const had = new Map(running.env.map((entry) => [entry.name, entry.mac]));
  for (const entry of asked.env) {
    const mac = had.get(entry.name);
    if (mac === undefined) out.push(`env ${entry.name} added`);
    else if (mac !== valueMac(key, entry.name, entry.value)) out.push(`env ${entry.name} changed`);
    had.delete(entry.name);
  }
  for (const name of had.keys()) out.push(`env ${name} removed`);
  if ((running.caMac ?? null) !== (asked.ca ? valueMac(key, "ca", asked.ca.pem) : null))
    out.push("CA bundle");
  if ((running.hostConfig !== null) !== asked.hostConfig)
    out.push(asked.hostConfig ? "host config" : "--no-host-config");
  if ((running.hostAuth !== null) !== asked.hostAuth)
    out.push(asked.hostAuth ? "host auth" : "--no-host-auth");
  return out;
}

function definedOnly(limits: Partial<SandboxLimits> | undefined): Partial<SandboxLimits> {
  return Object.fromEntries(Object.entries(limits ?? {}).filter(([, value]) => value !== undefined));
}

type ShippingModule = typeof import("../shipping/index.js");

/** A port for a runtime on another machine, where ours cannot tell which are free (a taken one fails the start, said so). */
function remotePort(): number {
  return 20_000 + Math.floor(Math.random() * 12_000);
}

/**
 * Who a shipped run's processes are: the caller (as at home), or when the caller is root, uid 1000
 * — a shipped workspace is the engine's copy, so no local owner to follow (DESIGN.md §4a: never root).
 */
function shippedUser(): SandboxUser {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  return uid === undefined || gid === undefined || uid === 0 ? { uid: 1000, gid: 1000 } : { uid, gid };
}

/**
 * A shipped run's engine, made ready while the runtime is staged: the image there, the volumes
 * (given to the sandbox's user), the workspace uploaded at its first start (a marker here says the
 * upload finished; a cut-off one is sent again), a directory of the engine's host checked to exist.
 */
async function prepareEngine(options: {
  backend: DockerBackend;
  image: string;
  names: ReturnType<typeof volumeNames>;
  shipped: ShippedWorkspace;
  user: SandboxUser;
  labels: Record<string, string>;
  persistDir: string;
  log: Logger;
  shipping: ShippingModule;
}): Promise<void> {
  const { backend, image, names, shipped, user, log } = options;
  const { ensureVolume, imageToEngine, uploadDirectory } = options.shipping;
  const docker = backend.docker;
  const local = await probeDocker(3000);
  await imageToEngine({ local: local.ok ? local.docker : docker, remote: docker, ref: image, log });
  const common = { [LABEL_MANAGED]: "1", [LABEL_HOME]: options.labels[LABEL_HOME] as string };
  const extra = Object.fromEntries(
    Object.entries(options.labels).filter(([key]) => ![LABEL_RUN, LABEL_RUNTIME].includes(key)),
  );
  await ensureVolume(docker, {
    name: names.runtimes,
    role: "runtimes",
    labels: { ...extra, ...common },
    image,
  });
  await ensureVolume(docker, { name: names.persist, role: "persist", labels: extra, image, owner: user });
  if (shipped.kind === "engine") {
    await checkEnginePath(
      options.shipping,
      docker,
      image,
      shipped.path,
      backend.endpoint?.host ?? "the engine",
    );
    return;
  }
  await ensureVolume(docker, {
    name: names.workspace,
    role: "workspace",
    labels: extra,
    image,
    owner: user,
    mode: "0755",
  });
  // Seeded once: the volume is the engine's copy from then on (a marker here says the seeding finished).
  const marker = path.join(options.persistDir, "uploaded.json");
  if (existsSync(marker)) return;
  if (shipped.kind === "git") {
    const { runHelper } = options.shipping;
    log.info({ repository: maskUrl(shipped.url) }, "cloning the workspace on the engine");
    await runHelper(docker, {
      image,
      labels: extra,
      mounts: [
        {
          Type: "volume",
          Source: names.workspace,
          Target: SANDBOX_PATHS.workspace,
          // Not the image's /workspace copied in: the volume stays the empty directory git clones into.
          VolumeOptions: { NoCopy: true } as Docker.MountSettings["VolumeOptions"],
        },
      ],
      user: formatUser(user),
      network: true,
      // The URL (which may carry a token) only in the environment of a container removed right after.
      env: { OPENWORK_GIT_URL: shipped.url, ...(shipped.ref ? { OPENWORK_GIT_REF: shipped.ref } : {}) },
      command: [
        "sh",
        "-c",
        `git clone --quiet ${shipped.ref ? '--branch "$OPENWORK_GIT_REF" ' : ""}-- "$OPENWORK_GIT_URL" ${SANDBOX_PATHS.workspace}`,
      ],
    });
    await writeFileAtomic(
      marker,
      `${JSON.stringify({ volume: names.workspace, cloned: maskUrl(shipped.url), at: new Date().toISOString() })}\n`,
    );
    log.info({ repository: maskUrl(shipped.url) }, "workspace cloned on the engine");
    return;
  }
  const sent = await uploadDirectory({
    docker,
    image,
    volume: names.workspace,
    from: shipped.from,
    owner: user,
    gitignore: true,
    labels: extra,
    log,
    label: `uploading ${shipped.from}`,
  });
  await writeFileAtomic(
    marker,
    `${JSON.stringify({ volume: names.workspace, from: shipped.from, ...sent, at: new Date().toISOString() })}\n`,
  );
  log.info({ from: shipped.from, ...sent }, "workspace uploaded to the engine");
}

/** A directory of the engine's host exists there (a helper created over it fails to be made when not). */
async function checkEnginePath(
  shipping: ShippingModule,
  docker: Docker,
  image: string,
  at: string,
  engine: string,
): Promise<void> {
  try {
    await shipping.withArchiveHelper(
      docker,
      { image, labels: {}, mounts: [{ Type: "bind", Source: at, Target: "/w" }] },
      async () => {},
    );
  } catch (error) {
    if (/bind source path does not exist|no such file/i.test(errorMessage(error)))
      throw new UsageError(
        `the workspace engine:${at} does not exist on ${engine}`,
        "create it there first, or pass --workspace-upload DIR to copy a local one",
      );
    throw error;
  }
}
