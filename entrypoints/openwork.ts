#!/usr/bin/env node
// Signals first, before the rest of the program is even loaded (see src/cli/signals.ts).
import { installSignalHandlers } from "../src/cli/signals.js";

installSignalHandlers();
const { main } = await import("../src/cli/main.js");
const code = await main(process.argv);
// The command is done: exit now rather than when the event loop drains, which a
// long-poll left open on purpose (a Docker wait registered before start) would delay.
// stdout and stderr are synchronous for files and pipes on POSIX, so nothing is lost.
process.exit(code);
