import { lchownSync, lstatSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { UsageError } from "../errors/errors.js";

/** Who the sandbox's processes run as: never root (DESIGN.md §4a). */
export interface SandboxUser {
  uid: number;
  gid: number;
}

/** The user a baked runtime image runs as (Swarm): its /persist and /workspace are theirs, so a new volume is too. */
export const BAKED_USER: SandboxUser = { uid: 1000, gid: 1000 };

export function formatUser(user: SandboxUser): string {
  return `${user.uid}:${user.gid}`;
}

/**
 * The caller's own uid and gid; when the caller is root, the workspace's
 * owner — files the agent writes then belong to the project's user, and a
 * setuid file it makes can never be root's. A root-owned workspace started
 * by root is refused: the sandbox could not write it without being root.
 */
export function sandboxUser(workspace: string): SandboxUser {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === undefined || gid === undefined) return { uid: 1000, gid: 1000 };
  if (uid !== 0) return { uid, gid };
  const owner = statSync(workspace);
  if (owner.uid !== 0) return { uid: owner.uid, gid: owner.gid };
  throw new UsageError(
    `the workspace ${workspace} belongs to root, and a sandbox never runs as root`,
    `give the project to a user (chown -R 1000:1000 ${JSON.stringify(workspace)}) — the sandbox then runs as that user — or run openwork as that user`,
  );
}

/**
 * Make a persisted directory the sandbox user's (only root needs to: anyone
 * else's sandbox runs as themselves). Links are changed, never followed.
 */
export function giveToSandboxUser(dir: string, user: SandboxUser): void {
  if (process.getuid?.() !== 0) return;
  const st = lstatSync(dir);
  if (st.uid === user.uid && st.gid === user.gid) return;
  const walk = (entry: string) => {
    const info = lstatSync(entry);
    // lchown: a link planted by a sandbox is changed itself, its target never.
    lchownSync(entry, user.uid, user.gid);
    if (info.isDirectory()) for (const name of readdirSync(entry)) walk(path.join(entry, name));
  };
  walk(dir);
}
