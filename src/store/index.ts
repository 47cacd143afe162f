export { linkOrCopy, type PlaceMode } from "./link.js";
export { type HashResult, StatCache, type StatCacheEntry } from "./stat-cache.js";
export {
  BlobStore,
  checkExpected,
  type Expected,
  type IngestResult,
  openStore,
  type StoredBlob,
  type StoreOptions,
} from "./store.js";
