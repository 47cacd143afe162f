import { type DockerEndpoint, parseDockerHost } from "../docker/client.js";
import { OpenworkError, UsageError } from "../errors/errors.js";
import { AppleContainerBackend } from "./apple/index.js";
import type { SandboxBackend, SandboxKind } from "./backend.js";
import { DockerBackend } from "./docker/docker-backend.js";
import { HostBackend } from "./host/host-backend.js";
import { SwarmBackend } from "./swarm/swarm-backend.js";

export type SandboxChoice = SandboxKind | "auto";

type Factory = () => SandboxBackend;

const factories = new Map<SandboxKind, Factory>([
  ["none", () => new HostBackend()],
  ["docker", () => new DockerBackend()],
  // A short probe: `auto` must not hang on a wedged service.
  ["container", () => new AppleContainerBackend({ probeTimeoutMs: 5000 })],
  ["swarm", () => new SwarmBackend()],
]);

/** One instance per kind (and Docker endpoint) and process: a backend may cache its client and its probe. */
const instances = new Map<string, SandboxBackend>();

/** Backends register themselves here (the Apple one lives in its own module). */
export function registerBackend(kind: SandboxKind, factory: Factory): void {
  factories.set(kind, factory);
  for (const key of instances.keys()) if (key === kind || key.startsWith(`${kind}|`)) instances.delete(key);
}

/** The kinds this build can drive (for the orphan sweep). */
export function registeredBackends(): SandboxKind[] {
  return [...factories.keys()];
}

export function parseSandboxChoice(value: string): SandboxChoice {
  if (
    value === "none" ||
    value === "docker" ||
    value === "container" ||
    value === "swarm" ||
    value === "auto"
  )
    return value;
  throw new UsageError(`--sandbox must be none, auto, docker, container or swarm, not "${value}"`);
}

/**
 * The backend of a kind; for Docker, of one engine (`engine`: an endpoint as
 * records keep it; absent: the one DOCKER_HOST or the docker context names).
 */
export function backendFor(kind: SandboxKind, engine?: string): SandboxBackend {
  const onEngine = (kind === "docker" || kind === "swarm") && engine !== undefined;
  const key = onEngine ? `${kind}|${engine}` : kind;
  const existing = instances.get(key);
  if (existing) return existing;
  const factory = factories.get(kind);
  if (!factory)
    throw new OpenworkError(`no backend is available for --sandbox ${kind}`, { code: "sandbox_unavailable" });
  const backend = !onEngine
    ? factory()
    : kind === "docker"
      ? new DockerBackend(undefined, parseDockerHost(engine, "engine"))
      : new SwarmBackend(parseDockerHost(engine, "engine"));
  instances.set(key, backend);
  return backend;
}

/** The backend that drives a handle (its kind, on the engine it names). */
export function backendOfHandle(handle: { kind: SandboxKind; engine?: string | undefined }): SandboxBackend {
  return backendFor(handle.kind, handle.engine);
}

/**
 * Resolve the user's choice to a working backend. `auto` prefers Apple's
 * container on macOS/arm64, then Docker, and never falls back to the host:
 * if no sandbox works, it fails and says what it probed and why each failed.
 */
export async function selectBackend(
  choice: SandboxChoice,
  host: { platform: NodeJS.Platform; arch: string } = { platform: process.platform, arch: process.arch },
  engine?: DockerEndpoint,
): Promise<SandboxBackend> {
  if (engine) {
    // A named engine is a Docker engine: `auto` may not pick anything else for it.
    if (choice !== "docker" && choice !== "swarm" && choice !== "auto")
      throw new UsageError(
        `--docker-host names a Docker engine, and --sandbox ${choice} does not run on one`,
        "drop --docker-host, or use --sandbox docker or swarm",
      );
    const backend = backendFor(choice === "swarm" ? "swarm" : "docker", engine.host);
    const probe = await backend.probe();
    if (!probe.ok)
      throw new OpenworkError(
        `--sandbox ${backend.kind} on ${engine.host} (${engine.source}) is not available: ${probe.reason}`,
        {
          code: "sandbox_unavailable",
          hint: "check the endpoint (for ssh://, that `ssh HOST docker version` works), or start that engine",
        },
      );
    return backend;
  }
  if (choice !== "auto") {
    const backend = backendFor(choice);
    if (choice === "none") return backend;
    const probe = await backend.probe();
    if (!probe.ok) {
      throw new OpenworkError(`--sandbox ${choice} is not available: ${probe.reason}`, {
        code: "sandbox_unavailable",
        hint:
          choice === "docker"
            ? "start Docker (or set DOCKER_HOST / the docker context), or choose another --sandbox"
            : choice === "swarm"
              ? "name a swarm manager with --docker-host (docker swarm init makes one)"
              : "install Apple's container CLI (0.3.0 or later) and run `container system start`, or choose another --sandbox",
      });
    }
    return backend;
  }
  const order: SandboxKind[] =
    host.platform === "darwin" && host.arch === "arm64" ? ["container", "docker"] : ["docker"];
  const failures: string[] = [];
  for (const kind of order) {
    if (!factories.has(kind)) {
      failures.push(`${kind}: not built into this openwork`);
      continue;
    }
    const backend = backendFor(kind);
    const probe = await backend.probe();
    if (probe.ok) return backend;
    failures.push(`${kind}: ${probe.reason}`);
  }
  if (!(host.platform === "darwin" && host.arch === "arm64")) {
    failures.push("container: Apple's container runs only on macOS on Apple silicon");
  }
  throw new OpenworkError(`--sandbox auto found no working sandbox (probed ${failures.join("; ")})`, {
    code: "sandbox_unavailable",
    hint: "start Docker or Apple's container service, or pass --sandbox none to run on the host deliberately",
  });
}
