import { readFileSync } from "node:fs";
import type { z } from "zod";

/**
 * A JSON state file read as untrusted input: undefined when it is missing,
 * unreadable, not JSON, or not of the expected shape. Callers never act on
 * anything the schema did not vouch for.
 */
export function readJsonFile<T extends z.ZodType>(file: string, schema: T): z.output<T> | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
  const parsed = schema.safeParse(raw);
  return parsed.success ? parsed.data : undefined;
}
