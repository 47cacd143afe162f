import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire, Module } from "node:module";
import os from "node:os";
import path from "node:path";
import type Docker from "dockerode";
import { errorMessage, OpenworkError, UsageError } from "../errors/errors.js";

export interface DockerEndpoint {
  /** what the user would recognise: DOCKER_HOST=…, context "name", or the default socket */
  source: string;
  host: string;
}

/**
 * Where the Docker engine is, as the docker CLI decides: DOCKER_HOST, else
 * DOCKER_CONTEXT or the config's currentContext, else the default socket.
 */
export function resolveDockerEndpoint(env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  if (env.DOCKER_HOST) return { source: "DOCKER_HOST", host: env.DOCKER_HOST };
  const configDir = dockerConfigDir(env);
  let context = env.DOCKER_CONTEXT;
  if (!context) {
    try {
      const config = JSON.parse(readFileSync(path.join(configDir, "config.json"), "utf8")) as {
        currentContext?: string;
      };
      context = config.currentContext;
    } catch {
      // no config: the default context
    }
  }
  if (context && context !== "default") return contextEndpoint(context, env);
  return defaultEndpoint();
}

function dockerConfigDir(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG ?? path.join(os.homedir(), ".docker");
}

function defaultEndpoint(): DockerEndpoint {
  return {
    source: "default socket",
    host: process.platform === "win32" ? "npipe:////./pipe/docker_engine" : "unix:///var/run/docker.sock",
  };
}

/** The engine a docker context names (~/.docker/contexts/meta/<sha256 of the name>/meta.json). */
export function contextEndpoint(context: string, env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  if (context === "default") return defaultEndpoint();
  const id = createHash("sha256").update(context).digest("hex");
  const metaFile = path.join(dockerConfigDir(env), "contexts", "meta", id, "meta.json");
  let host: string | undefined;
  try {
    const meta = JSON.parse(readFileSync(metaFile, "utf8")) as { Endpoints?: { docker?: { Host?: string } } };
    host = meta.Endpoints?.docker?.Host;
  } catch (error) {
    throw new OpenworkError(
      `docker context "${context}" cannot be read from ${metaFile}: ${errorMessage(error)}`,
      { code: "docker_context", hint: 'run "docker context ls" to see the contexts there are' },
    );
  }
  if (!host)
    throw new OpenworkError(`docker context "${context}" names no Docker endpoint (${metaFile})`, {
      code: "docker_context",
      hint: 'run "docker context inspect" on it, or pass --docker-host with the endpoint itself',
    });
  return { source: `docker context "${context}"`, host };
}

const ENDPOINT_SCHEMES = ["unix:", "npipe:", "tcp:", "ssh:", "http:", "https:"];

/**
 * What `--docker-host` (or a worker's `dockerHost`) names: an endpoint URL as
 * DOCKER_HOST takes it (unix://, npipe://, tcp:// with TLS material from
 * DOCKER_CERT_PATH, ssh://user@host), or the name of a docker context.
 */
export function parseDockerHost(
  value: string,
  what = "--docker-host",
  env: NodeJS.ProcessEnv = process.env,
): DockerEndpoint {
  const text = value.trim();
  if (text.includes("://")) {
    const scheme = `${text.slice(0, text.indexOf("://"))}:`;
    if (!ENDPOINT_SCHEMES.includes(scheme))
      throw new UsageError(
        `${what} ${value}: a Docker endpoint is unix://, npipe://, tcp://, ssh://, http:// or https://, not ${scheme}//`,
      );
    if (scheme !== "unix:" && scheme !== "npipe:") {
      let parsed: URL;
      try {
        parsed = new URL(text);
      } catch {
        throw new UsageError(`${what} ${value} is not an endpoint URL`, "e.g. tcp://10.0.0.5:2376");
      }
      if (!parsed.hostname) throw new UsageError(`${what} ${value} names no host`);
    } else if (text.length <= scheme.length + 2) throw new UsageError(`${what} ${value} names no socket`);
    return { source: what, host: text };
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(text))
    throw new UsageError(
      `${what} "${value}" is neither an endpoint URL nor a docker context name`,
      "e.g. --docker-host ssh://me@big-box, tcp://10.0.0.5:2376 or a name from `docker context ls`",
    );
  return contextEndpoint(text, env);
}

/**
 * Whether an engine is known to share this machine's file system: only a socket
 * on this machine can be (tcp:// and ssh:// engines are elsewhere, even when
 * they happen to point back here). A run on any other engine gets its runtime
 * and state shipped through the API, never a bind mount of a path of ours.
 */
export function isLocalEngine(host: string): boolean {
  return host.startsWith("unix://") || host.startsWith("npipe://");
}

/**
 * dockerode (with ssh2 and protobufjs behind it) takes a quarter of a second to
 * load; most commands never talk to Docker, so it is loaded on first use.
 */
let dockerConstructor: typeof Docker | undefined;
function DockerClass(): typeof Docker {
  if (!dockerConstructor) {
    const require = createRequire(import.meta.url);
    // dockerode requires BuildKit's gRPC stack (lib/session.js) when it loads, though only a
    // BuildKit session (buildImage with version "2", which we never ask for) touches it: that
    // module is loaded on first use instead, which halves the time every Docker command pays.
    const dockerode = path.dirname(require.resolve("dockerode"));
    for (const name of ["@grpc/grpc-js", "@grpc/proto-loader"]) deferRequire(require, name, dockerode);
    // Likewise docker-modem's ssh transport (ssh2, a fifth of the rest), used only for ssh:// engines;
    // it exports a function, so its stand-in is callable.
    deferRequire(require, "docker-modem/lib/ssh.js", dockerode, { callable: true });
    dockerConstructor = require("dockerode") as typeof Docker;
  }
  return dockerConstructor;
}

/**
 * Put a stand-in for module `name` (as `from` resolves it) in require's cache: an object whose
 * every property access loads the real module (then cached as usual) and answers from it. For a
 * dependency of a dependency that is required eagerly but used only inside functions.
 */
function deferRequire(
  require: NodeJS.Require,
  name: string,
  from: string,
  options: { callable?: boolean } = {},
): void {
  let resolved: string;
  try {
    resolved = require.resolve(name, { paths: [from] });
  } catch {
    return; // not installed where dockerode looks: its own require reports it, as without us
  }
  if (require.cache[resolved]) return;
  let real: Record<PropertyKey, unknown> | undefined;
  const load = (): Record<PropertyKey, unknown> => {
    if (!real) {
      delete require.cache[resolved];
      real = require(resolved) as Record<PropertyKey, unknown>;
    }
    return real;
  };
  const standIn = new Module(resolved);
  standIn.filename = resolved;
  standIn.loaded = true;
  // A function target when the module exports one (only then may `apply` be trapped); an arrow, whose
  // own properties are all configurable, so the proxy may report the real module's instead.
  const target = options.callable ? () => undefined : {};
  standIn.exports = new Proxy(target, {
    apply: (_target, self, args) =>
      Reflect.apply(load() as unknown as (...args: unknown[]) => unknown, self, args),
    get: (_target, key) => load()[key],
    has: (_target, key) => key in load(),
    ownKeys: () => Reflect.ownKeys(load()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(load(), key);
      return descriptor ? { ...descriptor, configurable: true } : undefined;
    },
  });
  require.cache[resolved] = standIn;
}

/** A dockerode client for an endpoint (unix, npipe, tcp with TLS from DOCKER_CERT_PATH, ssh). */
export function createDockerClient(endpoint: DockerEndpoint = resolveDockerEndpoint()): Docker {
  const url = endpoint.host;
  if (url.startsWith("unix://")) return new (DockerClass())({ socketPath: url.slice("unix://".length) });
  if (url.startsWith("npipe://")) return new (DockerClass())({ socketPath: url.slice("npipe://".length) });
  const parsed = new URL(url);
  if (parsed.protocol === "ssh:") {
    return new (DockerClass())({
      protocol: "ssh",
      host: parsed.hostname,
      port: parsed.port ? Number(parsed.port) : 22,
      username: parsed.username || undefined,
      sshOptions: { agent: process.env.SSH_AUTH_SOCK },
    } as Docker.DockerOptions);
  }
  const certDir = process.env.DOCKER_CERT_PATH;
  const tls = process.env.DOCKER_TLS_VERIFY === "1" || parsed.port === "2376";
  const options: Docker.DockerOptions = {
    protocol: tls ? "https" : "http",
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : tls ? 2376 : 2375,
  };
  if (tls && certDir && existsSync(certDir)) {
    options.ca = readFileSync(path.join(certDir, "ca.pem"));
    options.cert = readFileSync(path.join(certDir, "cert.pem"));
    options.key = readFileSync(path.join(certDir, "key.pem"));
  }
  return new (DockerClass())(options);
}

export type DockerProbe =
  | { ok: true; docker: Docker; endpoint: DockerEndpoint; version: string }
  | { ok: false; endpoint?: DockerEndpoint; reason: string };

/** Is an engine answering? Bounded by a short timeout so that `auto` never hangs on a dead socket. */
export async function probeDocker(timeoutMs = 3000, given?: DockerEndpoint): Promise<DockerProbe> {
  let endpoint: DockerEndpoint;
  try {
    endpoint = given ?? resolveDockerEndpoint();
  } catch (error) {
    return { ok: false, reason: errorMessage(error) };
  }
  const docker = createDockerClient(endpoint);
  try {
    const version = await withTimeout(docker.version(), timeoutMs, `no answer within ${timeoutMs} ms`);
    return { ok: true, docker, endpoint, version: version.Version };
  } catch (error) {
    return {
      ok: false,
      endpoint,
      reason: `Docker engine at ${endpoint.host} (${endpoint.source}): ${errorMessage(error)}`,
    };
  }
}

/** The HTTP status the Engine API answered a failed call with (dockerode puts it on the error). */
export function statusCode(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Follow a build/pull/import progress stream; an `error` record inside the stream is a failure, not a success. */
export function followProgress(
  docker: Docker,
  stream: NodeJS.ReadableStream,
  onEvent: (event: DockerProgressEvent) => void = () => {},
): Promise<DockerProgressEvent[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, output: DockerProgressEvent[]) => {
        if (error) return reject(error);
        const failed = output.find((event) => event.error || event.errorDetail);
        if (failed)
          return reject(new Error(failed.errorDetail?.message ?? failed.error ?? "unknown engine error"));
        resolve(output);
      },
      onEvent,
    );
  });
}

export interface DockerProgressEvent {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  aux?: { ID?: string };
  error?: string;
  errorDetail?: { message?: string };
}
