import { refuseMountsOnHost, validateMounts, validateSandboxWorkspace } from "../mounts/index.js";
import type { ValidatedMount } from "../sandbox/backend.js";
import type { SandboxChoice } from "../sandbox/select.js";

/**
 * Validate what a start hands the sandbox: the workspace (mounted read-write,
 * so under the mount rules) and the --mount specs — the same rules
 * everywhere. The host has no boundary: it refuses mounts outright and takes
 * any workspace.
 */
export function validateRunMounts(
  sandbox: SandboxChoice,
  specs: string[],
  workspace: string,
): ValidatedMount[] {
  if (sandbox !== "none") validateSandboxWorkspace(workspace);
  if (specs.length === 0) return [];
  if (sandbox === "none") refuseMountsOnHost(specs);
  return validateMounts(specs, { workspace });
}
