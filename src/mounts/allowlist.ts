import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import envPaths from "env-paths";
import { z } from "zod";
import { errorMessage, systemErrorCode, UsageError } from "../errors/errors.js";
import { resolveRealPath } from "./resolve.js";

/**
 * The mount allowlist: which host directories a sandbox may write to. It is
 * security policy, so it lives with the user's configuration, not with
 * openwork's state: OPENWORK_HOME (which tests and throwaway setups move
 * freely) does not move it. OPENWORK_MOUNT_ALLOWLIST names another file.
 */
export const ALLOWLIST_ENV = "OPENWORK_MOUNT_ALLOWLIST";
export const ALLOWLIST_FILE_NAME = "mount-allowlist.json";

const rootSchema = z
  .object({
    path: z.string().min(1, "path must not be empty"),
    allowReadWrite: z.boolean().default(false),
    description: z.string().optional(),
  })
  .strict();

export const allowlistSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1).default(1),
    roots: z.array(rootSchema).default([]),
    /** extra path segments to refuse, on top of the built-in credential list */
    blockedSegments: z.array(z.string().min(1)).default([]),
  })
  .strict();

export interface AllowlistRoot {
  /** as written in the file */
  path: string;
  /** real path (through the nearest existing parent) */
  realPath: string;
  allowReadWrite: boolean;
}

export interface MountAllowlist {
  /** the file it came from */
  file: string;
  /** false when no file exists there (then nothing is granted read-write) */
  present: boolean;
  roots: AllowlistRoot[];
  blockedSegments: string[];
}

/** Where the allowlist is read from: OPENWORK_MOUNT_ALLOWLIST, else the user's config directory. */
export function defaultAllowlistPath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env[ALLOWLIST_ENV];
  if (explicit) return path.resolve(explicit);
  return path.join(envPaths("openwork", { suffix: "" }).config, ALLOWLIST_FILE_NAME);
}

function expandHome(p: string, home: string): string {
  if (p === "~") return home;
  if (p.startsWith("~/")) return path.join(home, p.slice(2));
  return p;
}

/**
 * Read and check the allowlist. A missing file is not an error (nothing is
 * granted); a file that exists but cannot be parsed or does not match the
 * format is reported as invalid, with the parser's reason, never as missing.
 */
export function loadAllowlist(file: string, home: string = os.homedir()): MountAllowlist {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") return { file, present: false, roots: [], blockedSegments: [] };
    throw new UsageError(
      `mount allowlist ${file} cannot be read: ${errorMessage(error)}`,
      `fix its permissions or point ${ALLOWLIST_ENV} at another file`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `mount allowlist ${file} is invalid: ${errorMessage(error)}`,
      `fix the JSON (format: docs/mounts.md) or point ${ALLOWLIST_ENV} at another file`,
    );
  }
  const parsed = allowlistSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join(".")}: ` : "";
    throw new UsageError(
      `mount allowlist ${file} is invalid: ${where}${issue?.message ?? "does not match the format"}`,
      `expected {"roots":[{"path":"/abs/dir","allowReadWrite":true}]} (docs/mounts.md)`,
    );
  }
  const roots: AllowlistRoot[] = [];
  for (const [index, root] of parsed.data.roots.entries()) {
    const expanded = expandHome(root.path.normalize("NFC"), home);
    if (!path.isAbsolute(expanded))
      throw new UsageError(
        `mount allowlist ${file} is invalid: roots.${index}.path "${root.path}" is not absolute`,
        'write an absolute path or one starting with "~/"',
      );
    roots.push({
      path: root.path,
      realPath: resolveRealPath(expanded).realPath,
      allowReadWrite: root.allowReadWrite,
    });
  }
  return { file, present: true, roots, blockedSegments: parsed.data.blockedSegments };
}
