export {
  type BundledManifestOptions,
  buildBundledManifest,
  defaultManifest,
  pinnedVersion,
} from "./bundled.js";
export { loadManifest, parseManifest, validateManifest } from "./load.js";
export {
  type Manifest,
  type ManifestEntry,
  type ManifestSource,
  manifestEntry,
  manifestSchema,
  type NpmSource,
  sidecarsFor,
} from "./schema.js";
