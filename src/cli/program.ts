import { Command, Option } from "commander";
import { packageVersion } from "../config/package-root.js";
import { registerEngine } from "./commands/engine.js";
import { registerEnv } from "./commands/env.js";
import { registerImage } from "./commands/image.js";
import { registerRuns } from "./commands/runs.js";
import { registerRuntime } from "./commands/runtime.js";
import { registerSidecars } from "./commands/sidecars.js";
import { registerStart } from "./commands/start.js";
import { registerWorkers } from "./commands/workers.js";

export function buildProgram(): Command {
  const program = new Command("openwork")
    .description(
      "Run the OpenWork agent runtime — the opencode engine, an optional messaging router and the runtime server —\n" +
        "on the host, in a Docker container or in an Apple container VM, from verified sidecar binaries.",
    )
    .version(packageVersion(), "-V, --version", "print the openwork version")
    .option("--json", "print exactly one JSON document on stdout (logs stay on stderr)")
    .addOption(
      new Option(
        "--log-format <format>",
        "log format on stderr (default: pretty on a TTY, else json)",
      ).choices(["pretty", "json"]),
    )
    .option("--verbose", "debug logs, and stack traces on errors")
    .showHelpAfterError(false)
    .addHelpText(
      "after",
      "\nExit codes: 0 ok, 1 failure, 2 usage error, 3 not running (status).\n" +
        "State lives in OPENWORK_HOME (default: the platform's data directory).",
    );
  // Set before the subcommands are added: they copy these settings from their parent.
  program.exitOverride();
  // commander would print its own "error: …" line; main() prints ours instead, so there is one.
  program.configureOutput({ outputError: () => {} });
  registerStart(program);
  registerRuns(program);
  registerRuntime(program);
  registerSidecars(program);
  registerImage(program);
  registerEnv(program);
  registerEngine(program);
  registerWorkers(program);
  return program;
}
