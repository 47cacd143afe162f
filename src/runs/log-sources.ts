/** Whose log `openwork logs --component` prints. */
export type LogSource = "runtime" | "engine" | "router";
export const LOG_SOURCES: readonly LogSource[] = ["runtime", "engine", "router"];
