import { isIP } from "node:net";
import path from "node:path";
import {
  type DockerEndpoint,
  isLocalEngine,
  parseDockerHost,
  resolveDockerEndpoint,
} from "../docker/client.js";
import { UsageError } from "../errors/errors.js";

/** Where a start's sandbox runs and whether its files are shipped there (src/shipping). */
export interface EngineTarget {
  endpoint: DockerEndpoint;
  /** a socket on this machine (shares its files unless `ship` says otherwise) */
  local: boolean;
  /** persisted state, runtimes and workspace live in volumes on the engine, filled through the API */
  ship: boolean;
}

/** A shipped run's workspace: a local directory copied into a volume, or a directory of the engine's host. */
export type ShippedWorkspace =
  | { kind: "upload"; from: string }
  | { kind: "engine"; path: string }
  | { kind: "git"; url: string; ref?: string | undefined };

/**
 * `--workspace-git URL[#REF]`: a repository cloned into the workspace's volume at the first start.
 * https://, http://, git://, ssh:// or scp-like user@host:path; #REF names a branch or tag.
 */
export function parseGitWorkspace(value: string): { url: string; ref?: string } {
  const hash = value.indexOf("#");
  const url = hash >= 0 ? value.slice(0, hash) : value;
  const ref = hash >= 0 ? value.slice(hash + 1) : undefined;
  const scheme = /^(https?|git|ssh):\/\/[^/\s]+\/\S+$/.test(url);
  const scpLike = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$/.test(url);
  if (!scheme && !scpLike)
    throw new UsageError(
      `--workspace-git ${value} is not a git URL`,
      "e.g. https://host/org/repo.git, git://host/repo.git, ssh://git@host/repo.git or git@host:org/repo.git, with #branch to pick one",
    );
  if (ref !== undefined && !/^[A-Za-z0-9._/-]+$/.test(ref))
    throw new UsageError(`--workspace-git: "${ref}" is not a branch or tag name`);
  return ref === undefined ? { url } : { url, ref };
}

export const ENGINE_WORKSPACE_PREFIX = "engine:";

/**
 * The engine a start runs on: `--docker-host` (an endpoint or a context), else
 * the one DOCKER_HOST or the docker context names. Shipping is needed on any
 * engine not known to share this machine's files, and asked for with `--ship`.
 */
export function engineTarget(options: {
  dockerHost?: string | undefined;
  ship?: boolean | undefined;
}): EngineTarget {
  const endpoint = options.dockerHost ? parseDockerHost(options.dockerHost) : resolveDockerEndpoint();
  const local = isLocalEngine(endpoint.host);
  return { endpoint, local, ship: !local || options.ship === true };
}

/** `--workspace engine:/srv/repo` → the absolute path on the engine's host. */
export function enginePath(workspace: string): string | undefined {
  if (!workspace.startsWith(ENGINE_WORKSPACE_PREFIX)) return undefined;
  const at = workspace.slice(ENGINE_WORKSPACE_PREFIX.length);
  if (!path.posix.isAbsolute(at) || path.posix.normalize(at) !== at || at === "/")
    throw new UsageError(
      `--workspace ${workspace}: a directory of the engine's host is named by its absolute path, e.g. engine:/srv/repo`,
    );
  return at;
}

/**
 * The address a sandbox's server is published on and the URL it is reached
 * by: 127.0.0.1 unless asked; an ssh:// engine's 127.0.0.1, reached through
 * an SSH tunnel (`tunnel`: the URL is then a local port forwarded there); any
 * other engine elsewhere needs `--publish-address` (an address of that
 * engine's host that this machine reaches), because its loopback is not ours
 * and all interfaces are never chosen for the user.
 */
export function publishing(
  target: EngineTarget | undefined,
  options: { publishAddress?: string | undefined; allowRemote?: boolean | undefined },
): { hostIp: string; urlHost: string; tunnel?: true } {
  const address = options.publishAddress;
  if (address !== undefined) {
    if (isIP(address) === 0)
      throw new UsageError(
        `--publish-address ${address} is not an IP address`,
        "name an address of the engine's host, e.g. 10.0.0.5",
      );
    if (options.allowRemote)
      throw new UsageError("--publish-address and --allow-remote both say where to publish; give one");
    if (!target) throw new UsageError("--publish-address applies to a Docker sandbox (--sandbox docker)");
    return { hostIp: address, urlHost: isIP(address) === 6 ? `[${address}]` : address };
  }
  if (target && !target.local && target.endpoint.host.startsWith("ssh://") && !options.allowRemote)
    return { hostIp: "127.0.0.1", urlHost: "127.0.0.1", tunnel: true };
  if (target && !target.local)
    throw new UsageError(
      `the engine ${target.endpoint.host} is not on this machine, so its 127.0.0.1 is not this machine's: the runtime must be published on an address you name`,
      "pass --publish-address with an address of that host this machine reaches (an ssh:// engine is reached through an SSH tunnel instead)",
    );
  return { hostIp: options.allowRemote ? "0.0.0.0" : "127.0.0.1", urlHost: "127.0.0.1" };
}
