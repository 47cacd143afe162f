import path from "node:path";

/**
 * The persisted directory of a workspace (mounted at /persist in a sandbox),
 * named once. The CLI, the server and the entrypoint (which receives these
 * names when it is written) all find things here through this one table.
 */
export const PERSIST_DIRS = {
  /** staged runtimes, one directory per runtime id */
  runtimes: "runtimes",
  /** the server's state: upgrade operations, child ledger, current runtime */
  state: "state",
  /** the engine's and router's own output */
  logs: "logs",
  /** HOME (and XDG directories) of the sidecars */
  home: "home",
} as const;

/** Where a sandbox sees the persisted directory and the workspace (DESIGN.md §4: extra mounts go below extra/). */
export const SANDBOX_PATHS = {
  persist: "/persist",
  /** the staged runtimes, mounted read-only: the sandbox executes them and can change none of them */
  runtimes: "/runtimes",
  workspace: "/workspace",
  /** the user's opencode config, logins and CA bundle for this start, read-only (src/credentials/import-dir.ts) */
  imports: "/import",
  /** on Swarm, the same imports as the run's secrets (Swarm mounts secrets below /run/secrets) */
  swarmImports: "/run/secrets/openwork-import",
  extraMounts: "/workspace/extra",
} as const;

/** The sidecars' XDG directories inside their HOME (the entrypoint exports them; the host's install writes there). */
export const HOME_XDG_DIRS = {
  config: ".config",
  data: ".local/share",
  state: ".local/state",
  cache: ".cache",
} as const;

export const LOG_FILES = { engine: "engine.log", router: "router.log" } as const;
export type LogComponent = keyof typeof LOG_FILES;

export const RUNTIME_JSON = "runtime.json";
/** in the state directory: what the last start imported from the host (src/credentials/install.ts) */
export const IMPORTED_FILE = "imported.json";
export const ENTRYPOINT_FILE = "entrypoint.sh";

export interface PersistLayout {
  root: string;
  runtimesDir: string;
  runtimeDir(runtimeId: string): string;
  runtimeJson(runtimeId: string): string;
  entrypoint(runtimeId: string): string;
  /** the cross-process lock held while a runtime is staged (gc leaves such a runtime alone) */
  stagingLock(runtimeId: string): string;
  stateDir: string;
  /** the runtime that runs in this workspace: written by the server after an upgrade, by the CLI at each start */
  currentRuntimeFile: string;
  upgradesDir: string;
  upgradeFile(operationId: string): string;
  /** processes the server spawned (pid and start time), so that a later start stops what a killed server left */
  childrenFile: string;
  logsDir: string;
  logFile(component: LogComponent): string;
  homeDir: string;
  /** XDG_CONFIG_HOME and XDG_DATA_HOME of the sidecars (HOME_XDG_DIRS under homeDir) */
  configHome: string;
  dataHome: string;
  /** what the last start imported from the host (src/credentials/install.ts), to tell it from the runtime's own changes */
  importedFile: string;
  /** the CA bundle given to the runtime, alone (NODE_EXTRA_CA_CERTS) and after the system's (SSL_CERT_FILE) */
  caExtraFile: string;
  caBundleFile: string;
}

/**
 * The layout under `root`, as the process that uses it sees that directory (a
 * host path, or /persist). Staged runtimes are under root/runtimes on the
 * host substrate; a sandbox gets them from elsewhere, read-only (`runtimesDir`).
 */
export function persistLayout(
  root: string,
  runtimesDir = path.join(root, PERSIST_DIRS.runtimes),
): PersistLayout {
  const stateDir = path.join(root, PERSIST_DIRS.state);
  const logsDir = path.join(root, PERSIST_DIRS.logs);
  const runtimeDir = (runtimeId: string) => path.join(runtimesDir, runtimeId);
  return {
    root,
    runtimesDir,
    runtimeDir,
    runtimeJson: (runtimeId) => path.join(runtimeDir(runtimeId), RUNTIME_JSON),
    entrypoint: (runtimeId) => path.join(runtimeDir(runtimeId), ENTRYPOINT_FILE),
    stagingLock: (runtimeId) => path.join(runtimesDir, `.${runtimeId}`),
    stateDir,
    currentRuntimeFile: path.join(stateDir, "current-runtime"),
    upgradesDir: path.join(stateDir, "upgrades"),
    upgradeFile: (operationId) => path.join(stateDir, "upgrades", `${operationId}.json`),
    childrenFile: path.join(stateDir, "children.json"),
    logsDir,
    logFile: (component) => path.join(logsDir, LOG_FILES[component]),
    homeDir: path.join(root, PERSIST_DIRS.home),
    configHome: path.join(root, PERSIST_DIRS.home, HOME_XDG_DIRS.config),
    dataHome: path.join(root, PERSIST_DIRS.home, HOME_XDG_DIRS.data),
    importedFile: path.join(stateDir, IMPORTED_FILE),
    caExtraFile: path.join(stateDir, "ca", "extra.pem"),
    caBundleFile: path.join(stateDir, "ca", "bundle.pem"),
  };
}
