#!/usr/bin/env node
import { serverMain } from "../src/server/main.js";
import { HANDOFF_FLAG } from "../src/server/upgrade.js";

// The handoff a running server uses to load this bundle during an upgrade (src/server/upgrade.ts).
export { takeOver } from "../src/server/serve.js";
export const OPENWORK_SERVER_HANDOFF = 1;

// Imported by a running server for a handoff: do not start a second command line.
if ((globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] !== true) {
  process.exitCode = await serverMain(process.argv.slice(2));
}
