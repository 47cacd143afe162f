#!/usr/bin/env node
// Signals first, before the rest of the program is even loaded (see src/cli/signals.ts).
import { installSignalHandlers } from "../src/cli/signals.js";

installSignalHandlers();
const { main } = await import("../src/cli/main.js");
process.exitCode = await main(process.argv);
