import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import { systemErrorCode } from "../errors/errors.js";

export interface ResolvedPath {
  /** the real path: every existing component's symlinks followed, the rest appended as written */
  realPath: string;
  /** whether the full path exists */
  exists: boolean;
}

/** Linux gives up after 40 links (ELOOP); so do we. */
const MAX_LINKS = 40;

/**
 * Resolve a path as the kernel would when the mount is made: follow symlinks
 * in every component that exists, including a dangling symlink's target (a
 * link to a directory that does not exist yet still points where it points),
 * then append the components that do not exist. This is how a not-yet-existing
 * child below a symlink is judged by where it will really be created.
 */
export function resolveRealPath(absolute: string): ResolvedPath {
  let links = 0;
  let pending = splitComponents(absolute);
  let current = path.parse(absolute).root || "/";
  let exists = true;
  while (pending.length > 0) {
    const [component, ...rest] = pending;
    pending = rest;
    if (component === undefined || component === ".") continue;
    if (component === "..") {
      current = path.dirname(current);
      continue;
    }
    const candidate = path.join(current, component);
    if (!exists) {
      current = candidate;
      continue;
    }
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch (error) {
      if (systemErrorCode(error) !== "ENOENT" && systemErrorCode(error) !== "ENOTDIR") throw error;
      exists = false;
      current = candidate;
      continue;
    }
    if (!isLink) {
      current = candidate;
      continue;
    }
    links++;
    if (links > MAX_LINKS) throw new Error(`too many levels of symbolic links resolving ${absolute}`);
    const target = readlinkSync(candidate);
    if (path.isAbsolute(target)) {
      current = path.parse(target).root || "/";
      pending = [...splitComponents(target), ...pending];
    } else {
      pending = [...splitComponents(target), ...pending];
    }
  }
  if (exists) {
    // realpath once more: catches case-insensitive file systems and bind tricks the walk cannot see
    try {
      return { realPath: realpathSync.native(current), exists: true };
    } catch {
      return { realPath: current, exists: true };
    }
  }
  return { realPath: current, exists: false };
}

function splitComponents(p: string): string[] {
  const root = path.parse(p).root;
  return p
    .slice(root.length)
    .split(/[\\/]+/)
    .filter((c) => c !== "");
}

/** Whether `child` is `parent` or below it (both absolute and normalised). */
export function isWithin(child: string, parent: string): boolean {
  if (child === parent) return true;
  const relative = path.relative(parent, child);
  return relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
}
