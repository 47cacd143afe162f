import { type Command, Option } from "commander";
import { SOURCE_CHOICES } from "../sources/choices.js";
import { SIDECAR_OVERRIDES } from "../sources/policy.js";

/** Add --opencode-bin/--router-bin/--server-bin, --allow-external and --allow-version-mismatch to a command. */
export function addSidecarOverrideOptions(command: Command): Command {
  for (const { flag, what } of SIDECAR_OVERRIDES) {
    command.option(
      `${flag} <path>`,
      `use this file as ${what} instead of the manifest's (needs --allow-external)`,
    );
  }
  return command
    .option("--allow-external", "allow --*-bin overrides: files that are not verified against the manifest")
    .option(
      "--allow-version-mismatch",
      "accept an override whose reported version differs from the manifest's pin",
    );
}

/** Add --source auto|bundled|npm|url. */
export function addSourceOption(command: Command): Command {
  return command.addOption(
    new Option(
      "--source <source>",
      "where sidecars come from: bundled packages, npm, the manifest's URL, or auto (bundled, else download)",
    )
      .choices([...SOURCE_CHOICES])
      .default("auto"),
  );
}
