import path from "node:path";
import envPaths from "env-paths";

/** The environment variable that moves the env store (tests use it; so may a user with dotfiles elsewhere). */
export const ENV_STORE_ENV = "OPENWORK_ENV_STORE";

/**
 * The user's env store: a dotenv file, mode 0600, in the user's config
 * directory (`$XDG_CONFIG_HOME/openwork/env` on Linux, `~/Library/Preferences/openwork/env`
 * on macOS), or where OPENWORK_ENV_STORE names. docs/credentials.md documents it.
 */
export function envStorePath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[ENV_STORE_ENV];
  if (explicit) return path.resolve(explicit);
  return path.join(envPaths("openwork", { suffix: "" }).config, "env");
}
