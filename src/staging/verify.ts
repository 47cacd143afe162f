import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {
  parseRuntimeJson,
  type RuntimeJson,
  RuntimeTamperedError,
  verifyStagedFiles,
} from "../contract/runtime.js";
import { OpenworkError, systemErrorCode } from "../errors/errors.js";
import { SIDECAR_NAMES, type SidecarName } from "../sidecars/names.js";
import { StatCache } from "../store/stat-cache.js";
import { openStore } from "../store/store.js";

export { type Mismatch, RuntimeTamperedError } from "../contract/runtime.js";

export interface VerifyOptions {
  /** default: the store's stat cache under OPENWORK_HOME (never one inside the persisted volume) */
  statCache?: StatCache | undefined;
  /** check only these sidecars (e.g. the ones about to be executed) */
  only?: readonly SidecarName[] | undefined;
}

/**
 * Re-check a staged runtime before anything in it is executed: runtime.json
 * must hash to its directory's id, and every file must still have the sha256
 * and size runtime.json records. Unchanged files are vouched for by the stat
 * cache (no read); changed ones are re-hashed. Any mismatch throws a
 * RuntimeTamperedError naming each file with the expected and actual sha256.
 */
export async function verifyStagedRuntime(dir: string, options: VerifyOptions = {}): Promise<RuntimeJson> {
  const runtime = await readRuntimeJson(dir);
  const statCache = options.statCache ?? openStore().statCache;
  const names = SIDECAR_NAMES.filter(
    (name) => runtime.sidecars[name] && (!options.only || options.only.includes(name)),
  );
  await verifyStagedFiles(dir, runtime, names, (file) => statCache.hash(file));
  return runtime;
}

/** Read and check runtime.json: well-formed, and its content hashes to the directory's runtime id. */
export async function readRuntimeJson(dir: string): Promise<RuntimeJson> {
  const file = path.join(dir, "runtime.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new OpenworkError(
      `${file} ${systemErrorCode(error) === "ENOENT" ? "is missing: the runtime was never completely staged" : `is unreadable: ${(error as Error).message}`}`,
      { code: "runtime_invalid", hint: "stage the runtime again" },
    );
  }
  return parseRuntimeJson(text, file, path.basename(dir));
}

/**
 * `sidecars verify --runtime DIR`: verify a staged runtime and report rather
 * than throw. With `full`, every file is hashed again (a private, empty stat
 * cache), so the answer vouches only for bytes read now.
 */
export async function verifyRuntimeDir(
  dir: string,
  options: { full: boolean },
): Promise<{ ok: true; runtime: RuntimeJson } | { ok: false; error: RuntimeTamperedError }> {
  const scratch = options.full ? await mkdtemp(path.join(os.tmpdir(), "openwork-verify-")) : undefined;
  try {
    const runtime = await verifyStagedRuntime(dir, scratch ? { statCache: new StatCache(scratch) } : {});
    return { ok: true, runtime };
  } catch (error) {
    if (error instanceof RuntimeTamperedError) return { ok: false, error };
    throw error;
  } finally {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  }
}
