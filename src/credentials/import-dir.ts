import { lchown, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { SandboxUser } from "../sandbox/user.js";
import type { CredentialsPlan } from "./plan.js";

/** The import directory's layout, shared by the host that writes it and the runtime that installs it. */
export const IMPORT_NAMES = {
  /** a copy of the user's opencode config directory */
  config: "config",
  /** the user's opencode auth files */
  data: "data",
  /** the CA bundle */
  ca: "ca.pem",
} as const;

/**
 * Write a start's imports — the user's opencode config, logins and CA bundle —
 * into a fresh directory of its own (mode 0700, files 0600), outside anything
 * a sandbox can write. The runtime gets it read-only and copies it into its
 * own directories before the engine starts (src/credentials/install.ts); the
 * host removes it once the run is up. The user's files are only read.
 */
export async function writeImportDir(
  dir: string,
  plan: CredentialsPlan,
  owner: SandboxUser | undefined,
): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const made: string[] = [dir];
  const put = async (relative: string, content: Buffer | string) => {
    const file = path.join(dir, relative);
    const parent = path.dirname(file);
    if (parent !== dir) {
      await mkdir(parent, { recursive: true, mode: 0o700 });
      for (let d = parent; d !== dir; d = path.dirname(d)) if (!made.includes(d)) made.push(d);
    }
    // `wx`: a fresh file, never through something already there.
    await writeFile(file, content, { mode: 0o600, flag: "wx" });
    made.push(file);
  };
  for (const file of plan.host.configFiles)
    await put(path.join(IMPORT_NAMES.config, file.path), file.content);
  for (const file of plan.host.authFiles) await put(path.join(IMPORT_NAMES.data, file.name), file.content);
  if (plan.ca) await put(IMPORT_NAMES.ca, plan.ca.pem);
  // The sandbox's user must read what it installs (a read-only mount: it can change none of it).
  if (owner) for (const entry of made) await lchown(entry, owner.uid, owner.gid);
}

/** Whether a start has anything to import (else no directory, and the entrypoint skips its step). */
export function hasImports(plan: CredentialsPlan): boolean {
  return plan.host.configFiles.length > 0 || plan.host.authFiles.length > 0 || plan.ca !== undefined;
}

export async function removeImportDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
