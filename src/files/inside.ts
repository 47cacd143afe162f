import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from "node:fs";
import path from "node:path";
import { OpenworkError } from "../errors/errors.js";

/*
 * A directory a sandbox can write (its persisted directory) is hostile ground
 * for host-side code: any name in it may be a symbolic link to a host file
 * planted there. These helpers open a file below such a root only when no
 * component between the root and the file is a link, and never follow the
 * last one (O_NOFOLLOW), so that what is read, appended to or truncated is a
 * regular file inside the directory and nothing else.
 */

/** A path below a sandbox-writable root goes through a link, or is not a regular file: it is not opened. */
export class LinkRefusedError extends OpenworkError {
  constructor(
    readonly file: string,
    readonly component: string,
    what: string,
  ) {
    super(`refusing ${file}: ${component} is ${what}, which a sandbox may have planted`, {
      code: "link_refused",
      hint: "remove it; openwork never follows links in a directory a sandbox can write",
    });
    this.name = "LinkRefusedError";
  }
}

/** Every directory between `root` (itself trusted: the host made it) and `file` must be a real directory. */
export function checkComponents(root: string, file: string): void {
  const relative = path.relative(root, file);
  if (relative === "" || relative.startsWith("..") || path.isAbsolute(relative)) {
    throw new LinkRefusedError(file, file, `outside ${root}`);
  }
  let current = root;
  for (const part of relative.split(path.sep).slice(0, -1)) {
    current = path.join(current, part);
    const st = lstatSync(current);
    if (!st.isDirectory())
      throw new LinkRefusedError(file, current, st.isSymbolicLink() ? "a link" : "not a directory");
  }
}

/**
 * open(2) that refuses a link at the last component and anything but a
 * regular file. A missing file raises ENOENT like open(2); a link or
 * non-regular file raises LinkRefusedError.
 */
export function openNoFollow(file: string, flags: number = constants.O_RDONLY, mode = 0o600): number {
  let fd: number;
  try {
    fd = openSync(file, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ELOOP") throw new LinkRefusedError(file, file, "a link");
    throw error;
  }
  // O_NONBLOCK above: a planted FIFO must not hang the open; a regular file reads the same either way.
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new LinkRefusedError(file, file, "not a regular file");
  }
  return fd;
}

/** The text of `file` below `root`, read without following any link on the way. */
export function readFileInside(root: string, file: string): string {
  checkComponents(path.resolve(root), path.resolve(file));
  const fd = openNoFollow(file);
  try {
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}
