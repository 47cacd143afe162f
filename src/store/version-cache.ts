import { readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../files/atomic.js";

/**
 * What a sidecar's `--version` printed, kept per content hash: the bytes of a
 * verified blob never change, so neither does their answer. Asking opencode
 * takes over a second; it is asked once per binary, not once per start.
 * Lives in the store (never in a persisted volume a sandbox can write).
 */
export class VersionCache {
  constructor(readonly dir: string) {}

  private file(sha256: string): string {
    return path.join(this.dir, `${sha256}.json`);
  }

  async get(sha256: string): Promise<string | undefined> {
    try {
      const data = JSON.parse(await readFile(this.file(sha256), "utf8")) as { version?: unknown };
      return typeof data.version === "string" ? data.version : undefined;
    } catch {
      return undefined;
    }
  }

  async set(sha256: string, version: string): Promise<void> {
    // A cache: a failed write only means asking again next time.
    await writeFileAtomic(this.file(sha256), `${JSON.stringify({ version })}\n`).catch(() => undefined);
  }
}
