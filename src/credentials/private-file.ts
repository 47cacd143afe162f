import { readFile, stat } from "node:fs/promises";
import { UsageError } from "../errors/errors.js";

/**
 * Read a file that holds secrets: refused (a usage error, exit 2) when group
 * or others may read or write it, or when another user owns it — the secrets
 * would not be the caller's alone. Never silently skipped.
 */
export async function readPrivateFile(file: string, what: string): Promise<string>;
/** With `missing`: what an absent file reads as (the env store may not exist yet). */
export async function readPrivateFile(file: string, what: string, missing: string): Promise<string>;
export async function readPrivateFile(file: string, what: string, missing?: string): Promise<string> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && missing !== undefined) return missing;
    throw new UsageError(
      code === "ENOENT" ? `${what} ${file} does not exist` : `${what} ${file} cannot be read (${code})`,
    );
  }
  if (!info.isFile()) throw new UsageError(`${what} ${file} is not a regular file`);
  if (process.platform !== "win32") {
    const mode = info.mode & 0o777;
    if ((mode & 0o077) !== 0)
      throw new UsageError(
        `${what} ${file} is open to group or others (mode ${mode.toString(8).padStart(4, "0")}); it holds secrets`,
        `chmod 600 ${file}`,
      );
    const uid = process.getuid?.();
    if (uid !== undefined && uid !== 0 && info.uid !== uid)
      throw new UsageError(
        `${what} ${file} belongs to another user (uid ${info.uid}); it holds secrets`,
        `use a file of your own (chown it, or copy it and chmod 600 the copy)`,
      );
  }
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`${what} ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
}
