import { createHash } from "node:crypto";
import path from "node:path";
import envPaths from "env-paths";
import type { OpenworkPaths } from "../config/paths.js";

/** Where `workers` commands look for the fleet file when --config is not given. */
export const WORKERS_CONFIG_ENV = "OPENWORK_WORKERS_CONFIG";

/** --config, else OPENWORK_WORKERS_CONFIG, else <user config dir>/openwork/workers.json (XDG on Linux). */
export function workersConfigPath(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (explicit) return path.resolve(explicit);
  const fromEnv = env[WORKERS_CONFIG_ENV];
  if (fromEnv) return path.resolve(fromEnv);
  return path.join(envPaths("openwork", { suffix: "" }).config, "workers.json");
}

/**
 * A fleet is named by its file: one supervisor, one state directory and one
 * service unit per absolute config path, so two fleets never share either.
 */
export function workersConfigId(configFile: string): string {
  return createHash("sha256").update(path.resolve(configFile)).digest("hex").slice(0, 12);
}

/** <OPENWORK_HOME>/workers/<config id>: the supervisor's pid file, heartbeats and log. */
export function workersStateDir(paths: OpenworkPaths, configFile: string): string {
  return path.join(paths.home, "workers", workersConfigId(configFile));
}
