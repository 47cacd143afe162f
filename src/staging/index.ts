export { type GcOptions, type GcResult, gcRuntimes } from "./gc.js";
export { type StagedSidecar, type StageOptions, type StageResult, stageRuntime } from "./stage.js";
export {
  type Mismatch,
  RuntimeTamperedError,
  readRuntimeJson,
  type VerifyOptions,
  verifyStagedRuntime,
} from "./verify.js";
