import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { packageRoot } from "../../src/config/package-root.js";
import { secretEnv } from "../../src/contract/env.js";
import { newHostToken } from "../../src/contract/host-auth.js";
import { PERSIST_DIRS, persistLayout } from "../../src/contract/layout.js";
import { type RuntimeContent, runtimeJsonOf, serializeRuntimeJson } from "../../src/contract/runtime.js";
import { RuntimeClient } from "../../src/runs/client.js";
import { sha256File } from "../../src/sidecars/hash.js";
import { type SidecarName, STAGED_FILE } from "../../src/sidecars/names.js";
import { freePort, waitFor } from "./net.js";

export const ROOT = packageRoot();
export const BUNDLED_OPENCODE = path.join(
  ROOT,
  "node_modules",
  `opencode-${process.platform}-${process.arch}`,
  "bin",
  "opencode",
);
export const BUNDLED_NODE = path.join(
  ROOT,
  "node_modules",
  `node-${process.platform}-${process.arch}`,
  "bin",
  "node",
);
export const SERVER_BUNDLE = path.join(ROOT, "dist", "sidecars", "openwork-server.mjs");
export const ROUTER_DOUBLE = path.join(ROOT, "dist", "test", "fixtures", "router-double.js");

const hashes = new Map<string, Promise<{ sha256: string; size: number }>>();
/** sha256 once per file version per test process: the engine binary is 100+ MB. */
function hashOf(file: string): Promise<{ sha256: string; size: number }> {
  const stat = statSync(file);
  const key = `${file}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  let hash = hashes.get(key);
  if (!hash) {
    hash = sha256File(file);
    hashes.set(key, hash);
  }
  return hash;
}

export interface SidecarInput {
  path: string;
  version: string;
}

export interface StageOptions {
  persist: string;
  opencode: SidecarInput;
  router?: SidecarInput | undefined;
  server?: SidecarInput | undefined;
  node?: SidecarInput | undefined;
  /**
   * edit runtime.json's content before its id is computed (fault injection: a wrong pinned
   * version, a wrong hash); the id still follows the contract's rule, so the server reads it
   */
  tamper?: (content: RuntimeContent) => void;
}

function link(source: string, dest: string): void {
  rmSync(dest, { force: true });
  try {
    linkSync(source, dest);
  } catch {
    copyFileSync(source, dest);
  }
}

/**
 * Stage a runtime by hand, as src/staging would: hard links of the sidecars
 * into <persist>/runtimes/<id>/ and a runtime.json (the contract's schema and id rule).
 */
export async function stageRuntime(options: StageOptions): Promise<string> {
  const inputs: Partial<Record<SidecarName, SidecarInput>> = {
    opencode: options.opencode,
    "openwork-server": options.server ?? { path: SERVER_BUNDLE, version: serverVersionOf(SERVER_BUNDLE) },
    node: options.node ?? { path: BUNDLED_NODE, version: "24.21.0" },
  };
  if (options.router) inputs["opencode-router"] = options.router;
  const sidecars: RuntimeContent["sidecars"] = {};
  for (const [name, input] of Object.entries(inputs) as Array<[SidecarName, SidecarInput]>) {
    const { sha256, size } = await hashOf(input.path);
    sidecars[name] = { file: STAGED_FILE[name], sha256, size, version: input.version };
  }
  const content: RuntimeContent = {
    target: `${process.platform}-${process.arch}` as RuntimeContent["target"],
    runtimeVersion: inputs["openwork-server"]?.version as string,
    sidecars,
  };
  options.tamper?.(content);
  const json = runtimeJsonOf(content);
  const layout = persistLayout(options.persist);
  const dir = layout.runtimeDir(json.runtimeId);
  mkdirSync(dir, { recursive: true });
  for (const [name, input] of Object.entries(inputs) as Array<[SidecarName, SidecarInput]>)
    link(input.path, path.join(dir, STAGED_FILE[name]));
  writeFileSync(layout.runtimeJson(json.runtimeId), serializeRuntimeJson(json));
  return json.runtimeId;
}

/** The version the built server bundle reports (what a runtime staged from it runs). */
export function builtServerVersion(): string {
  return serverVersionOf(SERVER_BUNDLE);
}

function serverVersionOf(bundle: string): string {
  return execFileSync(process.execPath, [bundle, "--version"], { encoding: "utf8" }).trim();
}

/** A router "binary" for a runtime: an sh wrapper running the router double, with its fault mode baked in. */
export function routerWrapper(dir: string, options: { fault?: string; version?: string } = {}): SidecarInput {
  mkdirSync(dir, { recursive: true });
  const version = options.version ?? "0.1.0-double";
  const file = path.join(
    dir,
    `opencode-router-${version}${options.fault ? `-${options.fault.replace(/[^a-z0-9]/gi, "_")}` : ""}`,
  );
  const env = [
    `ROUTER_DOUBLE_VERSION='${version}'`,
    options.fault ? `ROUTER_DOUBLE_FAULT='${options.fault}'` : "",
  ]
    .filter(Boolean)
    .join(" ");
  writeFileSync(file, `#!/bin/sh\n${env} exec '${process.execPath}' '${ROUTER_DOUBLE}' "$@"\n`, {
    mode: 0o755,
  });
  return { path: file, version };
}

/** An "engine" that starts and never becomes healthy (fault injection). */
export function neverHealthyEngine(dir: string): SidecarInput {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "opencode-never-healthy");
  writeFileSync(file, '#!/bin/sh\necho "pretending to start on $*"\nexec sleep 600\n', { mode: 0o755 });
  return { path: file, version: "1.18.34" };
}

/** The server bundled again, stamped with another version: an upgrade needs two different servers. */
export async function serverBundle(version: string): Promise<SidecarInput> {
  const dir = path.join(os.tmpdir(), "openwork-test-bundles", `${process.pid}`);
  const outfile = path.join(dir, `openwork-server-${version}.mjs`);
  const { bundleServer } = (await import(
    pathToFileURL(path.join(ROOT, "scripts", "bundle-server.mjs")).href
  )) as {
    bundleServer: (options: { root: string; outfile: string; version: string }) => Promise<void>;
  };
  await bundleServer({ root: ROOT, outfile, version });
  return { path: outfile, version };
}

// The entrypoint's shape (docs/architecture.md, "Entrypoint environment"): start the engine with its
// output in its log file, wait for it with `openwork-server probe`, the same for the router, then exec
// the server, which adopts both.
const ENTRYPOINT = `#!/bin/sh
set -eu
rt="$OPENWORK_PERSIST/${PERSIST_DIRS.runtimes}/$OPENWORK_RUNTIME_ID"
node="\${OPENWORK_TEST_NODE:-$rt/node}"
wait_healthy() {
  what=$1; shift
  "$node" "$rt/openwork-server.mjs" probe --timeout-ms 2000 --wait-ms $((OPENWORK_TEST_START_DEADLINE_S * 1000)) "$@" \
    >/dev/null 2>&1 || { echo "entrypoint: $what was not healthy in time" >&2; exit 1; }
}
mkdir -p "$(dirname "$OPENWORK_ENGINE_LOG")"
"$rt/opencode" serve --hostname 127.0.0.1 --port "$OPENWORK_ENGINE_PORT" >>"$OPENWORK_ENGINE_LOG" 2>&1 &
OPENWORK_ENGINE_PID=$!
export OPENWORK_ENGINE_PID
wait_healthy engine --pid "$OPENWORK_ENGINE_PID" --url "http://127.0.0.1:$OPENWORK_ENGINE_PORT/global/health" --basic-auth-env OPENCODE_SERVER_PASSWORD --user-env OPENCODE_SERVER_USERNAME
if [ "\${OPENWORK_ROUTER_ENABLED:-0}" = 1 ]; then
  OPENCODE_URL="http://127.0.0.1:$OPENWORK_ENGINE_PORT" OPENCODE_ROUTER_HEALTH_PORT="$OPENWORK_ROUTER_HEALTH_PORT" \\
    "$rt/opencode-router" serve "$OPENWORK_WORKSPACE" >>"$OPENWORK_ROUTER_LOG" 2>&1 &
  OPENWORK_ROUTER_PID=$!
  export OPENWORK_ROUTER_PID
  wait_healthy router --pid "$OPENWORK_ROUTER_PID" --url "http://127.0.0.1:$OPENWORK_ROUTER_HEALTH_PORT/health"
fi
exec "$node" "$rt/openwork-server.mjs" serve
`;

export interface RunningRuntime {
  url: string;
  persist: string;
  workspace: string;
  clientToken: string;
  hostToken: string;
  enginePassword: string;
  serverLog: string;
  ports: { server: number; engine: number; router: number };
  process: ChildProcess;
  /** the CLI's own typed client (contract types), with the client and host tokens */
  client: RuntimeClient;
  /** GET/POST on the server with a token (client by default); returns status and parsed body */
  call(
    method: string,
    urlPath: string,
    options?: { token?: string | null; hostHeader?: boolean; body?: unknown },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

export interface StartOptions {
  persist: string;
  runtimeId: string;
  router?: boolean;
  /** the Node that runs the server: the runtime's node sidecar by default, process.execPath to prove Node 20 */
  node?: string;
  /** the server's deadline for each health gate of an upgrade (OPENWORK_HEALTH_DEADLINE_S) */
  healthDeadlineS?: number;
  /**
   * how long start-up may take: separate from the gates' deadline, because a cold engine on a
   * busy 2-core CI machine (an image build beside it) can take well over the 10 s a fault test
   * wants its gates to wait
   */
  startDeadlineS?: number;
  env?: NodeJS.ProcessEnv;
  /** reuse ports and tokens (a stop-then-start comparison keeps clients pointed at the same URL) */
  same?: RunningRuntime | undefined;
}

/** Start a runtime as the entrypoint would and wait until the server answers. */
export async function startRuntime(options: StartOptions): Promise<RunningRuntime> {
  const same = options.same;
  const workspace = same?.workspace ?? mkdtempSync(path.join(os.tmpdir(), "openwork-ws-"));
  const [serverPort, enginePort, routerPort] = same
    ? [same.ports.server, same.ports.engine, same.ports.router]
    : [await freePort(), await freePort(), await freePort()];
  const clientToken = same?.clientToken ?? `owc_${randomBytes(18).toString("base64url")}`;
  const hostToken = same?.hostToken ?? newHostToken();
  const enginePassword = same?.enginePassword ?? randomBytes(18).toString("base64url");
  const layout = persistLayout(options.persist);
  const logs = layout.logsDir;
  mkdirSync(logs, { recursive: true });
  const entrypoint = layout.entrypoint(options.runtimeId);
  writeFileSync(entrypoint, ENTRYPOINT, { mode: 0o755 });
  const serverLog = path.join(logs, "server.log");
  const out = openSync(serverLog, "a");
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: layout.homeDir,
    XDG_DATA_HOME: path.join(layout.homeDir, ".local", "share"),
    XDG_CONFIG_HOME: path.join(layout.homeDir, ".config"),
    XDG_STATE_HOME: path.join(layout.homeDir, ".local", "state"),
    XDG_CACHE_HOME: path.join(layout.homeDir, ".cache"),
    OPENWORK_PERSIST: options.persist,
    OPENWORK_RUNTIME_ID: options.runtimeId,
    OPENWORK_WORKSPACE: workspace,
    OPENWORK_SERVER_HOST: "127.0.0.1",
    OPENWORK_SERVER_PORT: String(serverPort),
    OPENWORK_ENGINE_PORT: String(enginePort),
    OPENWORK_ENGINE_LOG: layout.logFile("engine"),
    OPENWORK_HEALTH_DEADLINE_S: String(options.healthDeadlineS ?? 30),
    OPENWORK_TEST_START_DEADLINE_S: String(options.startDeadlineS ?? 120),
    ...secretEnv({ clientToken, hostToken, enginePassword }),
    OPENCODE_SERVER_USERNAME: "opencode",
    OPENWORK_LOG_LEVEL: "info",
    // as the host backend does: where the runtime's own output goes (the server rotates it)
    OPENWORK_SANDBOX_LOG: serverLog,
    ...(options.router
      ? {
          OPENWORK_ROUTER_ENABLED: "1",
          OPENWORK_ROUTER_HEALTH_PORT: String(routerPort),
          OPENWORK_ROUTER_LOG: layout.logFile("router"),
        }
      : {}),
    ...(options.node ? { OPENWORK_TEST_NODE: options.node } : {}),
    ...options.env,
  };
  const child = spawn("/bin/sh", [entrypoint], { env, detached: true, stdio: ["ignore", out, out] });
  const url = `http://127.0.0.1:${serverPort}`;
  let exited: string | undefined;
  child.on("exit", (code, signal) => {
    exited = `exit ${code ?? signal}`;
  });
  const call: RunningRuntime["call"] = async (method, urlPath, callOptions = {}) => {
    const token = callOptions.token === undefined ? clientToken : callOptions.token;
    const headers: Record<string, string> = {};
    if (token !== null) {
      if (callOptions.hostHeader) headers["x-openwork-host-token"] = token;
      else headers.authorization = `Bearer ${token}`;
    }
    if (callOptions.body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(`${url}${urlPath}`, {
      method,
      headers,
      body: callOptions.body === undefined ? undefined : JSON.stringify(callOptions.body),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: response.status, body, headers: response.headers };
  };
  const stop = async () => {
    if (exited === undefined && child.pid) {
      // The server stops the engine and router itself (SIGTERM → deadline → SIGKILL), then exits.
      process.kill(child.pid, "SIGTERM");
      await waitFor(async () => (exited !== undefined ? true : undefined), {
        timeoutMs: 20_000,
        what: "server exit",
      }).catch(() => undefined);
    }
    // Safety net: nothing of this runtime may outlive the test.
    try {
      if (child.pid) process.kill(-child.pid, "SIGKILL");
    } catch {
      // the group is gone: the server cleaned up
    }
  };
  try {
    await waitFor(
      async () => {
        if (exited !== undefined)
          throw new Error(`entrypoint ended (${exited}): ${readFileSync(serverLog, "utf8").slice(-2000)}`);
        const response = await fetch(`${url}/system/health`).catch(() => undefined);
        return response?.ok ? true : undefined;
      },
      {
        timeoutMs: (options.startDeadlineS ?? 120) * 1000 + 15_000,
        intervalMs: 100,
        what: "the runtime server to answer",
      },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    persist: options.persist,
    workspace,
    clientToken,
    hostToken,
    enginePassword,
    serverLog,
    ports: { server: serverPort, engine: enginePort, router: routerPort },
    process: child,
    client: new RuntimeClient(url, { client: clientToken, host: hostToken }),
    call,
    stop,
  };
}

export function tempPersist(): string {
  return mkdtempSync(path.join(os.tmpdir(), "openwork-persist-"));
}
