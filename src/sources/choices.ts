/** Where a sidecar may come from; `auto` = bundled when it matches the manifest, else the manifest's download. */
export type SourceChoice = "auto" | "bundled" | "npm" | "url";
export const SOURCE_CHOICES: readonly SourceChoice[] = ["auto", "bundled", "npm", "url"];

/** The codes of a source the policy refuses (the CLI words each as the flag that allows it). */
export const SOURCE_REFUSALS = {
  externalNotAllowed: "external_not_allowed",
  versionMismatch: "version_mismatch",
  versionUncheckable: "version_uncheckable",
} as const;
