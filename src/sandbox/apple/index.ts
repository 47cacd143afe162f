export {
  type AppleBind,
  appleBindsFor,
  appleBindsFromMounts,
  appleContainerName,
  appleMountArgs,
  buildRunArgs,
  decodeAppleLabel,
  encodeAppleLabel,
} from "./argv.js";
export { APPLE_DEFAULT_GRACE_MS, type AppleBackendOptions, AppleContainerBackend } from "./backend.js";
export { APPLE_BIN_ENV, appleBin } from "./cli.js";
export { type AppleContainer, parseAppleContainer, parseAppleContainerList } from "./inspect.js";
export {
  type AppleFeatures,
  appleFeatures,
  INIT_SINCE,
  MINIMUM_APPLE_VERSION,
  parseAppleVersion,
  READ_ONLY_SINCE,
} from "./version.js";
