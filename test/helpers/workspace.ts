import { chownSync, mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/** The user a root test run gives sandbox workspaces to: a sandbox never runs as root (src/sandbox/user.ts). */
export const SANDBOX_TEST_USER = { uid: 1000, gid: 1000 };

/**
 * A fresh workspace a sandbox can run in: when the tests run as root, owned by
 * SANDBOX_TEST_USER, as a user's project would be (a root-owned one is refused).
 */
export function sandboxWorkspace(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (process.getuid?.() === 0) chownSync(dir, SANDBOX_TEST_USER.uid, SANDBOX_TEST_USER.gid);
  return dir;
}
