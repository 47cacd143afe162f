import semver from "semver";
import { z } from "zod";
import { SIDECAR_NAMES, type SidecarName } from "../sidecars/names.js";
import { KNOWN_TARGETS, type Target } from "../sidecars/platform.js";

const semverString = z.string().refine((value) => semver.valid(value) !== null, {
  message: "must be a semantic version such as 1.18.34",
});
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits (a sha256)");

export const npmSourceSchema = z
  .object({
    type: z.literal("npm"),
    package: z.string().regex(/^(@[a-z0-9._~-]+\/)?[a-z0-9._~-]+$/, "must be an npm package name"),
    version: semverString,
    integrity: z
      .string()
      .regex(
        /(^|\s)sha512-[A-Za-z0-9+/]{86}==(\s|$)/,
        "must be an SRI string with a sha512 digest, as npm's dist.integrity",
      ),
    /** the binary inside the package (default: bin/<sidecar>) */
    path: z
      .string()
      .regex(/^[^/].*$/, "must be relative to the package root")
      .refine((value) => !value.split("/").includes(".."), "must not contain ..")
      .optional(),
  })
  .strict();

export const urlSourceSchema = z
  .object({
    type: z.literal("url"),
    url: z.string().refine((value) => /^https?:\/\/[^\s]+$/.test(value), "must be an http(s) URL"),
  })
  .strict();

/** Built from this repository (the server): the bytes are whatever this installation's build produced. */
export const bundledSourceSchema = z.object({ type: z.literal("bundled") }).strict();

export const sourceSchema = z.discriminatedUnion("type", [
  npmSourceSchema,
  urlSourceSchema,
  bundledSourceSchema,
]);

export const targetEntrySchema = z
  .object({
    version: semverString,
    file: z.string().regex(/^[A-Za-z0-9._+-]+$/, "must be a plain file name"),
    /**
     * The binary's sha256 and size. null only for an npm source: the tarball's
     * sha512 integrity then pins the bytes, and the binary's own hash is
     * learned (and recorded in runtime.json) when it is first fetched.
     */
    sha256: sha256.nullable(),
    size: z.number().int().positive().nullable(),
    source: sourceSchema,
  })
  .strict()
  .superRefine((entry, ctx) => {
    if (entry.source.type !== "npm") {
      if (entry.sha256 === null)
        ctx.addIssue({
          code: "custom",
          path: ["sha256"],
          message: `is required for a ${entry.source.type} source`,
        });
      if (entry.size === null)
        ctx.addIssue({
          code: "custom",
          path: ["size"],
          message: `is required for a ${entry.source.type} source`,
        });
    }
    if (entry.source.type === "npm" && entry.source.version !== entry.version) {
      ctx.addIssue({
        code: "custom",
        path: ["source", "version"],
        message: `is ${entry.source.version} but the entry's version is ${entry.version}`,
      });
    }
  });

const targetKey = z.enum(KNOWN_TARGETS as unknown as [Target, ...Target[]]);

export const sidecarSchema = z
  .object({
    targets: z.partialRecord(targetKey, targetEntrySchema),
  })
  .strict();

export const manifestSchema = z
  .object({
    $schema: z.string().optional(),
    manifestVersion: z.literal(1),
    /** the runtime release this manifest describes (the server's version) */
    runtimeVersion: semverString,
    generatedAt: z
      .string()
      .refine((value) => !Number.isNaN(Date.parse(value)), "must be an ISO 8601 date-time"),
    sidecars: z
      .object({
        opencode: sidecarSchema,
        "opencode-router": sidecarSchema.optional(),
        "openwork-server": sidecarSchema,
        node: sidecarSchema,
      })
      .strict(),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestEntry = z.infer<typeof targetEntrySchema>;
export type ManifestSource = z.infer<typeof sourceSchema>;
export type NpmSource = z.infer<typeof npmSourceSchema>;

/** The entry for one sidecar and target, if the manifest has one. */
export function manifestEntry(
  manifest: Manifest,
  name: SidecarName,
  target: Target,
): ManifestEntry | undefined {
  return manifest.sidecars[name]?.targets[target];
}

/** The sidecars the manifest provides for `target`, in start order. */
export function sidecarsFor(manifest: Manifest, target: Target): SidecarName[] {
  return SIDECAR_NAMES.filter((name) => manifestEntry(manifest, name, target) !== undefined);
}
