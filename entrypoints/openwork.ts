#!/usr/bin/env node
// Signals first, before the rest of the program is even loaded (see src/cli/signals.ts).
import { installSignalHandlers } from "../src/cli/signals.js";

installSignalHandlers();
const { main } = await import("../src/cli/main.js");
const code = await main(process.argv);
// The command is done: exit now rather than when the event loop drains, which a
// long-poll left open on purpose (a Docker wait registered before start) would delay —
// but only once stdout and stderr are flushed (writes to a pipe are asynchronous on POSIX).
process.exitCode = code;
let pending = 2;
const flushed = () => {
  if (--pending === 0) process.exit(code);
};
process.stdout.write("", flushed);
process.stderr.write("", flushed);
