import { randomBytes } from "node:crypto";
import { constants, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { PersistLayout } from "../contract/layout.js";
import {
  parseRuntimeJson,
  RUNTIME_ID_PATTERN,
  type RuntimeContent,
  type RuntimeJson,
  RuntimeTamperedError,
  runtimeIdOf,
  runtimeJsonOf,
  type StagedSidecarEntry,
  serializeRuntimeJson,
  verifyStagedFiles,
} from "../contract/runtime.js";
import { errorMessage, isOpenworkError, OpenworkError, systemErrorCode } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { parseManifest } from "../manifest/parse.js";
import { manifestEntry } from "../manifest/schema.js";
import { sha256File } from "../sidecars/hash.js";
import { SIDECAR_NAMES, type SidecarName, STAGED_FILE } from "../sidecars/names.js";

/** A staged runtime: its directory and its runtime.json (src/contract/runtime.ts). */
export interface StagedRuntime {
  dir: string;
  json: RuntimeJson;
}

/** Read and check a staged runtime: its runtime.json must hash to the directory's id. */
export function readRuntime(layout: PersistLayout, runtimeId: string): StagedRuntime {
  const dir = layout.runtimeDir(runtimeId);
  const file = layout.runtimeJson(runtimeId);
  if (!RUNTIME_ID_PATTERN.test(runtimeId)) {
    throw new OpenworkError(`"${runtimeId}" is not a runtime id (16 lowercase hex digits)`, {
      code: "runtime_not_found",
    });
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new OpenworkError(
      systemErrorCode(error) === "ENOENT"
        ? `staged runtime ${runtimeId} has no ${file}`
        : `cannot read ${file}: ${errorMessage(error)}`,
      {
        code: "runtime_not_found",
        hint: "stage the runtime (its sidecars and runtime.json) under the persisted directory first",
      },
    );
  }
  return { dir, json: parseRuntimeJson(text, file, runtimeId) };
}

/** The staged path of one sidecar (its file name is fixed by the contract: it cannot point elsewhere). */
export function sidecarPath(runtime: StagedRuntime, name: SidecarName): string | undefined {
  return runtime.json.sidecars[name] ? path.join(runtime.dir, STAGED_FILE[name]) : undefined;
}

/**
 * Hash every named sidecar and compare with runtime.json before anything
 * from it is executed: the server has no stat cache to trust, so every byte is read.
 */
export async function verifyRuntime(runtime: StagedRuntime, names: readonly SidecarName[]): Promise<void> {
  await verifyStagedFiles(runtime.dir, runtime.json, names, sha256File);
}

/** A manifest upgrade, planned: what runtime it makes and where each file comes from. */
export interface ManifestPlan {
  runtimeId: string;
  content: RuntimeContent;
  /** the file each sidecar is copied from (the manifest's `dir`, or the running runtime for what it does not name) */
  sources: Partial<Record<SidecarName, string>>;
}

/**
 * Read a Manifest v1 (docs/manifest.md) for a runtime of `current`'s target.
 * Its files are in `dir`, named by each entry's `file`; what the manifest has
 * no entry for is carried over from the running runtime. The runtime id is
 * computed from the content alone, so the plan is known before any byte is copied.
 */
export function planManifest(manifestFile: string, dir: string, current: StagedRuntime): ManifestPlan {
  let text: string;
  try {
    text = readFileSync(manifestFile, "utf8");
  } catch (error) {
    throw new OpenworkError(`cannot read manifest ${manifestFile}: ${errorMessage(error)}`, {
      code: "manifest_invalid",
    });
  }
  let manifest: ReturnType<typeof parseManifest>;
  try {
    manifest = parseManifest(text, manifestFile);
  } catch (error) {
    throw new OpenworkError(errorMessage(error), {
      code: "manifest_invalid",
      hint: isOpenworkError(error) ? error.hint : undefined,
    });
  }
  const target = current.json.target;
  const sidecars: Partial<Record<SidecarName, StagedSidecarEntry>> = {};
  const sources: Partial<Record<SidecarName, string>> = {};
  for (const name of SIDECAR_NAMES) {
    const entry = manifestEntry(manifest, name, target);
    if (entry) {
      if (entry.sha256 === null || entry.size === null) {
        throw new OpenworkError(
          `manifest ${manifestFile}: sidecars.${name}.targets.${target} has no sha256 and size, which the server needs to verify the file`,
          {
            code: "manifest_invalid",
            hint: "use `openwork runtime upgrade --manifest`, which fetches and hashes npm sources, or a manifest with sha256 and size",
          },
        );
      }
      sidecars[name] = {
        file: STAGED_FILE[name],
        sha256: entry.sha256,
        size: entry.size,
        version: entry.version,
      };
      sources[name] = path.resolve(dir, entry.file);
      continue;
    }
    const carried = current.json.sidecars[name];
    if (carried) {
      sidecars[name] = carried;
      sources[name] = sidecarPath(current, name) as string;
    }
  }
  const content: RuntimeContent = { target, runtimeVersion: manifest.runtimeVersion, sidecars };
  return { runtimeId: runtimeIdOf(content), content, sources };
}

/**
 * Stage a planned manifest runtime under its content-addressed id. An
 * existing runtime with that id is the same runtime and is used as it is
 * (never removed: it may be the one running). Otherwise every file is copied
 * (never linked: nothing staged may share an inode with the caller's files)
 * into a private temporary directory, hashed there, and the directory is
 * renamed into place only when all match; any failure removes it.
 */
export async function stagePlan(
  layout: PersistLayout,
  plan: ManifestPlan,
): Promise<{ runtime: StagedRuntime; created: boolean }> {
  try {
    return { runtime: readRuntime(layout, plan.runtimeId), created: false };
  } catch (error) {
    if (!isOpenworkError(error) || error.code !== "runtime_not_found") throw error;
  }
  await mkdir(layout.runtimesDir, { recursive: true });
  const temp = path.join(layout.runtimesDir, `.staging-${plan.runtimeId}-${randomBytes(4).toString("hex")}`);
  try {
    await mkdir(temp, { mode: 0o755 });
  } catch (error) {
    // In a sandbox the runtimes are mounted read-only: what it runs is staged by the host, never by itself.
    if (systemErrorCode(error) === "EROFS" || systemErrorCode(error) === "EACCES")
      throw new OpenworkError(
        `this runtime cannot stage a manifest itself: ${layout.runtimesDir} is read-only here (a sandbox runs only what the host staged and verified)`,
        {
          code: "manifest_invalid",
          hint: "upgrade with `openwork runtime upgrade --manifest …`, which stages it on the host and names its runtime id",
        },
      );
    throw error;
  }
  try {
    const json = runtimeJsonOf(plan.content);
    for (const [name, source] of Object.entries(plan.sources) as Array<[SidecarName, string]>) {
      const dest = path.join(temp, STAGED_FILE[name]);
      try {
        await copyFile(source, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      } catch (error) {
        throw new OpenworkError(`cannot copy ${source} for ${name}: ${errorMessage(error)}`, {
          code: "manifest_invalid",
        });
      }
      await chmod(dest, 0o755);
    }
    // What is checked is the copy, not the source: the source may change after it was read.
    await verifyStagedFiles(temp, json, Object.keys(plan.sources) as SidecarName[], sha256File).catch(
      (error: unknown) => {
        if (error instanceof RuntimeTamperedError)
          throw new RuntimeTamperedError(
            json.runtimeId,
            layout.runtimeDir(json.runtimeId),
            error.mismatches.map((m) => ({ ...m, file: plan.sources[m.name] ?? m.file })),
          );
        throw error;
      },
    );
    await writeFileAtomic(path.join(temp, "runtime.json"), serializeRuntimeJson(json));
    try {
      await rename(temp, layout.runtimeDir(plan.runtimeId));
    } catch (error) {
      const code = systemErrorCode(error);
      // Staged meanwhile by someone else: the same id is the same content.
      if (code !== "EEXIST" && code !== "ENOTEMPTY") throw error;
      await rm(temp, { recursive: true, force: true });
      return { runtime: readRuntime(layout, plan.runtimeId), created: false };
    }
    return { runtime: readRuntime(layout, plan.runtimeId), created: true };
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** Remove a runtime this server staged for an upgrade that failed (never one that runs). */
export async function removeStaged(layout: PersistLayout, runtimeId: string): Promise<void> {
  await rm(layout.runtimeDir(runtimeId), { recursive: true, force: true });
}
