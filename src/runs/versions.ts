import type { RuntimeVersions } from "../contract/api.js";
import { SIDECAR_NAMES, type SidecarName } from "../sidecars/names.js";
import type { RunRecord } from "./record.js";

/** One component's versions: what runs (as it reports itself), what runtime.json pins, what an upgrade moves to. */
export interface ComponentVersions {
  name: SidecarName;
  active: string | null;
  pinned: string | null;
  target: string | null;
}

export interface VersionsReport {
  /** the runtime the pins come from */
  runtimeId: string;
  /** an upgrade in progress */
  target: { runtimeId: string; operationId: string } | null;
  components: ComponentVersions[];
}

/** The server's answer, per component. */
export function versionsReport(versions: RuntimeVersions): VersionsReport {
  return {
    runtimeId: versions.pinned.runtimeId,
    target: versions.target
      ? { runtimeId: versions.target.runtimeId, operationId: versions.target.operationId }
      : null,
    components: SIDECAR_NAMES.map((name) => ({
      name,
      active: versions.active[name],
      pinned: versions.pinned.versions[name] ?? null,
      target: versions.target?.versions[name] ?? null,
    })),
  };
}

/**
 * Where an active version differs from its pin, one line each. A component
 * that has not reported its version is a mismatch only for the engine, which
 * always reports it in its health answer. Node is the server's own runtime:
 * a changed node sidecar applies at the next start, so it is not compared.
 */
export function versionMismatches(versions: RuntimeVersions): string[] {
  const problems: string[] = [];
  for (const name of ["opencode", "opencode-router", "openwork-server"] as const) {
    const pinned = versions.pinned.versions[name];
    const active = versions.active[name];
    if (pinned === undefined) continue;
    if (active === null) {
      if (name === "opencode") problems.push(`${name} has not reported its version (pinned ${pinned})`);
      continue;
    }
    if (active !== pinned)
      problems.push(`${name} runs ${active}, runtime ${versions.pinned.runtimeId} pins ${pinned}`);
  }
  return problems;
}

/** The versions a run record keeps: what the running processes reported (null where they have not). */
export function recordVersions(versions: RuntimeVersions): RunRecord["versions"] {
  return {
    opencode: versions.active.opencode,
    router: versions.active["opencode-router"],
    server: versions.active["openwork-server"],
  };
}
