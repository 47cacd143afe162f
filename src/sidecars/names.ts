/** The sidecars of a runtime. `node` runs the server (DESIGN.md §8). */
export const SIDECAR_NAMES = ["opencode", "opencode-router", "openwork-server", "node"] as const;
export type SidecarName = (typeof SIDECAR_NAMES)[number];

/** The file name each sidecar has once staged (what the entrypoint executes). */
export const STAGED_FILE: Record<SidecarName, string> = {
  opencode: "opencode",
  "opencode-router": "opencode-router",
  "openwork-server": "openwork-server.mjs",
  node: "node",
};

/** npm platform package naming for each sidecar published on npm. */
export function npmPackageFor(name: SidecarName, target: string): string | undefined {
  switch (name) {
    case "opencode":
      return `opencode-${target}`;
    case "node":
      return target.startsWith("linux-") || target.startsWith("darwin-") ? `node-${target}` : undefined;
    default:
      return undefined;
  }
}

/** Path of the binary inside its npm package. */
export const NPM_BINARY_PATH: Partial<Record<SidecarName, string>> = {
  opencode: "bin/opencode",
  node: "bin/node",
};
