import { z } from "zod";
import { UsageError } from "../errors/errors.js";
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
const secret = (what: string) => z.string().min(16, `${what} must be at least 16 characters`);
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
    OPENWORK_RUNTIME_ID: runtimeIdSchema,
    OPENWORK_WORKSPACE: path,
    OPENWORK_SERVER_HOST: z.string().min(1).default("127.0.0.1"),
    OPENWORK_SERVER_PORT: port,
    OPENWORK_ENGINE_PID: pid,
    OPENWORK_ENGINE_PORT: port,
    OPENWORK_ENGINE_LOG: path,
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
    OPENWORK_TOKEN: secret("the client token"),
    OPENWORK_HOST_TOKEN: secret("the host token"),
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
    if (env.OPENWORK_TOKEN === env.OPENWORK_HOST_TOKEN) {
      ctx.addIssue({
        code: "custom",
        path: ["OPENWORK_HOST_TOKEN"],
        message: "must differ from OPENWORK_TOKEN (a client could otherwise upgrade the runtime)",
      });
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

/** The secrets a runtime is started with: only ever in its environment, never in a script, a file or argv. */
export interface RuntimeSecretValues {
  clientToken: string;
  hostToken: string;
  enginePassword: string;
}

/** The entrypoint's (and the server's) environment variables for the secrets. */
export function secretEnv(secrets: RuntimeSecretValues): Record<string, string> {
  return {
    OPENWORK_TOKEN: secrets.clientToken,
    OPENWORK_HOST_TOKEN: secrets.hostToken,
    OPENCODE_SERVER_PASSWORD: secrets.enginePassword,
  };
}
