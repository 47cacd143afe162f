import { randomBytes } from "node:crypto";
import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";

export interface AtomicWriteOptions {
  /** file mode, applied exactly (not through the umask) */
  mode?: number;
  /** flush the data to disk before the rename (records that must survive a crash) */
  fsync?: boolean;
}

/** A temporary name beside `file`: same directory, so the rename is atomic. */
function temporaryFor(file: string): string {
  return `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/**
 * Replace `file` with `content` atomically: write a temporary sibling, then
 * rename it over. Readers see the old content or the new, never a part; a
 * failure leaves no temporary file behind. A running `sh` keeps reading its
 * own copy of a script replaced this way.
 */
export async function writeFileAtomic(
  file: string,
  content: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temporary = temporaryFor(file);
  try {
    const handle = await open(temporary, "w", options.mode ?? 0o644);
    try {
      await handle.writeFile(content);
      if (options.mode !== undefined) await handle.chmod(options.mode);
      if (options.fsync) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/** The same, synchronously: for the server's small state files written from synchronous code. */
export function writeFileAtomicSync(
  file: string,
  content: string | Buffer,
  options: AtomicWriteOptions = {},
): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = temporaryFor(file);
  try {
    const fd = openSync(temporary, "w", options.mode ?? 0o644);
    try {
      writeSync(fd, typeof content === "string" ? Buffer.from(content) : content);
      if (options.mode !== undefined) fchmodSync(fd, options.mode);
      if (options.fsync) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}
