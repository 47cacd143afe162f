import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { writeFileAtomicSync } from "../files/atomic.js";

/** Write a file atomically: a temporary sibling, then rename (readers see the old or the new, never half). */
/** The server's state files: atomic replacement, shared with the CLI's (src/files/atomic.ts). */
export function writeFileAtomic(file: string, content: string, mode = 0o644): void {
  writeFileAtomicSync(file, content, { mode });
}

export function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** The server's state under `<persist>/state`. */
export class StateDir {
  constructor(readonly persist: string) {}

  get dir(): string {
    return path.join(this.persist, "state");
  }

  upgradeFile(operationId: string): string {
    return path.join(this.dir, "upgrades", `${operationId}.json`);
  }

  listUpgrades(): string[] {
    try {
      return readdirSync(path.join(this.dir, "upgrades"))
        .filter((name) => name.endsWith(".json"))
        .map((name) => name.slice(0, -".json".length));
    } catch {
      return [];
    }
  }

  /** The runtime that runs in this workspace: written after a successful upgrade (and by the CLI at each start). */
  get currentRuntimeFile(): string {
    return path.join(this.dir, "current-runtime");
  }

  writeCurrentRuntime(runtimeId: string): void {
    writeFileAtomic(this.currentRuntimeFile, `${runtimeId}\n`);
  }

  readCurrentRuntime(): string | undefined {
    try {
      return readFileSync(this.currentRuntimeFile, "utf8").trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** processes the server spawned (pid + start time), so a later start can stop what a killed server left */
  get childrenFile(): string {
    return path.join(this.dir, "children.json");
  }

  get tokensFile(): string {
    return path.join(this.dir, "tokens.json");
  }
}
