import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import { UsageError } from "../errors/errors.js";
import { REDACTED, registerSecret } from "../logging/redact.js";
import type { SandboxKind } from "../sandbox/backend.js";
import { parseDotenv } from "./dotenv.js";
import { type HostOpencode, readHostOpencode } from "./host-opencode.js";
import { checkEnvName } from "./names.js";
import { readPrivateFile } from "./private-file.js";
import {
  hostAliasFor,
  noProxyUnion,
  PROXY_VARIABLES,
  type ProxyRewrite,
  proxyEnvironment,
  rewriteProxyUrl,
} from "./proxy.js";
import { readEnvStore } from "./store.js";
import { envStorePath } from "./store-path.js";

/** What a start asks for, as typed. */
export interface CredentialsRequest {
  /** `--env KEY` or `--env KEY=VALUE`, in order */
  env: readonly string[];
  envFiles: readonly string[];
  /** default: on (`--no-proxy-env` turns it off) */
  proxyEnv: boolean;
  caCert?: string | undefined;
  /** default: on (`--no-host-config`, `--no-host-auth`) */
  hostConfig: boolean;
  hostAuth: boolean;
}

/** Where a value came from, strongest first: a flag, an env file, the store, the caller's proxy variables. */
export type EnvSource =
  | { kind: "flag" }
  | { kind: "flag-inherited" }
  | { kind: "file"; file: string; line: number }
  | { kind: "store"; file: string; line: number }
  | { kind: "proxy" };

export interface EnvEntry {
  name: string;
  value: string;
  source: EnvSource;
  /** the weaker sources that also set it (and lost) */
  shadowed: EnvSource[];
}

/** Everything credentials-related a start will do, resolved and checked, nothing started. */
export interface CredentialsPlan {
  env: EnvEntry[];
  proxyRewrites: ProxyRewrite[];
  /** the CA bundle for the sandbox, from --ca-cert or the caller's NODE_EXTRA_CA_CERTS/SSL_CERT_FILE */
  ca?: { sources: string[]; pem: string };
  host: HostOpencode;
  hostConfig: boolean;
  hostAuth: boolean;
  storeFile: string;
}

const PROXY_NAMES = new Set<string>(PROXY_VARIABLES);

export function describeSource(source: EnvSource): string {
  switch (source.kind) {
    case "flag":
      return "--env";
    case "flag-inherited":
      return "--env (inherited)";
    case "file":
      return `--env-file ${source.file}:${source.line}`;
    case "store":
      return `env store ${source.file}:${source.line}`;
    case "proxy":
      return "proxy (caller's environment)";
  }
}

/**
 * Resolve a start's credentials: every name checked, every file read (and
 * refused when others may read it), precedence applied (flag over file over
 * store over the caller's proxy variables), and every value registered as a
 * secret with the logger so that it is masked wherever it would be printed.
 */
export async function resolveCredentials(
  request: CredentialsRequest,
  substrate: SandboxKind,
  caller: NodeJS.ProcessEnv = process.env,
): Promise<CredentialsPlan> {
  const layers: Array<Array<{ name: string; value: string; source: EnvSource }>> = [];
  // Strongest first.
  const flags: Array<{ name: string; value: string; source: EnvSource }> = [];
  for (const item of request.env) {
    const eq = item.indexOf("=");
    const name = eq === -1 ? item : item.slice(0, eq);
    checkEnvName(name, `--env ${name}`);
    if (eq === -1) {
      const value = caller[name];
      if (value === undefined)
        throw new UsageError(
          `--env ${name}: ${name} is not set in this environment`,
          `set it, or pass --env ${name}=VALUE`,
        );
      flags.push({ name, value, source: { kind: "flag-inherited" } });
    } else flags.push({ name, value: item.slice(eq + 1), source: { kind: "flag" } });
  }
  layers.push(flags);
  // A later file wins over an earlier one, as with docker's --env-file.
  for (const file of [...request.envFiles].reverse()) {
    const resolved = path.resolve(file);
    const values = parseDotenv(await readPrivateFile(resolved, "the env file"), resolved);
    layers.push(
      [...values].map(([name, { value, line }]) => ({
        name,
        value,
        source: { kind: "file", file: resolved, line },
      })),
    );
  }
  const storeFile = envStorePath(caller);
  layers.push(
    [...(await readEnvStore(storeFile))].map(([name, { value, line }]) => ({
      name,
      value,
      source: { kind: "store", file: storeFile, line },
    })),
  );
  if (request.proxyEnv) {
    const { values } = proxyEnvironment(caller);
    layers.push(Object.entries(values).map(([name, value]) => ({ name, value, source: { kind: "proxy" } })));
  }

  const byName = new Map<string, EnvEntry>();
  for (const layer of layers) {
    // Within one layer the last assignment wins (repeated --env, a name twice in a file).
    const latest = new Map(layer.map((item) => [item.name, item]));
    for (const item of latest.values()) {
      const existing = byName.get(item.name);
      if (existing) existing.shadowed.push(item.source);
      else byName.set(item.name, { ...item, shadowed: [] });
    }
  }
  // Both cases of NO_PROXY say the same, whichever layers set them.
  const upper = byName.get("NO_PROXY");
  const lower = byName.get("no_proxy");
  if (upper && lower && upper.value !== lower.value) {
    upper.value = noProxyUnion(upper.value, lower.value);
    lower.value = upper.value;
  }
  // A loopback proxy means this machine; inside a sandbox it must name the host, whatever set it.
  const proxyRewrites: ProxyRewrite[] = [];
  const alias = hostAliasFor(substrate);
  if (alias) {
    for (const entry of byName.values()) {
      if (!PROXY_NAMES.has(entry.name) || /^no_proxy$/i.test(entry.name)) continue;
      const to = rewriteProxyUrl(entry.value, alias);
      if (to !== entry.value) {
        proxyRewrites.push({ name: entry.name, from: entry.value, to });
        entry.value = to;
      }
    }
  }
  const env = [...byName.values()];
  // A proxy URL is not a secret (its rewrite is logged), the password it may carry is.
  for (const entry of env)
    registerSecret(PROXY_NAMES.has(entry.name) ? passwordOf(entry.value) : entry.value);

  const ca = await readCaBundle(request.caCert, caller);
  const host = await readHostOpencode({ config: request.hostConfig, auth: request.hostAuth, env: caller });
  for (const file of host.authFiles) registerJsonSecrets(file.content.toString("utf8"), true);
  for (const file of host.configFiles)
    if (/\.jsonc?$/.test(file.path)) registerJsonSecrets(file.content.toString("utf8"), false);
  return {
    env,
    proxyRewrites,
    ...(ca ? { ca } : {}),
    host,
    hostConfig: request.hostConfig,
    hostAuth: request.hostAuth,
    storeFile,
  };
}

async function readCaBundle(
  caCert: string | undefined,
  caller: NodeJS.ProcessEnv,
): Promise<{ sources: string[]; pem: string } | undefined> {
  const sources = caCert
    ? [path.resolve(caCert)]
    : [...new Set([caller.NODE_EXTRA_CA_CERTS, caller.SSL_CERT_FILE].filter((v): v is string => !!v))];
  if (sources.length === 0) return undefined;
  const parts: string[] = [];
  for (const source of sources) {
    const what = caCert
      ? "--ca-cert"
      : source === caller.NODE_EXTRA_CA_CERTS
        ? "NODE_EXTRA_CA_CERTS"
        : "SSL_CERT_FILE";
    let text: string;
    try {
      text = await readFile(source, "utf8");
    } catch (error) {
      throw new UsageError(
        `${what} ${source} cannot be read (${(error as NodeJS.ErrnoException).code})`,
        caCert ? "pass a readable PEM bundle" : `fix or unset ${what}`,
      );
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----"))
      throw new UsageError(
        `${what} ${source} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" line)`,
        caCert ? "pass a PEM bundle" : `fix or unset ${what}`,
      );
    parts.push(text.endsWith("\n") ? text : `${text}\n`);
  }
  return { sources, pem: parts.join("") };
}

const SECRET_KEY = /(key|token|secret|password|refresh|access|credential)/i;

/** Every secret-looking string of a JSON(C) document registered for masking; in an auth file, every string. */
function registerJsonSecrets(text: string, all: boolean): void {
  const walk = (value: unknown, key: string): void => {
    if (typeof value === "string") {
      if (all ? key !== "type" : SECRET_KEY.test(key)) registerSecret(value);
    } else if (Array.isArray(value)) {
      for (const item of value) walk(item, key);
    } else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, k);
  };
  walk(parseJsonc(text), "");
}

/** The plan as a document fit to print: names, sources and precedence, every value masked. */
export function describePlan(plan: CredentialsPlan) {
  return {
    env: plan.env.map((entry) => ({
      name: entry.name,
      value: REDACTED,
      source: describeSource(entry.source),
      ...(entry.shadowed.length > 0 ? { overrides: entry.shadowed.map(describeSource) } : {}),
    })),
    precedence: ["--env", "--env-file (the last file first)", "env store", "proxy (caller's environment)"],
    envStore: plan.storeFile,
    proxyRewrites: plan.proxyRewrites.map((r) => ({
      name: r.name,
      from: maskUrl(r.from),
      to: maskUrl(r.to),
    })),
    caCert: plan.ca ? { sources: plan.ca.sources } : null,
    hostConfig: plan.hostConfig
      ? {
          dir: plan.host.configDir ?? null,
          files: plan.host.configFiles.map((f) => f.path),
          looked: plan.host.looked.config,
        }
      : "skipped (--no-host-config)",
    hostAuth: plan.hostAuth
      ? { files: plan.host.authFiles.map((f) => f.source), looked: plan.host.looked.data }
      : "skipped (--no-host-auth)",
  };
}

function passwordOf(value: string): string | undefined {
  try {
    return decodeURIComponent(new URL(value).password) || undefined;
  } catch {
    return undefined;
  }
}

export type CredentialsPlanView = ReturnType<typeof describePlan>;

/** A URL with its credentials masked (a proxy URL may carry user:password). */
export function maskUrl(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, `$1${REDACTED}@`);
}
