import { z } from "zod";
import { UsageError } from "../errors/errors.js";
import { tokenDigest } from "./api.js";
import { hostKeyOf } from "./host-auth.js";
import { runtimeIdSchema } from "./runtime.js";

/** A TCP port given as text (a flag, an environment variable): digits only, 1-65535. */
export const portSchema = z
  .string()
  .trim()
  .regex(/^[0-9]+$/, "expected a TCP port number (digits only)")
  .transform(Number)
  .pipe(z.number().int().min(1, "expected a TCP port 1-65535").max(65535, "expected a TCP port 1-65535"));
const port = portSchema;
const pid = z
  .string()
  .regex(/^[0-9]+$/, "expected a process id (digits only)")
  .transform(Number)
  .pipe(z.number().int().min(2, "expected a process id above 1"));
const path = z.string().min(1, "must not be empty").startsWith("/", "must be an absolute path");
const digest = (what: string) =>
  z.string().regex(/^[0-9a-f]{64}$/, `${what} must be a sha256 digest (64 lowercase hex digits)`);
const flag = z.enum(["0", "1", "true", "false"]).transform((value) => value === "1" || value === "true");

/**
 * The environment `openwork-server serve` is started with (the adoption
 * contract of docs/architecture.md, "Entrypoint environment"). The values are
 * secrets or numbers, so a bad value is reported by variable name and reason,
 * never echoed.
 */
export const serveEnvSchema = z
  .object({
    OPENWORK_PERSIST: path,
    /** where staged runtimes are (default: OPENWORK_PERSIST/runtimes); read-only in a sandbox */
    OPENWORK_RUNTIMES: path.optional(),
    OPENWORK_RUNTIME_ID: runtimeIdSchema,
    OPENWORK_WORKSPACE: path,
    OPENWORK_SERVER_HOST: z.string().min(1).default("127.0.0.1"),
    OPENWORK_SERVER_PORT: port,
    /**
     * The port the server is published on, when it differs from the one it listens on (a sandbox:
     * the browser's Host names the published port; docs/web-ui.md)
     */
    OPENWORK_PUBLISHED_PORT: port.optional(),
    OPENWORK_ENGINE_PID: pid,
    OPENWORK_ENGINE_PORT: port,
    OPENWORK_ENGINE_LOG: path,
    /**
     * 1: the entrypoint started the engine and this server at once; the server waits for the
     * engine's health itself (and fails the start, exiting 1, if it never comes).
     */
    OPENWORK_ENGINE_BOOTING: flag.optional(),
    /** where the entrypoint's keeper records the engine's exit code (a booting engine's failure names it) */
    OPENWORK_ENGINE_EXIT_FILE: path.optional(),
    OPENWORK_ROUTER_ENABLED: flag.optional(),
    OPENWORK_ROUTER_PID: pid.optional(),
    OPENWORK_ROUTER_HEALTH_PORT: port.optional(),
    OPENWORK_ROUTER_LOG: path.optional(),
    // Set only when a server hands over to its replacement after an upgrade of some components:
    // which staged runtime each adopted process runs from (default: OPENWORK_RUNTIME_ID).
    OPENWORK_ENGINE_RUNTIME_ID: runtimeIdSchema.optional(),
    OPENWORK_ROUTER_RUNTIME_ID: runtimeIdSchema.optional(),
    OPENWORK_HEALTH_DEADLINE_S: z.coerce.number().positive().max(3600).default(60),
    /** every log the server writes or tails is rotated past this size */
    OPENWORK_LOG_MAX_BYTES: z.coerce
      .number()
      .int()
      .min(4096)
      .default(10 * 1024 * 1024),
    // What checks the tokens, never a token (DESIGN.md §4a): nothing the agent can read in the
    // sandbox (environment, memory, files) is a usable token.
    OPENWORK_TOKEN_SHA256: digest("the client token's digest"),
    /** the public key the host token is the seed of (src/contract/host-auth.ts) */
    OPENWORK_HOST_KEY: z
      .string()
      .regex(/^[0-9a-f]{64}$/, "must be an Ed25519 public key (64 lowercase hex digits)"),
    OPENCODE_SERVER_USERNAME: z.string().min(1).default("opencode"),
    OPENCODE_SERVER_PASSWORD: z.string().min(8, "the engine password must be at least 8 characters"),
  })
  .superRefine((env, ctx) => {
    const router = env.OPENWORK_ROUTER_ENABLED ?? env.OPENWORK_ROUTER_PID !== undefined;
    if (router) {
      for (const key of [
        "OPENWORK_ROUTER_PID",
        "OPENWORK_ROUTER_HEALTH_PORT",
        "OPENWORK_ROUTER_LOG",
      ] as const) {
        if (env[key] === undefined)
          ctx.addIssue({ code: "custom", path: [key], message: "is required when the router is enabled" });
      }
    }
  });

export type ServeEnv = z.output<typeof serveEnvSchema>;

export function routerEnabled(env: ServeEnv): boolean {
  return env.OPENWORK_ROUTER_ENABLED ?? env.OPENWORK_ROUTER_PID !== undefined;
}

/** Validate the serve environment; a bad one is a UsageError naming the first bad variable. */
export function parseServeEnv(source: NodeJS.ProcessEnv | Record<string, string | undefined>): ServeEnv {
  const result = serveEnvSchema.safeParse(source);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const name = String(issue?.path[0] ?? "environment");
  const missing = source[name] === undefined || source[name] === "";
  throw new UsageError(
    missing && issue?.code !== "custom"
      ? `${name} is not set`
      : issue?.code === "custom"
        ? `${name} ${issue.message}`
        : `${name}: ${issue?.message ?? "invalid"}`,
    "openwork-server serve is started by the runtime's entrypoint, which sets this environment (docs/architecture.md)",
  );
}

/** The same environment as plain strings: what a replacement server module is handed (it validates it again). */
export function serializeServeEnv(env: ServeEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    out[key] = typeof value === "boolean" ? (value ? "1" : "0") : String(value);
  }
  return out;
}

/** Where a host runtime's output goes: set by the host backend on the entrypoint, inherited by the server. */
export const OUTPUT_FILE_ENV = "OPENWORK_SANDBOX_LOG";

/** The secrets of a run (the CLI keeps them); a runtime is given only what it needs to check them. */
export interface RuntimeSecretValues {
  clientToken: string;
  hostToken: string;
  enginePassword: string;
}

/**
 * The entrypoint's (and the server's) environment for the secrets: the client
 * token's sha256 digest and the host token's public key (the server checks
 * tokens; it never holds one), and the engine's password (the engine itself
 * needs it). Only ever in the environment: never in a script, a file or argv.
 */
export function secretEnv(secrets: RuntimeSecretValues): Record<string, string> {
  const hostKey = hostKeyOf(secrets.hostToken);
  if (!hostKey) throw new Error("the run's host token is not an Ed25519 seed (src/contract/host-auth.ts)");
  return {
    OPENWORK_TOKEN_SHA256: tokenDigest(secrets.clientToken).toString("hex"),
    OPENWORK_HOST_KEY: hostKey,
    OPENCODE_SERVER_PASSWORD: secrets.enginePassword,
  };
}
