/** A `--mount` that passed validation: what every substrate receives, identically. */
export interface ValidatedMount {
  /** the host directory's real path (symlinks resolved) */
  hostPath: string;
  /** where it appears in the sandbox: /workspace/extra/<sub> */
  containerPath: string;
  readOnly: boolean;
  /** the spec as the user wrote it, for messages */
  spec: string;
}

/** A spec split into its parts, before any file-system check. */
export interface ParsedMountSpec {
  spec: string;
  hostPath: string;
  /** normalised relative subpath below /workspace/extra */
  subpath: string;
  /** what the user asked for; "ro" when not given */
  mode: "ro" | "rw";
  /** whether the mode was written explicitly */
  explicitMode: boolean;
}

/** The directory every validated mount lives under inside the sandbox. */
export const EXTRA_MOUNT_ROOT = "/workspace/extra";
