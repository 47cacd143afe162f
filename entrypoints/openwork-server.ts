#!/usr/bin/env node
import { HANDOFF_FLAG, HANDOFF_PROTOCOL, type HandoffModule } from "../src/contract/handoff.js";
import { serverMain } from "../src/server/main.js";
import { takeOver as takeOverImpl } from "../src/server/serve.js";

// The handoff a running server uses to load this bundle during an upgrade (src/contract/handoff.ts).
export const takeOver: HandoffModule["takeOver"] = takeOverImpl;
export const OPENWORK_SERVER_HANDOFF: HandoffModule["OPENWORK_SERVER_HANDOFF"] = HANDOFF_PROTOCOL;

// Imported by a running server for a handoff: do not start a second command line.
if ((globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] !== true) {
  process.exitCode = await serverMain(process.argv.slice(2));
}
