import { access, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { npmIndexKey } from "../download/npm.js";
import { errorMessage } from "../errors/errors.js";
import { type Manifest, type ManifestEntry, manifestEntry } from "../manifest/schema.js";
import { StatCache } from "../store/stat-cache.js";
import type { BlobStore } from "../store/store.js";
import { findBundled } from "./bundled.js";
import { NPM_BINARY_PATH, SIDECAR_NAMES, type SidecarName } from "./names.js";
import { canExecute, type Target } from "./platform.js";
import { probeVersion } from "./version.js";

export type InventoryStatus = "ok" | "missing" | "mismatch" | "error";

export interface InventoryRow {
  name: SidecarName;
  target: Target;
  status: InventoryStatus;
  /** where the verified copy is: the store, or the bundled package */
  source: "store" | "bundled" | "none";
  origin?: string | undefined;
  path?: string | undefined;
  size?: number | undefined;
  sha256?: string | undefined;
  /** what the binary itself reported with --version; null when this host cannot run it */
  version?: string | null | undefined;
  /** the version the manifest pins */
  pinnedVersion?: string | undefined;
  expectedSha256?: string | null | undefined;
  expectedSize?: number | null | undefined;
  reason?: string | undefined;
}

export interface InventoryOptions {
  store: BlobStore;
  /** re-hash every file instead of trusting the stat cache */
  full?: boolean | undefined;
  /** ask runnable binaries their version (list does; verify need not) */
  probe?: boolean | undefined;
}

/**
 * For each sidecar the manifest has for `target` (and the router, reported
 * missing when absent): is a copy with the pinned bytes at hand — in the store
 * or as the bundled package — and what does it report as its version.
 */
export async function inventory(
  manifest: Manifest,
  target: Target,
  options: InventoryOptions,
): Promise<InventoryRow[]> {
  const scratch = options.full ? await mkdtemp(path.join(os.tmpdir(), "openwork-verify-")) : undefined;
  const statCache = scratch ? new StatCache(scratch) : options.store.statCache;
  try {
    return await Promise.all(
      SIDECAR_NAMES.map((name) =>
        row(name, target, manifestEntry(manifest, name, target), statCache, options),
      ),
    );
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}

async function row(
  name: SidecarName,
  target: Target,
  entry: ManifestEntry | undefined,
  statCache: StatCache,
  options: InventoryOptions,
): Promise<InventoryRow> {
  if (!entry)
    return {
      name,
      target,
      status: "missing",
      source: "none",
      reason: "the manifest has no entry for this target",
    };
  const base: InventoryRow = {
    name,
    target,
    status: "missing",
    source: "none",
    pinnedVersion: entry.version,
    expectedSha256: entry.sha256,
    expectedSize: entry.size,
  };
  try {
    const candidates: Array<{ source: "store" | "bundled"; path: string; origin: string }> = [];
    const stored = await storedBlobPath(entry, name, options.store);
    if (stored) candidates.push({ source: "store", path: stored, origin: `store (${entry.source.type})` });
    const bundled = findBundled(name, target);
    if (bundled.found && (name === "openwork-server" || bundled.sidecar.declaredVersion === entry.version)) {
      candidates.push({ source: "bundled", path: bundled.sidecar.path, origin: bundled.sidecar.origin });
    }
    let mismatch: InventoryRow | undefined;
    for (const candidate of candidates) {
      const actual = await statCache.hash(candidate.path);
      const fits =
        (!entry.sha256 || actual.sha256 === entry.sha256) &&
        (entry.size == null || actual.size === entry.size);
      const found: InventoryRow = { ...base, ...candidate, sha256: actual.sha256, size: actual.size };
      if (fits) {
        found.status = "ok";
        if (options.probe) {
          found.version =
            canExecute(target) || name === "openwork-server"
              ? (
                  await probeVersion(
                    name === "openwork-server" ? [process.execPath, candidate.path] : [candidate.path],
                  )
                ).version
              : null;
        }
        return found;
      }
      // a store blob that fails is reported even when a bundled copy fits: staging would use the store
      if (candidate.source === "store") {
        return {
          ...found,
          status: "mismatch",
          reason: `store blob has sha256 ${actual.sha256} (${actual.size} bytes), the manifest pins ${entry.sha256 ?? "?"} (${entry.size ?? "?"} bytes)`,
        };
      }
      mismatch ??= {
        ...found,
        status: "mismatch",
        reason: `sha256 ${actual.sha256} (${actual.size} bytes), the manifest pins ${entry.sha256 ?? "?"} (${entry.size ?? "?"} bytes)`,
      };
    }
    return (
      mismatch ?? { ...base, reason: `not fetched yet: run "openwork sidecars fetch --target ${target}"` }
    );
  } catch (error) {
    return { ...base, status: "error", reason: errorMessage(error) };
  }
}

async function storedBlobPath(
  entry: ManifestEntry,
  name: SidecarName,
  store: BlobStore,
): Promise<string | undefined> {
  if (entry.sha256) {
    const file = store.blobPath(entry.sha256);
    return (await exists(file)) ? file : undefined;
  }
  if (entry.source.type === "npm") {
    const blob = await store.indexLookup(
      npmIndexKey({
        package: entry.source.package,
        version: entry.source.version,
        integrity: entry.source.integrity,
        path: entry.source.path ?? NPM_BINARY_PATH[name] ?? `bin/${name}`,
      }),
    );
    return blob?.path;
  }
  return undefined;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}
