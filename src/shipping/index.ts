/** Moving a run's files to an engine that does not share ours (loaded only by the starts that need it). */
export { pathExists, runHelper, withArchiveHelper } from "./helper.js";
export { imageToEngine } from "./image.js";
export { shippedEntrypoint, shipRuntime } from "./runtime.js";
export { gitignoreFilter, uploadDirectory } from "./upload.js";
export { ensureVolume, volumeNames } from "./volumes.js";
