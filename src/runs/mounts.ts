import { refuseMountsOnHost, validateMounts } from "../mounts/index.js";
import type { ValidatedMount } from "../sandbox/backend.js";
import type { SandboxChoice } from "../sandbox/select.js";

/** Validate --mount specs for the chosen sandbox: the same rules everywhere; the host refuses mounts outright. */
export function validateRunMounts(
  sandbox: SandboxChoice,
  specs: string[],
  workspace: string,
): ValidatedMount[] {
  if (specs.length === 0) return [];
  if (sandbox === "none") refuseMountsOnHost(specs);
  return validateMounts(specs, { workspace });
}
