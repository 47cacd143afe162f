export {
  type BundledManifestOptions,
  buildBundledManifest,
  defaultManifest,
  pinnedVersion,
} from "./bundled.js";
export { loadManifest } from "./load.js";
export { parseManifest, validateManifest } from "./parse.js";
export {
  type Manifest,
  type ManifestEntry,
  type ManifestSource,
  manifestEntry,
  manifestSchema,
  type NpmSource,
  sidecarsFor,
} from "./schema.js";
