import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { packageRoot } from "../config/package-root.js";
import { NPM_BINARY_PATH, npmPackageFor, type SidecarName } from "./names.js";
import type { Target } from "./platform.js";

export interface BundledSidecar {
  name: SidecarName;
  target: Target;
  path: string;
  /** where it came from: the npm package (name@version) or this repository's build */
  origin: string;
  /** the version the package declares (the binary's own report is probed separately) */
  declaredVersion: string;
}

export type BundledLookup = { found: true; sidecar: BundledSidecar } | { found: false; reason: string };

const require = createRequire(import.meta.url);

/**
 * Find a sidecar that ships with this installation: the npm platform packages
 * pinned in package-lock.json (opencode, node) or the server built from this
 * repository into dist/sidecars.
 */
export function findBundled(name: SidecarName, target: Target): BundledLookup {
  if (name === "openwork-server") {
    const file = path.join(packageRoot(), "dist", "sidecars", "openwork-server.mjs");
    if (!existsSync(file)) return { found: false, reason: `${file} is missing: run "npm run build"` };
    const pkg = JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as {
      version: string;
    };
    return {
      found: true,
      sidecar: { name, target, path: file, origin: "build of this repository", declaredVersion: pkg.version },
    };
  }
  const pkgName = npmPackageFor(name, target);
  const binPath = NPM_BINARY_PATH[name];
  if (!pkgName || !binPath) return { found: false, reason: `no npm package carries ${name} for ${target}` };
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${pkgName}/package.json`, { paths: [packageRoot()] });
  } catch {
    return {
      found: false,
      reason: `npm package ${pkgName} is not installed (npm installs only the host platform's package)`,
    };
  }
  const pkg = JSON.parse(readFileSync(manifestPath, "utf8")) as { version: string };
  const file = path.join(path.dirname(manifestPath), binPath);
  if (!existsSync(file)) return { found: false, reason: `${pkgName}@${pkg.version} has no ${binPath}` };
  return {
    found: true,
    sidecar: {
      name,
      target,
      path: file,
      origin: `npm:${pkgName}@${pkg.version}`,
      declaredVersion: pkg.version,
    },
  };
}
