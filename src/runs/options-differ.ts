import { OpenworkError } from "../errors/errors.js";

/** One option a start asked for that the running runtime does not have. */
export interface OptionDifference {
  option:
    | "sandbox"
    | "image"
    | "port"
    | "router"
    | "allowRemote"
    | "publishAddress"
    | "mounts"
    | "limits"
    | "runtime"
    | "credentials";
  asked: string;
  running: string;
}

/** A start asked for options the workspace's running runtime does not have: a new run needs `replace`. */
export class RunOptionsDifferError extends OpenworkError {
  constructor(
    readonly runId: string,
    readonly differences: readonly OptionDifference[],
  ) {
    super(
      `the workspace's runtime (run ${runId}) runs with other options: ${differences
        .map((d) => `${d.option} ${d.asked} asked, ${d.running} running`)
        .join("; ")}`,
      { code: "options_differ", exitCode: 2, hint: "replace it to start one with these options" },
    );
    this.name = "RunOptionsDifferError";
  }
}
