export { type GcOptions, type GcResult, gcRuntimes } from "./gc.js";
export { type RuntimeJson, runtimeIdOf } from "./runtime-json.js";
export { type StagedSidecar, type StageOptions, type StageResult, stageRuntime } from "./stage.js";
export { type Mismatch, readRuntimeJson, type VerifyOptions, verifyStagedRuntime } from "./verify.js";
