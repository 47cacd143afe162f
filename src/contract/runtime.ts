import { createHash } from "node:crypto";
import path from "node:path";
import { z } from "zod";
import { errorMessage, OpenworkError, systemErrorCode } from "../errors/errors.js";
import { SIDECAR_NAMES, type SidecarName, STAGED_FILE } from "../sidecars/names.js";
import { KNOWN_TARGETS, type Target } from "../sidecars/platform.js";

/**
 * A staged runtime: `<persist>/runtimes/<runtime-id>/` holds the sidecars
 * under their STAGED_FILE names and `runtime.json`, which says what each one
 * must be. Produced by the CLI's staging and by the server's manifest
 * upgrades, consumed by the entrypoint and the server: one schema, one id rule.
 */

export const RUNTIME_ID_PATTERN = /^[0-9a-f]{16}$/;
export const runtimeIdSchema = z
  .string()
  .regex(RUNTIME_ID_PATTERN, "expected a runtime id (16 lowercase hex digits)");

export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits (a sha256)");

export const stagedSidecarSchema = z
  .object({
    file: z.string().min(1),
    sha256: sha256Schema,
    size: z.number().int().nonnegative(),
    version: z.string().min(1),
  })
  .strict();
export type StagedSidecarEntry = z.output<typeof stagedSidecarSchema>;

/** The sidecars every runtime has; the router is optional. */
export const REQUIRED_SIDECARS = [
  "opencode",
  "openwork-server",
  "node",
] as const satisfies readonly SidecarName[];

const sidecarsSchema = z
  .partialRecord(z.enum(SIDECAR_NAMES), stagedSidecarSchema)
  .superRefine((sidecars, ctx) => {
    for (const name of REQUIRED_SIDECARS) {
      if (!sidecars[name]) ctx.addIssue({ code: "custom", path: [name], message: "is required" });
    }
    for (const [name, entry] of Object.entries(sidecars) as Array<[SidecarName, StagedSidecarEntry]>) {
      if (entry.file !== STAGED_FILE[name])
        ctx.addIssue({ code: "custom", path: [name, "file"], message: `must be ${STAGED_FILE[name]}` });
    }
  });

export const runtimeJsonSchema = z
  .object({
    runtimeId: runtimeIdSchema,
    target: z.enum(KNOWN_TARGETS as unknown as [Target, ...Target[]]),
    runtimeVersion: z.string().min(1),
    sidecars: sidecarsSchema,
  })
  .strict();
export type RuntimeJson = z.output<typeof runtimeJsonSchema>;
export type RuntimeContent = Omit<RuntimeJson, "runtimeId">;

/**
 * The runtime id: the first 16 hex digits of sha256 over a canonical text of
 * everything runtime.json says (target, runtime version, and per sidecar its
 * file, sha256, size and version, sorted by name). It binds runtime.json to
 * its directory: editing any field, a pinned version included, changes the id.
 */
export function runtimeIdOf(content: RuntimeContent): string {
  const lines = [`target=${content.target}\n`, `runtimeVersion=${content.runtimeVersion}\n`];
  const names = (Object.keys(content.sidecars) as SidecarName[]).sort();
  for (const name of names) {
    const entry = content.sidecars[name];
    if (entry) lines.push(`sidecar=${name} ${entry.file} ${entry.sha256} ${entry.size} ${entry.version}\n`);
  }
  return createHash("sha256").update(lines.join("")).digest("hex").slice(0, 16);
}

/** runtime.json for this content, its id computed. */
export function runtimeJsonOf(content: RuntimeContent): RuntimeJson {
  return { runtimeId: runtimeIdOf(content), ...content };
}

export function serializeRuntimeJson(json: RuntimeJson): string {
  return `${JSON.stringify(json, null, 2)}\n`;
}

/** Why a runtime.json cannot be trusted: each problem named, for the file at `file`. */
export class RuntimeJsonError extends OpenworkError {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
    /** runtime_tampered when it is well formed but does not hash to its id */
    code: "runtime_invalid" | "runtime_tampered" = "runtime_invalid",
  ) {
    super(`${file} is not a valid runtime description: ${problems.join("; ")}`, {
      code,
      hint: "stage the runtime again",
    });
    this.name = "RuntimeJsonError";
  }
}

/**
 * Parse runtime.json as found in the directory named `directoryId`: well
 * formed, and its content hashes to both its runtimeId and the directory's name.
 */
export function parseRuntimeJson(text: string, file: string, directoryId: string): RuntimeJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new RuntimeJsonError(file, [`not JSON (${(error as Error).message})`]);
  }
  const parsed = runtimeJsonSchema.safeParse(raw);
  if (!parsed.success) {
    throw new RuntimeJsonError(
      file,
      parsed.error.issues.map((issue) => `${issue.path.join(".") || "(top)"}: ${issue.message}`),
    );
  }
  const { runtimeId, ...content } = parsed.data;
  const computed = runtimeIdOf(content);
  if (computed !== runtimeId || runtimeId !== directoryId) {
    throw new RuntimeJsonError(
      file,
      [
        `its content gives the runtime id ${computed}, but the directory is ${directoryId} and runtimeId says ${runtimeId}`,
      ],
      "runtime_tampered",
    );
  }
  return parsed.data;
}

/** The pinned version of each sidecar. */
export function pinnedVersions(json: RuntimeJson): Partial<Record<SidecarName, string>> {
  const out: Partial<Record<SidecarName, string>> = {};
  for (const [name, entry] of Object.entries(json.sidecars) as Array<[SidecarName, StagedSidecarEntry]>)
    out[name] = entry.version;
  return out;
}

/** One staged file that is not what runtime.json says. */
export interface Mismatch {
  name: SidecarName;
  file: string;
  expectedSha256: string;
  /** null when the file is missing or unreadable */
  actualSha256: string | null;
  expectedSize: number;
  actualSize: number | null;
  reason: string;
}

/**
 * The files of a staged runtime do not match its runtime.json: refused before
 * anything in it runs. The CLI prints each mismatch with both hashes.
 */
export class RuntimeTamperedError extends OpenworkError {
  constructor(
    readonly runtimeId: string,
    readonly dir: string,
    readonly mismatches: readonly Mismatch[],
  ) {
    super(
      `refusing to run the staged runtime ${runtimeId}: ${mismatches
        .map(
          (m) =>
            `the ${m.name} sidecar ${m.file}: expected sha256 ${m.expectedSha256}, actual ${m.actualSha256 ?? `none (${m.reason})`}`,
        )
        .join("; ")}`,
      {
        code: "runtime_tampered",
        hint: "a staged sidecar was modified; stage the runtime again (openwork start does) and find out who wrote to it",
      },
    );
    this.name = "RuntimeTamperedError";
  }
}

/**
 * Compare the named sidecars of a staged runtime with its runtime.json, with
 * the caller's way of hashing (the CLI trusts its stat cache for unchanged
 * files; the server hashes every byte). Throws RuntimeTamperedError listing
 * every mismatch; returns when all match.
 */
export async function verifyStagedFiles(
  dir: string,
  json: RuntimeJson,
  names: readonly SidecarName[],
  hash: (file: string) => Promise<{ sha256: string; size: number }>,
): Promise<void> {
  const mismatches: Mismatch[] = [];
  for (const name of names) {
    const entry = json.sidecars[name];
    if (!entry) {
      mismatches.push({
        name,
        file: path.join(dir, STAGED_FILE[name]),
        expectedSha256: "(not in runtime.json)",
        actualSha256: null,
        expectedSize: 0,
        actualSize: null,
        reason: "runtime.json has no such sidecar",
      });
      continue;
    }
    const file = path.join(dir, entry.file);
    try {
      const actual = await hash(file);
      if (actual.sha256 !== entry.sha256 || actual.size !== entry.size) {
        mismatches.push({
          name,
          file,
          expectedSha256: entry.sha256,
          actualSha256: actual.sha256,
          expectedSize: entry.size,
          actualSize: actual.size,
          reason:
            actual.size !== entry.size ? `size ${actual.size}, expected ${entry.size}` : "content changed",
        });
      }
    } catch (error) {
      const code = systemErrorCode(error);
      mismatches.push({
        name,
        file,
        expectedSha256: entry.sha256,
        actualSha256: null,
        expectedSize: entry.size,
        actualSize: null,
        reason: code === "ENOENT" ? "missing" : `unreadable (${code ?? errorMessage(error)})`,
      });
    }
  }
  if (mismatches.length > 0) throw new RuntimeTamperedError(json.runtimeId, dir, mismatches);
}
