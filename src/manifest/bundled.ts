import { readFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../config/package-root.js";
import type { HttpOptions } from "../download/http.js";
import { UsageError } from "../errors/errors.js";
import { type Logger, silentLogger } from "../logging/logger.js";
import { findBundled } from "../sidecars/bundled.js";
import { NPM_BINARY_PATH, npmPackageFor, STAGED_FILE } from "../sidecars/names.js";
import { hostTarget, type Target } from "../sidecars/platform.js";
import { probeVersion } from "../sidecars/version.js";
import { type BlobStore, openStore } from "../store/store.js";
import type { Manifest, ManifestEntry } from "./schema.js";

export interface BundledManifestOptions extends HttpOptions {
  /** npm registry base URL (default: npm's configuration) */
  registry?: string | undefined;
  /** where hashes of bundled files are cached (default: the store under OPENWORK_HOME) */
  store?: BlobStore | undefined;
  /**
   * Fetch the npm packages that are not installed here (other targets) to
   * learn their binaries' sha256 and size. Without it those stay null and the
   * registry's sha512 integrity of the tarball pins the bytes (docs/manifest.md).
   */
  resolve?: boolean | undefined;
  log?: Logger | undefined;
}

/**
 * The manifest of the sidecars this installation pins: opencode and node at
 * the versions in package.json's optionalDependencies (installed for the host
 * target, read from the registry for others) and the server built from this
 * repository. For an installed package the binary is hashed here; for the
 * others the tarball integrity comes from the registry's packument.
 */
export async function buildBundledManifest(
  targets: readonly Target[],
  options: BundledManifestOptions = {},
): Promise<Manifest> {
  const store = options.store ?? openStore({ log: options.log });
  const log = options.log ?? silentLogger();
  const server = await serverEntry(store);
  const manifest: Manifest = {
    manifestVersion: 1,
    runtimeVersion: server.version,
    generatedAt: new Date().toISOString(),
    sidecars: { opencode: { targets: {} }, "openwork-server": { targets: {} }, node: { targets: {} } },
  };
  for (const target of targets) {
    if (target.startsWith("windows-")) {
      throw new UsageError(`no runtime for ${target}: sidecars run on Linux (sandboxes) or macOS hosts`);
    }
    manifest.sidecars["openwork-server"].targets[target] = server;
    for (const name of ["opencode", "node"] as const) {
      manifest.sidecars[name].targets[target] = await npmEntry(name, target, store, options, log);
    }
  }
  return manifest;
}

/** The pinned version of an npm-published sidecar: package.json's optionalDependencies name one per platform. */
export function pinnedVersion(name: "opencode" | "node"): string {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as {
    optionalDependencies?: Record<string, string>;
  };
  const prefix = `${name}-`;
  const versions = Object.entries(pkg.optionalDependencies ?? {})
    .filter(([dep]) => dep.startsWith(prefix) && /^(linux|darwin|windows)-/.test(dep.slice(prefix.length)))
    .map(([, version]) => version);
  const version = versions[0];
  if (!version || versions.some((other) => other !== version)) {
    throw new UsageError(
      `package.json pins no single version of ${name} in optionalDependencies (found: ${versions.join(", ") || "none"})`,
    );
  }
  return version;
}

async function serverEntry(store: BlobStore): Promise<ManifestEntry> {
  const lookup = findBundled("openwork-server", "linux-x64");
  if (!lookup.found) throw new UsageError(`the runtime server is not built: ${lookup.reason}`);
  const file = lookup.sidecar.path;
  const { sha256, size } = await store.statCache.hash(file);
  // The bundle is stamped at build time (it may differ from package.json): ask it — once per content
  // hash (the store's version cache), not on every start.
  let version = await store.versions.get(sha256);
  if (version === undefined) {
    version = (await probeVersion([process.execPath, file])).version;
    await store.versions.set(sha256, version);
  }
  return { version, file: STAGED_FILE["openwork-server"], sha256, size, source: { type: "bundled" } };
}

async function npmEntry(
  name: "opencode" | "node",
  target: Target,
  store: BlobStore,
  options: BundledManifestOptions,
  log: Logger,
): Promise<ManifestEntry> {
  const pkgName = npmPackageFor(name, target);
  const binPath = NPM_BINARY_PATH[name];
  if (!pkgName || !binPath) throw new UsageError(`no npm package carries ${name} for ${target}`);
  const version = pinnedVersion(name);
  const installed = findBundled(name, target);
  if (installed.found && installed.sidecar.declaredVersion === version) {
    const integrity =
      lockedIntegrity(pkgName, version) ?? (await registryIntegrity(pkgName, version, options));
    const { sha256, size } = await store.statCache.hash(installed.sidecar.path);
    return {
      version,
      file: STAGED_FILE[name],
      sha256,
      size,
      source: { type: "npm", package: pkgName, version, integrity, path: binPath },
    };
  }
  const integrity = await registryIntegrity(pkgName, version, options);
  const entry: ManifestEntry = {
    version,
    file: STAGED_FILE[name],
    sha256: null,
    size: null,
    source: { type: "npm", package: pkgName, version, integrity, path: binPath },
  };
  if (options.resolve) {
    // Downloads are loaded only when a manifest is built with --resolve, never by a start.
    const { fetchNpmBinary } = await import("../download/npm.js");
    const blob = await fetchNpmBinary({
      ...options,
      log,
      store,
      package: pkgName,
      version,
      integrity,
      path: binPath,
      what: `${name} ${version} for ${target}`,
    });
    entry.sha256 = blob.sha256;
    entry.size = blob.size;
  }
  return entry;
}

/** The integrity npm recorded when it installed the package (package-lock.json or node_modules/.package-lock.json). */
function lockedIntegrity(pkgName: string, version: string): string | undefined {
  const root = packageRoot();
  for (const lock of [
    path.join(root, "package-lock.json"),
    path.join(root, "node_modules", ".package-lock.json"),
  ]) {
    try {
      const data = JSON.parse(readFileSync(lock, "utf8")) as {
        packages?: Record<string, { version?: string; integrity?: string }>;
      };
      const entry = data.packages?.[`node_modules/${pkgName}`];
      if (entry?.version === version && entry.integrity?.startsWith("sha512-")) return entry.integrity;
    } catch {
      // no lock file here: ask the registry
    }
  }
  return undefined;
}

async function registryIntegrity(
  pkgName: string,
  version: string,
  options: BundledManifestOptions,
): Promise<string> {
  const { fetchPackument, packumentVersion } = await import("../npm/registry.js");
  const packument = await fetchPackument(pkgName, options);
  const integrity = packumentVersion(packument, version).dist.integrity;
  if (!integrity?.startsWith("sha512-")) {
    throw new UsageError(`the registry gives no sha512 integrity for ${pkgName}@${version}`);
  }
  return integrity;
}

/** The manifest used when none is given: the bundled one for `target` (default: this host). */
export function defaultManifest(
  target: Target = hostTarget(),
  options: BundledManifestOptions = {},
): Promise<Manifest> {
  return buildBundledManifest([target], options);
}
