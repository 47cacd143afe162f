import { readFile } from "node:fs/promises";
import path from "node:path";
import { OpenworkError, systemErrorCode } from "../errors/errors.js";
import { SIDECAR_NAMES, type SidecarName, STAGED_FILE } from "../sidecars/names.js";
import { isTarget } from "../sidecars/platform.js";
import type { StatCache } from "../store/stat-cache.js";
import { openStore } from "../store/store.js";
import { RUNTIME_ID, type RuntimeJson, runtimeIdOf } from "./runtime-json.js";

export interface VerifyOptions {
  /** default: the store's stat cache under OPENWORK_HOME (never one inside the persisted volume) */
  statCache?: StatCache | undefined;
  /** check only these sidecars (e.g. the ones about to be executed) */
  only?: readonly SidecarName[] | undefined;
}

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
 * Re-check a staged runtime before anything in it is executed: runtime.json
 * must hash to its directory's id, and every file must still have the sha256
 * and size runtime.json records. Unchanged files are vouched for by the stat
 * cache (no read); changed ones are re-hashed. Any mismatch throws an
 * OpenworkError (code "runtime_tampered") naming each file with the expected
 * and the actual sha256; `details.mismatches` lists them all.
 */
export async function verifyStagedRuntime(dir: string, options: VerifyOptions = {}): Promise<RuntimeJson> {
  const runtime = await readRuntimeJson(dir);
  const statCache = options.statCache ?? openStore().statCache;
  const mismatches: Mismatch[] = [];
  const names = SIDECAR_NAMES.filter(
    (name) => runtime.sidecars[name] && (!options.only || options.only.includes(name)),
  );
  for (const name of names) {
    const entry = runtime.sidecars[name]!;
    const file = path.join(dir, entry.file);
    try {
      const actual = await statCache.hash(file);
      if (actual.sha256 !== entry.sha256 || actual.size !== entry.size) {
        mismatches.push({
          name,
          file,
          expectedSha256: entry.sha256,
          actualSha256: actual.sha256,
          expectedSize: entry.size,
          actualSize: actual.size,
          reason: "content changed",
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
        reason: code === "ENOENT" ? "missing" : `unreadable (${code ?? (error as Error).message})`,
      });
    }
  }
  if (mismatches.length > 0) {
    const lines = mismatches.map(
      (m) =>
        `${m.file}: expected sha256 ${m.expectedSha256}, actual ${m.actualSha256 ?? `none (${m.reason})`}`,
    );
    throw new OpenworkError(`refusing to run the staged runtime ${runtime.runtimeId}: ${lines.join("; ")}`, {
      code: "runtime_tampered",
      hint: "a staged sidecar was modified; stage the runtime again (openwork start does) and find out who wrote to it",
      details: { runtimeId: runtime.runtimeId, dir, mismatches },
    });
  }
  return runtime;
}

/** Read and check runtime.json: well-formed, and its content hashes to the directory's runtime id. */
export async function readRuntimeJson(dir: string): Promise<RuntimeJson> {
  const file = path.join(dir, "runtime.json");
  let data: RuntimeJson;
  try {
    data = JSON.parse(await readFile(file, "utf8")) as RuntimeJson;
  } catch (error) {
    throw new OpenworkError(
      `${file} ${systemErrorCode(error) === "ENOENT" ? "is missing: the runtime was never completely staged" : `is unreadable: ${(error as Error).message}`}`,
      { code: "runtime_invalid", hint: "stage the runtime again" },
    );
  }
  const id = path.basename(dir);
  const problems: string[] = [];
  if (!data || typeof data !== "object" || typeof data.sidecars !== "object" || data.sidecars === null) {
    problems.push("no sidecars");
  } else {
    for (const [name, entry] of Object.entries(data.sidecars)) {
      if (!(SIDECAR_NAMES as readonly string[]).includes(name)) problems.push(`unknown sidecar ${name}`);
      else if (
        !entry ||
        entry.file !== STAGED_FILE[name as SidecarName] ||
        !/^[0-9a-f]{64}$/.test(entry.sha256) ||
        !Number.isInteger(entry.size)
      ) {
        problems.push(`bad entry for ${name}`);
      }
    }
    if (problems.length === 0) {
      const computed = runtimeIdOf(
        Object.entries(data.sidecars).map(([name, entry]) => [name, entry!.sha256]),
      );
      if (!RUNTIME_ID.test(id) || computed !== id || data.runtimeId !== id) {
        problems.push(
          `its sidecar hashes give the runtime id ${computed}, but the directory is ${id} and runtimeId says ${data.runtimeId}`,
        );
      }
    }
    if (typeof data.target !== "string" || !isTarget(data.target))
      problems.push(`bad target ${String(data.target)}`);
  }
  if (problems.length > 0) {
    throw new OpenworkError(`${file} is not a valid runtime description: ${problems.join("; ")}`, {
      code: "runtime_tampered",
      hint: "stage the runtime again",
    });
  }
  return data;
}
