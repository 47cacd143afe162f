import { lstatSync, readdirSync } from "node:fs";
import path from "node:path";
import { isWithin } from "./resolve.js";

/**
 * System directories: mounting them (or anything below) hands the sandbox the
 * host's binaries, configuration or kernel interfaces. `/var` itself is refused
 * but not all of it: macOS keeps per-user temporary directories in
 * /var/folders (/private/var/folders), which users legitimately mount.
 */
export const SYSTEM_DIRECTORIES: readonly string[] = [
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/snap",
  "/sys",
  "/usr",
  "/var/cache",
  "/var/db",
  "/var/lib",
  "/var/log",
  "/var/run",
  "/var/spool",
  "/System",
  "/Library",
  "/Applications",
  "/Volumes",
  "/cores",
  "/private/etc",
  "/private/var/db",
  "/private/var/root",
  "/private/var/run",
  "/private/var/log",
  "/private/var/vm",
  "C:\\Windows",
  "C:\\Program Files",
  "C:\\Program Files (x86)",
  "C:\\ProgramData",
];

/** Exactly these (not their subdirectories) are refused: too broad to mount, but hold legitimate children. */
export const BROAD_DIRECTORIES: readonly string[] = [
  "/var",
  "/private",
  "/private/var",
  "/home",
  "/Users",
  "/opt",
  "/mnt",
  "/media",
  "/srv",
  "/tmp",
  "/private/tmp",
];

/**
 * Credential directories and files, matched as whole path segments (or runs
 * of segments): `.env` refuses `/p/.env` and `/p/.env/x`, never `/p/my.envdir`.
 */
export const CREDENTIAL_SEGMENTS: readonly string[] = [
  ".ssh",
  ".aws",
  ".kube",
  ".docker",
  ".gnupg",
  ".azure",
  ".config/gcloud",
  ".config/gh",
  ".config/op",
  ".config/hub",
  ".config/doctl",
  ".gcloud",
  ".oci",
  ".password-store",
  ".vault-token",
  ".netrc",
  ".npmrc",
  ".pypirc",
  ".git-credentials",
  ".terraform.d",
  ".env",
  ".secrets",
  ".1password",
  "Library/Keychains",
];

/** Unix sockets of container engines (Docker, containerd, Podman, BuildKit, CRI-O, Apple's container). */
const ENGINE_SOCKET_NAMES =
  /^(docker|containerd|podman|buildkitd|crio|cri-dockerd|dockershim|containerd-shim|docker-shim|rootlesskit|colima|orbstack|apiserver)(\.[^/]*)?\.sock$|^(docker|podman)\.socket$/;

export function isEngineSocketName(name: string): boolean {
  return ENGINE_SOCKET_NAMES.test(name);
}

/** Well-known engine socket locations and engine state directories, for this user. */
export function knownEngineSockets(home: string, env: NodeJS.ProcessEnv): string[] {
  const list = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/buildkit/buildkitd.sock",
    "/run/crio/crio.sock",
    path.join(home, ".docker", "run", "docker.sock"),
    path.join(home, ".docker", "desktop", "docker.sock"),
    path.join(home, ".colima", "default", "docker.sock"),
    path.join(home, ".orbstack", "run", "docker.sock"),
    path.join(home, ".rd", "docker.sock"),
    path.join(home, ".lima"),
    path.join(home, "Library", "Containers", "com.docker.docker", "Data"),
    // Apple's container: its apiserver state and XPC endpoints live under its app root
    path.join(home, "Library", "Application Support", "com.apple.container"),
  ];
  const runtimeDir = env.XDG_RUNTIME_DIR;
  if (runtimeDir) {
    list.push(
      path.join(runtimeDir, "docker.sock"),
      path.join(runtimeDir, "podman", "podman.sock"),
      path.join(runtimeDir, "containerd", "containerd.sock"),
      path.join(runtimeDir, "buildkit", "buildkitd.sock"),
    );
  }
  const dockerHost = env.DOCKER_HOST;
  if (dockerHost?.startsWith("unix://")) list.push(dockerHost.slice("unix://".length));
  const containerHost = env.CONTAINER_HOST;
  if (containerHost?.startsWith("unix://")) list.push(containerHost.slice("unix://".length));
  return list;
}

/** The first credential pattern whose segments appear, in order and whole, in `p`; undefined if none. */
export function credentialSegmentIn(
  p: string,
  patterns: readonly string[] = CREDENTIAL_SEGMENTS,
): string | undefined {
  const segments = p.split(/[\\/]+/).filter((s) => s !== "");
  for (const pattern of patterns) {
    const wanted = pattern.split("/");
    for (let i = 0; i + wanted.length <= segments.length; i++) {
      if (wanted.every((w, j) => segments[i + j] === w)) return pattern;
    }
  }
  return undefined;
}

export function systemDirectoryFor(p: string): string | undefined {
  for (const dir of SYSTEM_DIRECTORIES) {
    const windows = /^[A-Za-z]:\\/.test(dir);
    if (windows) {
      if (p.toLowerCase() === dir.toLowerCase() || p.toLowerCase().startsWith(`${dir.toLowerCase()}\\`))
        return dir;
    } else if (isWithin(p, dir)) return dir;
  }
  return undefined;
}

/**
 * Look for an engine socket at or below `dir`, two levels deep and bounded:
 * a socket further down is reached only through a directory we would have
 * seen. Both real sockets with engine names and any entry so named count.
 */
export function findEngineSocketBelow(dir: string, maxEntries = 5000): string | undefined {
  let seen = 0;
  const queue: Array<{ dir: string; depth: number }> = [{ dir, depth: 0 }];
  while (queue.length > 0) {
    const next = queue.shift();
    if (!next) break;
    let entries: import("node:fs").Dirent[];
    try {
      entries = readdirSync(next.dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (++seen > maxEntries) return undefined;
      const full = path.join(next.dir, entry.name);
      if (isEngineSocketName(entry.name)) return full;
      if (
        entry.isSocket() &&
        /\.sock(et)?$/.test(entry.name) &&
        /(docker|containerd|podman|buildkit|crio)/.test(entry.name)
      )
        return full;
      if (entry.isDirectory() && next.depth < 2) queue.push({ dir: full, depth: next.depth + 1 });
    }
  }
  return undefined;
}

export function isSocket(p: string): boolean {
  try {
    return lstatSync(p).isSocket();
  } catch {
    return false;
  }
}
