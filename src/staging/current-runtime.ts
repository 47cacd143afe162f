import { readFileSync } from "node:fs";
import type { PersistLayout } from "../contract/layout.js";
import { RUNTIME_ID_PATTERN } from "../contract/runtime.js";
import { writeFileAtomicSync } from "../files/atomic.js";

/*
 * state/current-runtime names the runtime that runs in a workspace: the
 * server writes it after a successful upgrade, the CLI at each start. One
 * reader and one writer for both sides.
 */

/** The recorded runtime id, or undefined when none (or something that is not a runtime id) is recorded. */
export function readCurrentRuntime(layout: PersistLayout): string | undefined {
  try {
    const id = readFileSync(layout.currentRuntimeFile, "utf8").trim();
    return RUNTIME_ID_PATTERN.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

export function writeCurrentRuntime(layout: PersistLayout, runtimeId: string): void {
  writeFileAtomicSync(layout.currentRuntimeFile, `${runtimeId}\n`);
}
