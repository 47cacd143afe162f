import { statSync } from "node:fs";
import path from "node:path";
import { UsageError } from "../errors/errors.js";
import type { SidecarName } from "../sidecars/names.js";
import { SOURCE_CHOICES, type SourceChoice } from "./choices.js";
import type { SourcePolicy } from "./resolve.js";

/*
 * Where a start's sidecars may come from, from what the user asked (the
 * start flags, or the same keys of a worker in workers.json): one rule for
 * both, so a worker cannot run an unverified file that `start` would refuse.
 */

/** The flags as commander hands them over. */
export interface SidecarOverrideFlags {
  opencodeBin?: string | undefined;
  routerBin?: string | undefined;
  serverBin?: string | undefined;
  allowExternal?: boolean | undefined;
  allowVersionMismatch?: boolean | undefined;
  source?: string | undefined;
}

export const SIDECAR_OVERRIDES: Array<{
  flag: string;
  key: "opencodeBin" | "routerBin" | "serverBin";
  name: SidecarName;
  what: string;
}> = [
  { flag: "--opencode-bin", key: "opencodeBin", name: "opencode", what: "the opencode engine" },
  { flag: "--router-bin", key: "routerBin", name: "opencode-router", what: "the router" },
  {
    flag: "--server-bin",
    key: "serverBin",
    name: "openwork-server",
    what: "the runtime server bundle (.mjs)",
  },
];

/**
 * Turn the flags into a SourcePolicy, checking them as usage errors: an
 * override without --allow-external, or naming no regular file, exits 2.
 */
export function sourcePolicyFrom(flags: SidecarOverrideFlags): SourcePolicy {
  const external: Partial<Record<SidecarName, string>> = {};
  for (const { flag, key, name } of SIDECAR_OVERRIDES) {
    const value = flags[key];
    if (value === undefined) continue;
    if (!flags.allowExternal) {
      throw new UsageError(
        `${flag} needs --allow-external`,
        "an override is not verified against the manifest; allow it explicitly",
      );
    }
    const file = path.resolve(value);
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      throw new UsageError(`${flag} ${file}: no such file`);
    }
    if (!isFile) throw new UsageError(`${flag} ${file}: not a regular file`);
    external[name] = file;
  }
  if (flags.source !== undefined && !(SOURCE_CHOICES as readonly string[]).includes(flags.source)) {
    throw new UsageError(`--source must be one of ${SOURCE_CHOICES.join(", ")}, not "${flags.source}"`);
  }
  return {
    prefer: (flags.source as SourceChoice | undefined) ?? "auto",
    external,
    allowExternal: flags.allowExternal === true,
    allowVersionMismatch: flags.allowVersionMismatch === true,
  };
}
