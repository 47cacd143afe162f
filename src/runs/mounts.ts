import { UsageError } from "../errors/errors.js";
import type { ValidatedMount } from "../sandbox/backend.js";
import type { SandboxChoice } from "../sandbox/select.js";

/** Validate --mount specs for the chosen sandbox: the same rules everywhere; the host refuses mounts outright. */
export async function validateRunMounts(sandbox: SandboxChoice, specs: string[]): Promise<ValidatedMount[]> {
  if (specs.length === 0) return [];
  if (sandbox === "none") {
    throw new UsageError(
      "--mount is not available with --sandbox none: host processes already see the whole file system",
      "use --sandbox docker or container to mount extra directories",
    );
  }
  throw new Error("validateRunMounts: wired to src/mounts at merge");
}
