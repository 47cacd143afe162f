import { packageVersion } from "../config/package-root.js";

declare const __OPENWORK_SERVER_VERSION__: string | undefined;

/**
 * The server's version: stamped into the bundle at build time (the bundle
 * runs with no package.json beside it), read from package.json when run from dist/.
 */
export const SERVER_VERSION: string =
  typeof __OPENWORK_SERVER_VERSION__ === "string" ? __OPENWORK_SERVER_VERSION__ : packageVersion();

/** Node features that replacing the server in place could use (DESIGN.md §8). */
export function nodeFeatures(): { reusePort: boolean; execve: boolean } {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  return {
    reusePort: major > 22 || (major === 22 && minor >= 12),
    execve: typeof (process as { execve?: unknown }).execve === "function",
  };
}
