import { UsageError } from "../errors/errors.js";

/** What a shell, Docker and Apple's CLI all accept as a variable name. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Names the runtime sets itself. A value given for one of them would be
 * overwritten (or would break the run), so it is refused, never dropped.
 */
const RESERVED: ReadonlyArray<{ matches(name: string): boolean; why: string }> = [
  { matches: (name) => name.startsWith("OPENWORK_"), why: "OPENWORK_* names are openwork's own settings" },
  {
    matches: (name) => name === "OPENCODE_SERVER_PASSWORD" || name === "OPENCODE_SERVER_USERNAME",
    why: "the engine's server credentials are generated for each run and never leave it",
  },
  {
    matches: (name) =>
      ["HOME", "PATH", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"].includes(name),
    why: "the runtime sets it to its own persisted directory",
  },
  {
    matches: (name) => name === "NODE_EXTRA_CA_CERTS" || name === "SSL_CERT_FILE",
    why: "it would name a file of this machine; pass the bundle with --ca-cert FILE instead",
  },
];

/** Why a name cannot be given to the runtime, or undefined when it can. */
export function reservedReason(name: string): string | undefined {
  return RESERVED.find((rule) => rule.matches(name))?.why;
}

/** A name the runtime's environment may take; `where` says where it was given (a flag, FILE:LINE, the store). */
export function checkEnvName(name: string, where: string): void {
  if (!ENV_NAME.test(name))
    throw new UsageError(
      `${where}: ${JSON.stringify(name)} is not a valid environment variable name`,
      "use letters, digits and underscores, not starting with a digit",
    );
  const why = reservedReason(name);
  if (why) throw new UsageError(`${where}: ${name} is reserved (${why})`, `remove ${name} from ${where}`);
}

export function isEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}
