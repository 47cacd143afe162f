import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../config/package-root.js";
import {
  ENTRYPOINT_FILE,
  HOME_XDG_DIRS,
  IMPORTED_FILE,
  LOG_FILES,
  PERSIST_DIRS,
  SANDBOX_PATHS,
} from "../contract/layout.js";
import { writeFileAtomic } from "../files/atomic.js";
import { isShellName, shellQuote } from "./quote.js";

export { ENTRYPOINT_FILE };

/** Non-secret settings written into the script; the environment overrides each of them. */
export interface EntrypointConfig {
  /** the persisted directory as the runtime sees it (/persist in a sandbox) */
  persist: string;
  /** the directory of staged runtimes as the runtime sees it (/runtimes in a sandbox, read-only) */
  runtimes: string;
  runtimeId: string;
  /** the workspace as the runtime sees it (/workspace in a sandbox) */
  workspace: string;
  serverHost: string;
  serverPort: number;
  enginePort: number;
  router: { enabled: boolean; healthPort: number };
  healthDeadlineS: number;
  /**
   * Without a router: exec the server as soon as the engine is started, and let it wait for the
   * engine's health (it boots meanwhile). Default false: the entrypoint waits, then execs it.
   */
  earlyServer?: boolean | undefined;
  /**
   * The start has installed the user's imports itself (the host substrate: the CLI is the runtime's
   * user on the same files, and saves the engine a Node process before it may start). Default false:
   * the entrypoint installs them, inside the sandbox, as the runtime's user.
   */
  importsInstalled?: boolean | undefined;
}

/** The ports inside every sandbox (its own network namespace): the server's is the one published. */
export const SANDBOX_PORTS = { server: 8787, engine: 4096, routerHealth: 4097 } as const;

/**
 * A sandbox's entrypoint settings: the same for every run of one runtime, router choice and health
 * deadline (so a baked image made by `openwork image bake` is the one a Swarm start would make).
 */
export function sandboxEntrypointConfig(options: {
  runtimeId: string;
  router: boolean;
  healthDeadlineS: number;
}): EntrypointConfig {
  return {
    persist: SANDBOX_PATHS.persist,
    runtimes: SANDBOX_PATHS.runtimes,
    runtimeId: options.runtimeId,
    workspace: SANDBOX_PATHS.workspace,
    // The server listens on all of the sandbox's interfaces; the port is published where the substrate says.
    serverHost: "0.0.0.0",
    serverPort: SANDBOX_PORTS.server,
    enginePort: SANDBOX_PORTS.engine,
    router: { enabled: options.router, healthPort: SANDBOX_PORTS.routerHealth },
    healthDeadlineS: options.healthDeadlineS,
    // Without a router the server boots while the engine does (and waits for it itself).
    earlyServer: !options.router,
    importsInstalled: false,
  };
}

const MARKER = "# @@CONFIG@@";

let template: string | undefined;

function readTemplate(): string {
  template ??= readFileSync(path.join(packageRoot(), "entrypoints", "runtime-entrypoint.sh"), "utf8");
  if (!template.includes(MARKER)) throw new Error(`the entrypoint template lacks its ${MARKER} line`);
  return template;
}

/** Each setting as `if unset then NAME='value'`: quoted, and only a default. */
export function configLines(config: EntrypointConfig): string {
  const values: Array<[string, string]> = [
    ["OPENWORK_PERSIST", config.persist],
    ["OPENWORK_RUNTIMES", config.runtimes],
    ["OPENWORK_RUNTIME_ID", config.runtimeId],
    ["OPENWORK_WORKSPACE", config.workspace],
    ["OPENWORK_SERVER_HOST", config.serverHost],
    ["OPENWORK_SERVER_PORT", String(config.serverPort)],
    ["OPENWORK_ENGINE_PORT", String(config.enginePort)],
    ["OPENWORK_ROUTER_ENABLED", config.router.enabled ? "1" : "0"],
    ["OPENWORK_ROUTER_HEALTH_PORT", String(config.router.healthPort)],
    ["OPENWORK_HEALTH_DEADLINE_S", String(config.healthDeadlineS)],
    ["OPENWORK_SERVER_EARLY", config.earlyServer === true ? "1" : "0"],
    ["OPENWORK_IMPORTS_INSTALLED", config.importsInstalled === true ? "1" : "0"],
  ];
  // The persisted directory's layout (src/contract/layout.ts): fixed names, not settings.
  const layout: Array<[string, string]> = [
    ["PERSIST_STATE", PERSIST_DIRS.state],
    ["PERSIST_LOGS", PERSIST_DIRS.logs],
    ["PERSIST_HOME", PERSIST_DIRS.home],
    ["HOME_XDG_CONFIG", HOME_XDG_DIRS.config],
    ["HOME_XDG_DATA", HOME_XDG_DIRS.data],
    ["HOME_XDG_STATE", HOME_XDG_DIRS.state],
    ["HOME_XDG_CACHE", HOME_XDG_DIRS.cache],
    ["IMPORTED_FILE", IMPORTED_FILE],
    ["ENGINE_LOG_FILE", LOG_FILES.engine],
    ["ROUTER_LOG_FILE", LOG_FILES.router],
  ];
  return [
    ...values.map(([name, value]) => {
      if (!isShellName(name)) throw new Error(`not a shell variable name: ${name}`);
      return `if [ -z "\${${name}+x}" ]; then ${name}=${shellQuote(value)}; fi`;
    }),
    ...layout.map(([name, value]) => `${name}=${shellQuote(value)}`),
  ].join("\n");
}

export function renderEntrypoint(config: EntrypointConfig): string {
  // A replacer function: a string replacement would read `$&`, `$$`, … in a value as patterns.
  const block = `# Written by openwork for this start:\n${configLines(config)}`;
  return readTemplate().replace(MARKER, () => block);
}

/**
 * Write the entrypoint into the staged runtime directory. Atomic (write, then
 * rename): a script that is running keeps reading its own copy, since sh reads
 * its script as it goes.
 */
export async function writeEntrypoint(runtimeDir: string, config: EntrypointConfig): Promise<string> {
  const file = path.join(runtimeDir, ENTRYPOINT_FILE);
  await writeFileAtomic(file, renderEntrypoint(config), { mode: 0o755 });
  return file;
}
