#!/usr/bin/env node
import { HANDOFF_FLAG, HANDOFF_PROTOCOL, type HandoffModule } from "../src/contract/handoff.js";
import { serverMain } from "../src/server/main.js";

// The handoff a running server uses to load this bundle during an upgrade (src/contract/handoff.ts).
// Loaded when called: the entrypoint's short commands (probe, install-imports) do not pay for the server.
export const takeOver: HandoffModule["takeOver"] = async (input) =>
  (await import("../src/server/serve.js")).takeOver(input);
export const OPENWORK_SERVER_HANDOFF: HandoffModule["OPENWORK_SERVER_HANDOFF"] = HANDOFF_PROTOCOL;

// Imported by a running server for a handoff: do not start a second command line.
if ((globalThis as Record<symbol, unknown>)[HANDOFF_FLAG] !== true) {
  process.exitCode = await serverMain(process.argv.slice(2));
}
