import path from "node:path";
import semver from "semver";
import type { RuntimeJson, StagedSidecarEntry } from "../contract/runtime.js";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import type { SidecarName } from "../sidecars/names.js";
import { canExecute } from "../sidecars/platform.js";
import { probeVersion } from "../sidecars/version.js";
import type { VersionCache } from "../store/version-cache.js";

/**
 * Every sidecar of a staged runtime must say, asked `--version`, the version
 * runtime.json pins (DESIGN.md §1.2) — checked after its bytes were verified
 * and before it runs, once per content hash (the answer is cached by sha256).
 * A runtime for a target this host cannot execute is vouched for by its
 * hashes alone, and the log says so.
 */
export async function checkReportedVersions(
  dir: string,
  runtime: RuntimeJson,
  options: { cache: VersionCache; log: Logger },
): Promise<void> {
  if (!canExecute(runtime.target)) {
    options.log.debug(
      { runtimeId: runtime.runtimeId, target: runtime.target },
      "the runtime's sidecars cannot run on this host to report their versions; checked by sha256 and size",
    );
    return;
  }
  const entries = Object.entries(runtime.sidecars) as Array<[SidecarName, StagedSidecarEntry]>;
  const reported = await Promise.all(
    entries.map(async ([name, entry]) => {
      const cached = await options.cache.get(entry.sha256);
      if (cached !== undefined) return cached;
      const file = path.join(dir, entry.file);
      const command = name === "openwork-server" ? [process.execPath, file] : [file];
      const { version } = await probeVersion(command, { what: `the ${name} sidecar` });
      await options.cache.set(entry.sha256, version);
      return version;
    }),
  );
  const mismatches = entries.flatMap(([name, entry], index) => {
    const version = reported[index] as string;
    const same =
      semver.valid(version) && semver.valid(entry.version)
        ? semver.eq(version, entry.version)
        : version === entry.version;
    return same ? [] : [`the ${name} sidecar reports version ${version}, runtime.json pins ${entry.version}`];
  });
  if (mismatches.length > 0) {
    throw new OpenworkError(
      `refusing to run the staged runtime ${runtime.runtimeId}: ${mismatches.join("; ")}`,
      {
        code: "version_mismatch",
        hint: "the manifest pins another version than the binary it names; fix the manifest or the binary",
      },
    );
  }
}
