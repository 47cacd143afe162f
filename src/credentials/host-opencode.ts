import { readdir, readFile, realpath, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { OpenworkError, UsageError } from "../errors/errors.js";

/** Auth files opencode keeps in its data directory: provider logins and MCP servers' OAuth tokens. */
export const AUTH_FILES = ["auth.json", "mcp-auth.json"] as const;
export type AuthFileName = (typeof AUTH_FILES)[number];

/** Directories of opencode's config tree that are its own install state, re-created by the engine. */
const SKIPPED = new Set(["node_modules", ".git"]);
/** A config tree this big is not configuration: refused rather than copied into every run. */
const MAX_CONFIG_BYTES = 64 * 1024 * 1024;

export interface HostOpencode {
  /** the config directory found, or undefined when the user has none */
  configDir?: string;
  /** its files (relative paths), regular files only */
  configFiles: Array<{ path: string; content: Buffer }>;
  /** the auth files found in the data directory */
  authFiles: Array<{ name: AuthFileName; source: string; content: Buffer }>;
  /** where it looked, for `status` and the dry run */
  looked: { config: string[]; data: string };
}

/** Where opencode looks on this machine (opencode uses XDG directories, Application Support too on macOS). */
export function hostOpencodeDirs(env: NodeJS.ProcessEnv = process.env): { config: string[]; data: string } {
  const home = env.HOME || os.homedir();
  if (env.OPENCODE_CONFIG_DIR)
    return { config: [path.resolve(env.OPENCODE_CONFIG_DIR)], data: dataDir(env, home) };
  const config = [path.join(env.XDG_CONFIG_HOME || path.join(home, ".config"), "opencode")];
  if (process.platform === "darwin")
    config.push(path.join(home, "Library", "Application Support", "opencode"));
  return { config, data: dataDir(env, home) };
}

function dataDir(env: NodeJS.ProcessEnv, home: string): string {
  return path.join(env.XDG_DATA_HOME || path.join(home, ".local", "share"), "opencode");
}

/**
 * Read the user's opencode configuration and logins. Only read: nothing here
 * writes to the user's files. A file that exists and cannot be read is an
 * error with its path (never silently left out); one that does not exist is
 * simply not there.
 */
export async function readHostOpencode(options: {
  config: boolean;
  auth: boolean;
  env?: NodeJS.ProcessEnv;
}): Promise<HostOpencode> {
  const looked = hostOpencodeDirs(options.env);
  const out: HostOpencode = { configFiles: [], authFiles: [], looked };
  if (options.config) {
    for (const dir of looked.config) {
      const found = await stat(dir).catch(() => undefined);
      if (!found?.isDirectory()) continue;
      out.configDir = dir;
      out.configFiles = await readTree(dir);
      break;
    }
  }
  if (options.auth) {
    for (const name of AUTH_FILES) {
      const source = path.join(looked.data, name);
      const content = await readFile(source).catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return undefined;
        throw new OpenworkError(`cannot read your opencode login file ${source} (${error.code})`, {
          code: "host_auth_unreadable",
          exitCode: 2,
          hint: "fix its permissions, or pass --no-host-auth to start without your opencode logins",
        });
      });
      if (!content) continue;
      try {
        JSON.parse(content.toString("utf8"));
      } catch {
        throw new UsageError(
          `your opencode login file ${source} is not valid JSON`,
          "fix it (opencode auth login rewrites it), or pass --no-host-auth",
        );
      }
      out.authFiles.push({ name, source, content });
    }
  }
  return out;
}

async function readTree(root: string): Promise<Array<{ path: string; content: Buffer }>> {
  const out: Array<{ path: string; content: Buffer }> = [];
  let total = 0;
  const realRoot = await realpath(root);
  const walk = async (dir: string, seen: Set<string>): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
      throw unreadable(dir, error);
    });
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (SKIPPED.has(entry.name)) continue;
      const full = path.join(dir, entry.name);
      // The user's own links (a dotfiles repository) are followed: this is their file, read as they would.
      const info = await stat(full).catch(() => undefined);
      if (!info) continue;
      if (info.isDirectory()) {
        const real = await realpath(full);
        if (seen.has(real)) continue;
        await walk(full, new Set([...seen, real]));
      } else if (info.isFile()) {
        total += info.size;
        if (total > MAX_CONFIG_BYTES)
          throw new UsageError(
            `your opencode config directory ${root} holds more than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB`,
            "pass --no-host-config, or move what is not configuration out of it",
          );
        const content = await readFile(full).catch((error: NodeJS.ErrnoException) => {
          throw unreadable(full, error);
        });
        out.push({ path: path.relative(root, full), content });
      }
    }
  };
  await walk(root, new Set([realRoot]));
  return out;
}

function unreadable(file: string, error: NodeJS.ErrnoException): OpenworkError {
  return new OpenworkError(`cannot read ${file} of your opencode config (${error.code})`, {
    code: "host_config_unreadable",
    exitCode: 2,
    hint: "fix its permissions, or pass --no-host-config to start without your opencode config",
  });
}
