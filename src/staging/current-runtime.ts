import type { PersistLayout } from "../contract/layout.js";
import { RUNTIME_ID_PATTERN } from "../contract/runtime.js";
import { writeFileAtomicSync } from "../files/atomic.js";
import { readFileInside } from "../files/inside.js";

/*
 * state/current-runtime names the runtime that runs in a workspace: the
 * server writes it when it starts and after a successful upgrade; the CLI
 * only reads it — in a sandbox's persisted directory it is hostile input,
 * read without following links and believed only if it is a runtime id.
 */

/** The recorded runtime id, or undefined when none (or something that is not a runtime id) is recorded. */
export function readCurrentRuntime(layout: PersistLayout): string | undefined {
  try {
    const id = readFileInside(layout.root, layout.currentRuntimeFile).trim();
    return RUNTIME_ID_PATTERN.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

export function writeCurrentRuntime(layout: PersistLayout, runtimeId: string): void {
  writeFileAtomicSync(layout.currentRuntimeFile, `${runtimeId}\n`);
}
