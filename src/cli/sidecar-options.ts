import { statSync } from "node:fs";
import path from "node:path";
import { type Command, Option } from "commander";
import { UsageError } from "../errors/errors.js";
import type { SidecarName } from "../sidecars/names.js";
import { SOURCE_CHOICES, type SourceChoice } from "../sources/choices.js";
import type { SourcePolicy } from "../sources/resolve.js";

/** The flags as commander hands them over. */
export interface SidecarOverrideFlags {
  opencodeBin?: string | undefined;
  routerBin?: string | undefined;
  serverBin?: string | undefined;
  allowExternal?: boolean | undefined;
  allowVersionMismatch?: boolean | undefined;
  source?: string | undefined;
}

const OVERRIDES: Array<{
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

/** Add --opencode-bin/--router-bin/--server-bin, --allow-external and --allow-version-mismatch to a command. */
export function addSidecarOverrideOptions(command: Command): Command {
  for (const { flag, what } of OVERRIDES) {
    command.option(
      `${flag} <path>`,
      `use this file as ${what} instead of the manifest's (needs --allow-external)`,
    );
  }
  return command
    .option("--allow-external", "allow --*-bin overrides: files that are not verified against the manifest")
    .option(
      "--allow-version-mismatch",
      "accept an override whose reported version differs from the manifest's pin",
    );
}

/** Add --source auto|bundled|npm|url. */
export function addSourceOption(command: Command): Command {
  return command.addOption(
    new Option(
      "--source <source>",
      "where sidecars come from: bundled packages, npm, the manifest's URL, or auto (bundled, else download)",
    )
      .choices([...SOURCE_CHOICES])
      .default("auto"),
  );
}

/**
 * Turn the flags into a SourcePolicy, checking them as usage errors: an
 * override without --allow-external, or naming no regular file, exits 2.
 */
export function sourcePolicyFrom(flags: SidecarOverrideFlags): SourcePolicy {
  const external: Partial<Record<SidecarName, string>> = {};
  for (const { flag, key, name } of OVERRIDES) {
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
