export {
  ALLOWLIST_ENV,
  ALLOWLIST_FILE_NAME,
  defaultAllowlistPath,
  loadAllowlist,
  type MountAllowlist,
} from "./allowlist.js";
export { dockerBinds } from "./binds.js";
export { parseMountSpec } from "./spec.js";
export { EXTRA_MOUNT_ROOT, type ParsedMountSpec, type ValidatedMount } from "./types.js";
export { refuseMountsOnHost, type ValidateMountsOptions, validateMounts } from "./validate.js";
