import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import semver from "semver";
import { fetchJson, type HttpOptions } from "../download/http.js";
import { OpenworkError } from "../errors/errors.js";
import { registerSecret } from "../logging/redact.js";

let cached: string | undefined;

/**
 * The npm registry npm itself would use, read from npm's own configuration:
 * the npm_config_registry variable, then the project, user and global npmrc
 * files, then `npm config get registry` (which knows npm's built-in default).
 * We never carry a registry host of our own. Only success is cached.
 */
export async function npmRegistry(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const fromEnv = env.npm_config_registry ?? env.NPM_CONFIG_REGISTRY;
  if (fromEnv) return withSlash(fromEnv);
  if (cached) return cached;
  for (const file of npmrcFiles(env)) {
    const value = readRegistryFrom(file, env);
    if (value) {
      cached = withSlash(value);
      return cached;
    }
  }
  try {
    const { stdout } = await execa("npm", ["config", "get", "registry"], {
      timeout: 20_000,
      stdin: "ignore",
      env: { npm_config_update_notifier: "false" },
    });
    const value = String(stdout).trim();
    if (/^https?:\/\//.test(value)) {
      cached = withSlash(value);
      return cached;
    }
  } catch {
    // fall through to the error below, which says how to fix it
  }
  throw new OpenworkError(
    "cannot tell which npm registry to use: npm's configuration names none and `npm` did not answer",
    {
      code: "npm_registry_unknown",
      hint: "set registry= in ~/.npmrc or the npm_config_registry environment variable",
    },
  );
}

/**
 * The Authorization header npm would send to `url`: the `//host/path/:_authToken`
 * (or `:_auth`) entry of the npmrc files whose path is the longest prefix of
 * the URL, as npm matches them. The value is registered for redaction.
 */
export function npmAuthHeaders(url: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  let target: string;
  try {
    const parsed = new URL(url);
    target = `//${parsed.host}${parsed.pathname}`;
  } catch {
    return {};
  }
  let best: { key: string; header: string } | undefined;
  for (const file of npmrcFiles(env)) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const raw of text.split(/\r?\n/)) {
      const match = /^\s*(\/\/[^\s=]+?):(_authToken|_auth)\s*=\s*(.+?)\s*$/.exec(raw);
      if (!match?.[1] || !match[3]) continue;
      const key = match[1].endsWith("/") ? match[1] : `${match[1]}/`;
      if (!target.startsWith(key) || (best && best.key.length >= key.length)) continue;
      const value = expand(match[3].replace(/^["']|["']$/g, ""), env);
      if (!value) continue;
      registerSecret(value);
      best = { key, header: match[2] === "_authToken" ? `Bearer ${value}` : `Basic ${value}` };
    }
  }
  return best ? { authorization: best.header } : {};
}

function expand(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(/\$\{([^}]+)\}/g, (_m, name: string) => env[name] ?? "");
}

function npmrcFiles(env: NodeJS.ProcessEnv): string[] {
  const user = env.npm_config_userconfig ?? env.NPM_CONFIG_USERCONFIG ?? path.join(os.homedir(), ".npmrc");
  const prefix = env.npm_config_prefix ?? env.PREFIX ?? path.dirname(path.dirname(process.execPath));
  const global =
    env.npm_config_globalconfig ?? env.NPM_CONFIG_GLOBALCONFIG ?? path.join(prefix, "etc", "npmrc");
  return [path.join(process.cwd(), ".npmrc"), user, global];
}

/** Reads only the `registry` key of an npmrc file (ini), expanding ${VAR} as npm does. */
function readRegistryFrom(file: string, env: NodeJS.ProcessEnv): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  for (const raw of text.split(/\r?\n/)) {
    const match = /^\s*registry\s*=\s*(.+?)\s*$/.exec(raw);
    if (match?.[1]) {
      const value = expand(match[1].replace(/^["']|["']$/g, ""), env);
      if (/^https?:\/\//.test(value)) return value;
    }
  }
  return undefined;
}

function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

export interface PackumentVersion {
  name: string;
  version: string;
  dist: { tarball: string; integrity?: string; shasum?: string; unpackedSize?: number };
}

export interface Packument {
  name: string;
  versions: Record<string, PackumentVersion>;
}

/** The registry's abbreviated metadata document for `name`. */
export async function fetchPackument(
  name: string,
  options: HttpOptions & { registry?: string | undefined } = {},
): Promise<Packument> {
  const registry = withSlash(options.registry ?? (await npmRegistry()));
  const url = `${registry}${name.startsWith("@") ? `@${encodeURIComponent(name.slice(1))}` : encodeURIComponent(name)}`;
  const doc = (await fetchJson(url, {
    ...options,
    headers: {
      accept: "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8",
      ...npmAuthHeaders(url),
    },
  })) as Partial<Packument> | null;
  if (!doc || typeof doc !== "object" || typeof doc.versions !== "object" || doc.versions === null) {
    throw new OpenworkError(`the registry's document for ${name} has no versions`, {
      code: "bad_packument",
    });
  }
  return { name, versions: doc.versions };
}

/** One version's metadata, or an error that names the package, version and what exists. */
export function packumentVersion(packument: Packument, version: string): PackumentVersion {
  const entry = packument.versions[version];
  if (!entry?.dist?.tarball) {
    const known = semver
      .rsort(Object.keys(packument.versions).filter((v) => semver.valid(v)))
      .slice(0, 5)
      .join(", ");
    throw new OpenworkError(`npm package ${packument.name} has no version ${version}`, {
      code: "not_found",
      hint: known ? `recent versions: ${known}` : undefined,
    });
  }
  return entry;
}
