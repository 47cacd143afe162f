import type { Command } from "commander";
import { UsageError } from "../errors/errors.js";

export interface SidecarOverrideFlags {
  opencodeBin?: string;
  routerBin?: string;
  serverBin?: string;
  allowExternal?: boolean;
  allowVersionMismatch?: boolean;
}

/** The override flags shared by start, serve and sidecars fetch/verify. */
export function sidecarOverrideOptions(command: Command): Command {
  return command
    .option(
      "--opencode-bin <path>",
      "use this opencode binary instead of the manifest's (needs --allow-external)",
    )
    .option("--router-bin <path>", "use this opencode-router binary (needs --allow-external)")
    .option("--server-bin <path>", "use this openwork-server bundle (needs --allow-external)")
    .option("--allow-external", "allow sidecars from explicit paths; their reported version is still checked")
    .option("--allow-version-mismatch", "run an external sidecar even when its version differs from the pin");
}

export function parseSidecarOverrides(flags: SidecarOverrideFlags): {
  overrides: Record<string, string>;
  allowExternal: boolean;
  allowVersionMismatch: boolean;
} {
  const overrides: Record<string, string> = {};
  if (flags.opencodeBin) overrides.opencode = flags.opencodeBin;
  if (flags.routerBin) overrides["opencode-router"] = flags.routerBin;
  if (flags.serverBin) overrides["openwork-server"] = flags.serverBin;
  const names = Object.keys(overrides);
  if (names.length > 0 && !flags.allowExternal) {
    throw new UsageError(
      `--${names[0] === "openwork-server" ? "server" : names[0] === "opencode-router" ? "router" : "opencode"}-bin needs --allow-external`,
      "an external sidecar is not verified against the manifest's sha256; say so explicitly",
    );
  }
  if (flags.allowVersionMismatch && names.length === 0) {
    throw new UsageError(
      "--allow-version-mismatch applies only to --opencode-bin, --router-bin or --server-bin",
    );
  }
  return {
    overrides,
    allowExternal: flags.allowExternal === true,
    allowVersionMismatch: flags.allowVersionMismatch === true,
  };
}
