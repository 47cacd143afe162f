import { errorMessage } from "../errors/errors.js";
import { findBundled } from "./bundled.js";
import { sha256File } from "./hash.js";
import { SIDECAR_NAMES, type SidecarName } from "./names.js";
import { canExecute, type Target } from "./platform.js";
import { probeVersion } from "./version.js";

export interface SidecarRow {
  name: SidecarName;
  target: Target;
  status: "ok" | "missing" | "error";
  source: "bundled" | "none";
  origin?: string | undefined;
  path?: string | undefined;
  size?: number | undefined;
  sha256?: string | undefined;
  /** what the binary itself reported with --version; null when this host cannot run it */
  version?: string | null | undefined;
  declaredVersion?: string | undefined;
  reason?: string | undefined;
}

/** How to run a sidecar to ask its version: the server needs a Node to run it. */
export function versionCommand(name: SidecarName, file: string, target: Target): string[] {
  if (name !== "openwork-server") return [file];
  const node = findBundled("node", target);
  return [node.found ? node.sidecar.path : process.execPath, file];
}

export async function listBundledSidecars(target: Target): Promise<SidecarRow[]> {
  return Promise.all(
    SIDECAR_NAMES.map(async (name): Promise<SidecarRow> => {
      const lookup = findBundled(name, target);
      if (!lookup.found) return { name, target, status: "missing", source: "none", reason: lookup.reason };
      const { sidecar } = lookup;
      const row: SidecarRow = {
        name,
        target,
        status: "ok",
        source: "bundled",
        origin: sidecar.origin,
        path: sidecar.path,
        declaredVersion: sidecar.declaredVersion,
      };
      try {
        Object.assign(row, await sha256File(sidecar.path));
        row.version = canExecute(target)
          ? (await probeVersion(versionCommand(name, sidecar.path, target))).version
          : null;
      } catch (error) {
        row.status = "error";
        row.reason = errorMessage(error);
      }
      return row;
    }),
  );
}
