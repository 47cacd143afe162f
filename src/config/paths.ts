import path from "node:path";
import envPaths from "env-paths";

/**
 * Where openwork keeps its state. OPENWORK_HOME moves all of it (tests rely on
 * that); otherwise the platform's data and cache directories are used.
 */
export interface OpenworkPaths {
  home: string;
  /** content-addressed sidecar blobs and their stat cache */
  store: string;
  /** run records and per-run directories */
  runs: string;
  /** downloaded or built inputs that can be recreated (rootfs tarballs, packuments) */
  cache: string;
  /** cross-process locks */
  locks: string;
}

export function openworkPaths(env: NodeJS.ProcessEnv = process.env): OpenworkPaths {
  const explicit = env.OPENWORK_HOME;
  if (explicit) {
    const home = path.resolve(explicit);
    return {
      home,
      store: path.join(home, "store"),
      runs: path.join(home, "runs"),
      cache: path.join(home, "cache"),
      locks: path.join(home, "locks"),
    };
  }
  const platform = envPaths("openwork", { suffix: "" });
  return {
    home: platform.data,
    store: path.join(platform.data, "store"),
    runs: path.join(platform.data, "runs"),
    cache: platform.cache,
    locks: path.join(platform.data, "locks"),
  };
}
