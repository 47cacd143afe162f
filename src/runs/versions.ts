import type { RunRecord } from "./record.js";

/** A component's version as /system/runtime/versions gives it: a string, or an object with `version`. */
export function versionOf(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "version" in value) {
    const version = (value as { version: unknown }).version;
    return typeof version === "string" ? version : undefined;
  }
  return undefined;
}

/** Every component's version in one group (active, pinned or target). */
export function versionsOf(group: Record<string, unknown> | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(group ?? {})) {
    const version = versionOf(value);
    if (version !== undefined) out[name] = version;
  }
  return out;
}

/** The three versions a run record keeps, from the server's `active` group; unknown ones keep their previous value. */
export function recordVersions(
  active: Record<string, unknown> | null | undefined,
  previous: RunRecord["versions"],
): RunRecord["versions"] {
  const versions = versionsOf(active);
  return {
    opencode: versions.opencode ?? previous.opencode,
    router: versions["opencode-router"] ?? previous.router,
    server: versions["openwork-server"] ?? previous.server,
  };
}
