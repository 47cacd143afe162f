import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { UsageError } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { workersTemplate } from "./config.js";

/** `workers init`: the commented template, never over a file the user wrote (unless --force). */
export async function writeTemplate(file: string, force: boolean): Promise<void> {
  if (existsSync(file) && !force)
    throw new UsageError(
      `${file} already exists`,
      "edit it, or pass --force to replace it with the template",
    );
  await mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, workersTemplate(), { mode: 0o644 });
}
