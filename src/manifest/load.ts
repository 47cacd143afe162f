import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type ParseError, parse, printParseErrorCode } from "jsonc-parser";
import type { z } from "zod";
import { fetchText, type HttpOptions } from "../download/http.js";
import { OpenworkError, systemErrorCode, UsageError } from "../errors/errors.js";
import { type Manifest, manifestSchema } from "./schema.js";

/**
 * Load a manifest from a file path, a file: URL or an http(s) URL. JSON with
 * comments and trailing commas is accepted. Every error names the source and,
 * for an invalid manifest, each offending field by its path. Nothing is cached:
 * a failed fetch is retried by the next call.
 */
export async function loadManifest(source: string, options: HttpOptions = {}): Promise<Manifest> {
  let text: string;
  let name = source;
  if (/^https?:\/\//i.test(source)) {
    text = await fetchText(source, { ...options, headers: { accept: "application/json" } });
  } else {
    const file = source.startsWith("file:") ? fileURLToPath(source) : path.resolve(source);
    name = file;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      const code = systemErrorCode(error);
      throw new UsageError(
        `cannot read the manifest ${file}: ${code === "ENOENT" ? "no such file" : (error as Error).message}`,
        "give --manifest a path or URL to a manifest (see docs/manifest.md)",
      );
    }
  }
  return parseManifest(text, name);
}

/** Parse and validate manifest text; `name` is what error messages call it. */
export function parseManifest(text: string, name: string): Manifest {
  const errors: ParseError[] = [];
  const data = parse(text, errors, { allowTrailingComma: true, disallowComments: false }) as unknown;
  if (errors.length > 0) {
    const first = errors[0]!;
    const { line, column } = position(text, first.offset);
    throw new UsageError(
      `manifest ${name} is not valid JSON(C): ${printParseErrorCode(first.error)} at line ${line}, column ${column}`,
    );
  }
  return validateManifest(data, name);
}

export function validateManifest(data: unknown, name: string): Manifest {
  const result = manifestSchema.safeParse(data);
  if (result.success) return result.data;
  const problems = result.error.issues.map(describeIssue);
  throw new OpenworkError(`manifest ${name} is invalid: ${problems.join("; ")}`, {
    code: "manifest_invalid",
    exitCode: 2,
    hint: "see docs/manifest.md for the format",
    details: { problems },
  });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "(top level)";
  if (issue.code === "unrecognized_keys") return `${field}: unknown field(s) ${issue.keys.join(", ")}`;
  if (issue.code === "invalid_type" && issue.message.includes("received undefined"))
    return `${field}: is required`;
  return `${field}: ${issue.message}`;
}

function position(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: (before.at(-1)?.length ?? 0) + 1 };
}
