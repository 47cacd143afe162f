import type { OpenworkErrorLike } from "../errors/errors.js";
import { type OptionDifference, RunOptionsDifferError } from "../runs/options-differ.js";
import { SOURCE_REFUSALS } from "../sources/choices.js";

/*
 * The domain says what is wrong in its own terms; here, and only here, the
 * CLI says which of its flags answers it.
 */

const FLAG: Record<OptionDifference["option"], string> = {
  sandbox: "--sandbox",
  image: "--image",
  port: "--port",
  router: "--router",
  allowRemote: "--allow-remote",
  publishAddress: "--publish-address",
  mounts: "--mount",
  limits: "--cpus/--memory/--pids-limit",
  runtime: "--manifest/--source/--*-bin",
  credentials: "credentials:",
};

const HINTS: Record<string, string> = {
  [SOURCE_REFUSALS.externalNotAllowed]:
    "pass --allow-external to use a binary that is not verified against the manifest",
  [SOURCE_REFUSALS.versionMismatch]: "use a matching binary, or add --allow-version-mismatch",
  [SOURCE_REFUSALS.versionUncheckable]: "add --allow-version-mismatch to accept it unchecked",
  router_unavailable: "pass --router-bin PATH --allow-external, or a --manifest that carries opencode-router",
};

/** The message and hint the CLI prints for an error. */
export function cliWording(error: OpenworkErrorLike): { message: string; hint: string | undefined } {
  if (error instanceof RunOptionsDifferError) {
    return {
      message: `the workspace's runtime (run ${error.runId}) runs with other options: ${error.differences
        .map((d) => `${FLAG[d.option]} ${d.asked} (it runs with ${d.running})`)
        .join("; ")}`,
      hint: "pass --replace to start one with these options (the running one is retired once the new one is healthy)",
    };
  }
  return { message: error.message, hint: HINTS[error.code] ?? error.hint };
}
