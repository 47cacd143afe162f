export {
  createDispatcher,
  type DownloadResult,
  downloadToStore,
  fetchJson,
  fetchText,
  type HttpOptions,
  type UrlDownload,
} from "./http.js";
export { fetchNpmBinary, type NpmBinaryDownload, type NpmDownloadResult, npmIndexKey } from "./npm.js";
export { createProgress, type Progress, type ProgressMode } from "./progress.js";
export { isTransient, type RetryOptions, TransientError, withRetries } from "./retry.js";
