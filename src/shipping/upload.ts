import { existsSync, lstatSync, readFileSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import type Docker from "dockerode";
import ignore, { type Ignore } from "ignore";
import tarFs from "tar-fs";
import { createProgress } from "../download/progress.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import type { SandboxUser } from "../sandbox/user.js";
import { withArchiveHelper } from "./helper.js";
import { counting } from "./runtime.js";

/**
 * What `.gitignore` files leave out of a directory tree, as git reads them:
 * each file's patterns apply below its own directory, relative to it. `.git`
 * itself is kept (the agent works with the history).
 */
export function gitignoreFilter(root: string): (absolute: string) => boolean {
  const rules = new Map<string, Ignore | null>();
  const rulesOf = (dir: string): Ignore | null => {
    let found = rules.get(dir);
    if (found === undefined) {
      const file = path.join(dir, ".gitignore");
      found = existsSync(file) ? ignore().add(readFileSync(file, "utf8")) : null;
      rules.set(dir, found);
    }
    return found;
  };
  return (absolute: string) => {
    const relative = path.relative(root, absolute);
    if (!relative || relative.startsWith("..")) return false;
    let isDir = false;
    try {
      isDir = lstatSync(absolute).isDirectory();
    } catch {
      return false;
    }
    const parts = relative.split(path.sep);
    for (let depth = 0; depth < parts.length; depth++) {
      const dir = path.join(root, ...parts.slice(0, depth));
      const rule = rulesOf(dir);
      if (!rule) continue;
      const below = parts.slice(depth).join("/");
      if (rule.ignores(isDir ? `${below}/` : below)) return true;
    }
    return false;
  };
}

/** Bytes and files a walk would send (for the progress total), leaving out what `skip` says. */
async function measure(
  root: string,
  skip: (absolute: string) => boolean,
): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  const walk = async (dir: string) => {
    for (const name of await readdir(dir)) {
      const entry = path.join(dir, name);
      if (skip(entry)) continue;
      const info = await lstat(entry);
      if (info.isDirectory()) await walk(entry);
      else if (info.isFile()) {
        bytes += info.size;
        files += 1;
      }
    }
  };
  await walk(root);
  return { bytes, files };
}

/**
 * Copy a local directory into a volume on an engine (at `into` below the
 * volume's root), its files given to the sandbox's user; with `gitignore`,
 * what the tree's .gitignore files name is left out. With progress.
 */
export async function uploadDirectory(options: {
  docker: Docker;
  image: string;
  volume: string;
  from: string;
  into?: string;
  owner: SandboxUser;
  gitignore: boolean;
  labels: Record<string, string>;
  log: Logger;
  label: string;
}): Promise<{ bytes: number; files: number }> {
  const { from, owner, log } = options;
  const skip = options.gitignore ? gitignoreFilter(from) : () => false;
  const total = await measure(from, skip);
  const prefix = (options.into ?? "").replace(/^\/+|\/+$/g, "");
  const progress = createProgress({ label: options.label, total: total.bytes, log });
  const pack = tarFs.pack(from, {
    ignore: skip,
    map: (header) => {
      const name = header.name === "." ? "" : header.name;
      header.name = [prefix, name].filter(Boolean).join("/") || ".";
      header.uid = owner.uid;
      header.gid = owner.gid;
      return header;
    },
  });
  try {
    await withArchiveHelper(
      options.docker,
      {
        image: options.image,
        labels: options.labels,
        mounts: [{ Type: "volume", Source: options.volume, Target: "/v" }],
      },
      (helper) => helper.putArchive(pack.pipe(counting(progress.advance)), { path: "/v" }),
    );
  } catch (error) {
    throw new OpenworkError(`copying ${from} to the engine failed: ${errorMessage(error)}`, {
      code: "ship_failed",
      cause: error,
    });
  } finally {
    progress.stop();
  }
  return total;
}
