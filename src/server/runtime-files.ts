import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { sha256File } from "../sidecars/hash.js";

const sidecarEntry = z.object({
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lowercase hex digits"),
  size: z.number().int().nonnegative(),
  version: z.string().min(1),
});
export type SidecarEntry = z.output<typeof sidecarEntry>;

export const runtimeJsonSchema = z.object({
  runtimeId: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/),
  target: z.string().min(1),
  runtimeVersion: z.string().optional(),
  sidecars: z.record(z.string(), sidecarEntry),
});
export type RuntimeJson = z.output<typeof runtimeJsonSchema>;

/** A staged runtime: its directory and its runtime.json (docs/architecture.md, "Staged runtime"). */
export interface StagedRuntime {
  dir: string;
  json: RuntimeJson;
}

export function runtimeDir(persist: string, runtimeId: string): string {
  return path.join(persist, "runtimes", runtimeId);
}

export function readRuntime(persist: string, runtimeId: string): StagedRuntime {
  const dir = runtimeDir(persist, runtimeId);
  const file = path.join(dir, "runtime.json");
  if (!existsSync(file)) {
    throw new OpenworkError(`staged runtime ${runtimeId} has no ${file}`, {
      code: "runtime_not_found",
      hint: "stage the runtime (its sidecars and runtime.json) under the persisted directory first",
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new OpenworkError(`${file} is not valid JSON: ${errorMessage(error)}`, { code: "runtime_invalid" });
  }
  const parsed = runtimeJsonSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OpenworkError(`${file}: ${issue?.path.join(".")}: ${issue?.message}`, {
      code: "runtime_invalid",
    });
  }
  if (parsed.data.runtimeId !== runtimeId) {
    throw new OpenworkError(
      `${file} names runtime ${parsed.data.runtimeId}, but it is staged as ${runtimeId}`,
      {
        code: "runtime_invalid",
      },
    );
  }
  return { dir, json: parsed.data };
}

/** The staged path of one sidecar; its `file` must stay inside the runtime directory. */
export function sidecarPath(runtime: StagedRuntime, name: string): string | undefined {
  const entry = runtime.json.sidecars[name];
  if (!entry) return undefined;
  const file = path.resolve(runtime.dir, entry.file);
  if (!file.startsWith(`${runtime.dir}${path.sep}`)) {
    throw new OpenworkError(
      `runtime.json entry ${name} points outside its runtime directory: ${entry.file}`,
      {
        code: "runtime_invalid",
      },
    );
  }
  return file;
}

/**
 * Check every named sidecar's size and sha256 against runtime.json before
 * anything from it is executed. Throws naming the file, expected and actual.
 */
export async function verifyRuntime(runtime: StagedRuntime, names: readonly string[]): Promise<void> {
  for (const name of names) {
    const entry = runtime.json.sidecars[name];
    const file = sidecarPath(runtime, name);
    if (!entry || !file) {
      throw new OpenworkError(`runtime ${runtime.json.runtimeId} has no ${name} sidecar`, {
        code: "verify_failed",
      });
    }
    let actual: { sha256: string; size: number };
    try {
      actual = await sha256File(file);
    } catch (error) {
      throw new OpenworkError(`cannot read ${file}: ${errorMessage(error)}`, { code: "verify_failed" });
    }
    if (actual.size !== entry.size) {
      throw new OpenworkError(`${file}: size ${actual.size} bytes, runtime.json expects ${entry.size}`, {
        code: "verify_failed",
      });
    }
    if (actual.sha256 !== entry.sha256) {
      throw new OpenworkError(`${file}: sha256 ${actual.sha256}, runtime.json expects ${entry.sha256}`, {
        code: "verify_failed",
      });
    }
  }
}

const manifestSchema = z.object({
  sidecars: z.record(
    z.string(),
    z.object({
      version: z.string().min(1),
      targets: z.record(z.string(), sidecarEntry.omit({ version: true }).partial({ file: true })),
    }),
  ),
});

/**
 * A manifest the server can verify. Deliberately tiny and local (the CLI's
 * manifest module lives in src/manifest): `{ "sidecars": { "<name>": { "version",
 * "targets": { "<target>": { "sha256", "size", "file"? } } } } }`, with the
 * files in `dir`. It becomes a runtime.json-shaped record; verifyRuntime does the rest.
 */
export function runtimeFromManifest(
  manifestFile: string,
  dir: string,
  target: string,
  runtimeId: string,
): StagedRuntime {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(manifestFile, "utf8"));
  } catch (error) {
    throw new OpenworkError(`cannot read manifest ${manifestFile}: ${errorMessage(error)}`, {
      code: "manifest_invalid",
    });
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OpenworkError(`manifest ${manifestFile}: ${issue?.path.join(".")}: ${issue?.message}`, {
      code: "manifest_invalid",
    });
  }
  const sidecars: Record<string, SidecarEntry> = {};
  for (const [name, sidecar] of Object.entries(parsed.data.sidecars)) {
    const entry = sidecar.targets[target];
    if (!entry) continue;
    sidecars[name] = {
      file: entry.file ?? (name === "openwork-server" ? "openwork-server.mjs" : name),
      sha256: entry.sha256,
      size: entry.size,
      version: sidecar.version,
    };
  }
  return { dir: path.resolve(dir), json: { runtimeId, target, sidecars } };
}
