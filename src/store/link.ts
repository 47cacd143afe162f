import { constants } from "node:fs";
import { copyFile, link, open } from "node:fs/promises";
import path from "node:path";
import { systemErrorCode } from "../errors/errors.js";

export type PlaceMode = "link" | "copy";

/** Codes with which link(2) refuses a hard link that a copy can still replace. */
const LINK_REFUSED = new Set(["EXDEV", "EPERM", "ENOTSUP", "EOPNOTSUPP", "EMLINK", "ENOSYS"]);

/**
 * Put `src` at `dest` (which must not exist) without writing its bytes when
 * possible: a hard link; across devices a copy that asks for a reflink
 * (copy-on-write clone) and falls back to a plain copy. Returns what was done.
 */
export async function linkOrCopy(src: string, dest: string): Promise<PlaceMode> {
  try {
    await link(src, dest);
    return "link";
  } catch (error) {
    if (!LINK_REFUSED.has(systemErrorCode(error) ?? "")) throw error;
  }
  await copyFile(src, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  const handle = await open(dest, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  return "copy";
}

/** fsync a directory so that a rename into it survives a crash. Not every platform allows it. */
export async function syncDir(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, "r");
    await handle.sync();
  } catch (error) {
    const code = systemErrorCode(error);
    if (code !== "EISDIR" && code !== "EINVAL" && code !== "EPERM" && code !== "EBADF") throw error;
  } finally {
    await handle?.close();
  }
}

/** A unique sibling name for writing `file` before an atomic rename. */
export function tempSibling(dir: string, base: string): string {
  return path.join(
    dir,
    `.${base}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`,
  );
}
