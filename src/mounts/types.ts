/** A mount that passed validation (src/mounts): what every backend translates to its own syntax. */
export interface ValidatedMount {
  /** real path on the host */
  hostPath: string;
  /** /workspace/extra/<sub> */
  containerPath: string;
  readOnly: boolean;
  /** the spec as the user wrote it */
  spec: string;
}
