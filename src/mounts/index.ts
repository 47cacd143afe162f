export {
  ALLOWLIST_ENV,
  ALLOWLIST_FILE_NAME,
  defaultAllowlistPath,
  loadAllowlist,
  type MountAllowlist,
} from "./allowlist.js";
export { dockerMounts } from "./docker-binds.js";
export { EXTRA_MOUNT_ROOT, type ParsedMountSpec, parseMountSpec } from "./spec.js";
export type { ValidatedMount } from "./types.js";
export {
  refuseMountsOnHost,
  type ValidateMountsOptions,
  validateMounts,
  validateSandboxWorkspace,
} from "./validate.js";
