import { z } from "zod";

export const RUN_STATES = ["starting", "running", "retiring", "stopped", "failed"] as const;
export type RunState = (typeof RUN_STATES)[number];

/** One run, as persisted under OPENWORK_HOME/runs/<runId>/run.json. Never holds a secret. */
export const RunRecordSchema = z.object({
  version: z.literal(1),
  runId: z.string().regex(/^[a-z0-9-]+$/),
  workspace: z.string(),
  workspaceId: z.string(),
  sandbox: z.enum(["none", "docker", "container", "swarm"]),
  state: z.enum(RUN_STATES),
  /** the process that is starting the run (to tell a live start from a crashed one) */
  owner: z.object({ pid: z.number().int(), startTime: z.string() }).optional(),
  handle: z
    .object({
      kind: z.enum(["none", "docker", "container", "swarm"]),
      id: z.string(),
      engine: z.string().optional(),
    })
    .optional(),
  /**
   * The Docker engine it lives on, as an endpoint URL, and what named it; absent in records of
   * the host substrate and in older records (the engine DOCKER_HOST or the docker context names).
   */
  engine: z.object({ host: z.string(), source: z.string(), local: z.boolean() }).optional(),
  /**
   * Its files live on its engine, not here (src/shipping): the persisted directory and the
   * runtimes are volumes, the workspace a volume or a directory of the engine's host.
   */
  shipped: z
    .object({
      persistVolume: z.string(),
      /** absent on Swarm, where the runtime is baked into the image */
      runtimesVolume: z.string().optional(),
      workspace: z.object({ type: z.enum(["volume", "bind"]), source: z.string() }),
      /** the local directory a volume workspace was seeded from */
      uploadedFrom: z.string().optional(),
      /** the repository a volume workspace was cloned from (credentials masked) */
      clonedFrom: z.string().optional(),
    })
    .optional(),
  /** a Swarm run: the registry its image was pushed to, the image by digest, its placement, its node */
  swarm: z
    .object({
      registry: z.string(),
      image: z.string(),
      constraints: z.array(z.string()),
      node: z.string().optional(),
    })
    .optional(),
  /** an ssh:// engine's run: the SSH tunnel its URL goes through (a background ssh, reopened when it died) */
  tunnel: z
    .object({
      pid: z.number().int(),
      startTime: z.string(),
      target: z.string(),
      localPort: z.number().int(),
      remotePort: z.number().int(),
      logFile: z.string(),
    })
    .optional(),
  /** the address its server is published on, when not 127.0.0.1 (start --publish-address) */
  publishAddress: z.string().optional(),
  image: z.string().optional(),
  url: z.string().optional(),
  ports: z.object({ server: z.number().int(), engine: z.number().int(), routerHealth: z.number().int() }),
  runtimeId: z.string().optional(),
  persistDir: z.string(),
  /** where its runtimes are staged (<stagingRoot>/runtimes); absent in records older than per-substrate layouts */
  stagingRoot: z.string().optional(),
  runDir: z.string(),
  logFile: z.string(),
  router: z.boolean(),
  /** published on all interfaces (start --allow-remote) */
  allowRemote: z.boolean().optional(),
  /** a sandbox's CPU, memory and process limits */
  limits: z.object({ cpus: z.number(), memoryBytes: z.number().int(), pids: z.number().int() }).optional(),
  /** the extra mounts it was started with, as validated */
  mounts: z
    .array(z.object({ hostPath: z.string(), containerPath: z.string(), readOnly: z.boolean() }))
    .optional(),
  versions: z
    .object({ opencode: z.string().nullable(), router: z.string().nullable(), server: z.string().nullable() })
    .default({ opencode: null, router: null, server: null }),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  stoppedAt: z.string().optional(),
  /** why the run failed or was retired */
  reason: z.string().optional(),
  replaces: z.string().optional(),
  /** what reached the runtime's environment and directories: names and sources, never a value */
  credentials: z
    .object({
      env: z.array(z.object({ name: z.string(), source: z.string(), mac: z.string() })),
      caMac: z.string().nullable(),
      /** the user's opencode config directory imported (null: none found, or --no-host-config) */
      hostConfig: z.object({ dir: z.string().nullable(), files: z.number().int() }).nullable(),
      /** the user's auth files imported (null: --no-host-auth) */
      hostAuth: z.array(z.string()).nullable(),
      caCert: z.array(z.string()).nullable(),
      proxyRewrites: z.array(z.object({ name: z.string(), to: z.string() })),
    })
    .optional(),
});
export type RunRecord = z.infer<typeof RunRecordSchema>;

/** Secrets of a run: a 0600 file beside the record. */
export const RunSecretsSchema = z.object({
  clientToken: z.string(),
  hostToken: z.string(),
  ownerToken: z.string().optional(),
  enginePassword: z.string(),
});
export type RunSecrets = z.infer<typeof RunSecretsSchema>;

/** Where a run's runtimes are staged (records from before per-substrate layouts staged inside persistDir). */
export function stagingRootOf(record: RunRecord): string {
  return record.stagingRoot ?? record.persistDir;
}

/**
 * Where a run lives when it is not this machine: a Swarm task's node (as last seen), or a remote
 * engine's endpoint; null on this machine. `where` is a live answer (a backend's status) when known.
 */
export function placeOf(record: RunRecord, where?: string): string | null {
  if (where) return where;
  if (record.swarm?.node) return record.swarm.node;
  if (record.engine && !record.engine.local) return record.engine.host;
  return null;
}

/** The engine endpoint a record's sandbox is driven through (undefined: the default one). */
export function engineOf(record: RunRecord): string | undefined {
  return record.engine?.host ?? record.handle?.engine;
}

export function isLive(state: RunState): boolean {
  return state === "starting" || state === "running" || state === "retiring";
}

/** What `start --json` and `status --json` say of every run, at least (DESIGN.md §3). */
export function runView(record: RunRecord) {
  return {
    runId: record.runId,
    workspace: record.workspace,
    sandbox: record.sandbox,
    state: record.state,
    url: record.url,
    versions: record.versions,
    ...(record.engine ? { engine: record.engine.host } : {}),
  };
}
