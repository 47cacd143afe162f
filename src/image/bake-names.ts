/** The names a baked runtime image carries (light: a start reads them without loading the baking code). */
export const RUNTIME_REPO = "openwork-runtime";
export const LABEL_RUNTIME_ID = "openwork.runtime";
export const LABEL_MANIFEST_DIGEST = "openwork.manifest-digest";
export const LABEL_SANDBOX_BASE = "openwork.image.sandbox";
/** The baked runtime's Node at a path that does not change with the runtime (the health check runs it). */
export const BAKED_NODE = "/usr/local/bin/openwork-node";
/** the file beside the sidecars that the image's command checks before it runs anything */
export const CHECKSUMS_FILE = "SHA256SUMS";
/** What the baking makes (its Dockerfile): an image baked another way is baked again, not reused. */
export const LABEL_BAKE_FORMAT = "openwork.bake.format";
export const BAKE_FORMAT = "1";
