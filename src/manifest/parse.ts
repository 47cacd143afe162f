import { type ParseError, parse, printParseErrorCode } from "jsonc-parser";
import type { z } from "zod";
import { OpenworkError, UsageError } from "../errors/errors.js";
import { positionAt } from "../files/text-position.js";
import { type Manifest, manifestSchema } from "./schema.js";

/*
 * Manifest text to a validated Manifest v1, with no I/O: shared by the CLI
 * (which loads files and URLs) and the runtime server (manifest upgrades).
 */

/** Parse and validate manifest text; `name` is what error messages call it. */
export function parseManifest(text: string, name: string): Manifest {
  const errors: ParseError[] = [];
  const data = parse(text, errors, { allowTrailingComma: true, disallowComments: false }) as unknown;
  if (errors.length > 0) {
    const first = errors[0]!;
    const { line, column } = positionAt(text, first.offset);
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
  });
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "(top level)";
  if (issue.code === "unrecognized_keys") return `${field}: unknown field(s) ${issue.keys.join(", ")}`;
  if (issue.code === "invalid_type" && issue.message.includes("received undefined"))
    return `${field}: is required`;
  return `${field}: ${issue.message}`;
}
