import { createHash } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar from "tar-stream";
import type { Dispatcher } from "undici";
import { OpenworkError, systemErrorCode } from "../errors/errors.js";
import { type Logger, silentLogger } from "../logging/logger.js";
import { fetchPackument, npmAuthHeaders, packumentVersion } from "../npm/registry.js";
import { type BlobStore, checkExpected } from "../store/store.js";
import { createDispatcher, type DownloadResult, type HttpOptions, openBody } from "./http.js";
import { createProgress } from "./progress.js";
import { withRetries } from "./retry.js";

export interface NpmBinaryDownload extends HttpOptions {
  package: string;
  version: string;
  /** the tarball's SRI integrity the manifest pins; when absent, the registry's own is used */
  integrity?: string | null | undefined;
  /** the binary inside the package, e.g. bin/opencode */
  path: string;
  what: string;
  /** the binary's own sha256 and size when the manifest pins them */
  sha256?: string | null | undefined;
  size?: number | null | undefined;
  store: BlobStore;
  /** registry base URL (default: npm's configuration) */
  registry?: string | undefined;
}

export interface NpmDownloadResult extends DownloadResult {
  /** the tarball integrity that was verified (or that verified the blob when it was first fetched) */
  integrity: string | undefined;
}

/**
 * Fetch one binary out of an npm platform package into the store. The tarball
 * is streamed once: its bytes are hashed (sha512) for the registry's
 * `dist.integrity` while they are gunzipped and read by a streaming tar reader
 * that writes only the wanted entry to a temporary file (hashed with sha256).
 * The blob is committed only when the integrity, and the manifest's sha256
 * and size where given, all match.
 */
export async function fetchNpmBinary(options: NpmBinaryDownload): Promise<NpmDownloadResult> {
  const log = options.log ?? silentLogger();
  const { store } = options;
  const key = npmIndexKey(options);
  const cachedBlob = async (): Promise<NpmDownloadResult | undefined> => {
    if (options.sha256) {
      const blob = await store.get(options.sha256, options.size);
      return blob && { ...blob, bytesDownloaded: 0, attempts: 0, integrity: options.integrity ?? undefined };
    }
    const indexed = await store.indexLookup(key);
    if (!indexed) return undefined;
    const { meta, ...blob } = indexed;
    return { ...blob, bytesDownloaded: 0, attempts: 0, integrity: options.integrity ?? meta.integrity };
  };
  const present = await cachedBlob();
  if (present) return present;
  return store.withBlobLock(
    key,
    async () => {
      const again = await cachedBlob();
      if (again) {
        log.info({ blob: again.path }, `${options.what}: another process fetched it meanwhile`);
        return again;
      }
      const packument = await fetchPackument(options.package, { ...options, log });
      const dist = packumentVersion(packument, options.version).dist;
      if (options.integrity && dist.integrity && dist.integrity !== options.integrity) {
        throw new OpenworkError(
          `${options.what}: the registry's integrity for ${options.package}@${options.version} is ${dist.integrity}, the manifest pins ${options.integrity}`,
          {
            code: "integrity_mismatch",
            hint: "the registry serves a different tarball than the manifest was made from",
          },
        );
      }
      const integrity = options.integrity ?? dist.integrity;
      if (!integrity) {
        throw new OpenworkError(
          `${options.what}: neither the manifest nor the registry gives an integrity for ${options.package}@${options.version}`,
          {
            code: "integrity_missing",
            hint: "refusing to run an unverifiable download",
          },
        );
      }
      const expectedDigest = sha512Of(integrity, options.what);
      const dispatcher = createDispatcher(options);
      let attempts = 0;
      let received = 0;
      try {
        const blob = await withRetries(
          `download of ${options.what} (${options.package}@${options.version})`,
          async (attempt) => {
            attempts = attempt;
            const temp = await store.tempPath(`${options.package}-${options.version}`);
            try {
              const result = await extractFromTarball(options, dispatcher, dist.tarball, temp, log);
              received += result.tarballBytes;
              if (result.tarballSha512 !== expectedDigest) {
                throw new OpenworkError(
                  `${options.what}: the tarball ${dist.tarball} fails its integrity check (sha512-${result.tarballSha512}, expected ${integrity})`,
                  {
                    code: "integrity_mismatch",
                    hint: "the registry or a proxy served corrupt bytes; nothing was stored",
                  },
                );
              }
              checkExpected(
                options.what,
                `${options.package}@${options.version}/${options.path}`,
                options,
                result,
              );
              return await store.commit(temp, result.sha256);
            } catch (error) {
              await rm(temp, { force: true });
              throw error;
            }
          },
          { ...options.retry, log },
        );
        await store.indexRecord(key, blob, { integrity });
        log.info(
          { blob: blob.path, bytes: blob.size, attempts },
          `${options.what}: fetched from npm, integrity and hash verified`,
        );
        return { ...blob, bytesDownloaded: received, attempts, integrity };
      } finally {
        await dispatcher.destroy().catch(() => {});
      }
    },
    () => log.info(`${options.what}: another process is fetching it; waiting for its lock`),
  );
}

/** The store index key under which a fetched npm binary is found again without the network. */
export function npmIndexKey(
  options: Pick<NpmBinaryDownload, "package" | "version" | "path" | "integrity">,
): string {
  const integrity = options.integrity
    ? createHash("sha256").update(options.integrity).digest("hex").slice(0, 16)
    : "any";
  return `npm-${options.package}@${options.version}-${options.path}-${integrity}`;
}

/** The base64 sha512 digest out of an SRI string (npm uses sha512; older sha1-only entries are refused). */
export function sha512Of(integrity: string, what: string): string {
  const sha512 = integrity
    .split(/\s+/)
    .find((part) => part.startsWith("sha512-"))
    ?.slice("sha512-".length);
  if (!sha512) {
    throw new OpenworkError(`${what}: integrity "${integrity}" has no sha512 digest`, {
      code: "integrity_unsupported",
      hint: "only sha512 SRI integrity is accepted",
    });
  }
  return sha512;
}

interface Extracted {
  sha256: string;
  size: number;
  tarballSha512: string;
  tarballBytes: number;
}

async function extractFromTarball(
  options: NpmBinaryDownload,
  dispatcher: Dispatcher,
  tarball: string,
  temp: string,
  log: Logger,
): Promise<Extracted> {
  const { body, contentLength } = await openBody(tarball, dispatcher, npmAuthHeaders(tarball), options);
  const tarHash = createHash("sha512");
  let tarballBytes = 0;
  const progress = createProgress({ label: options.what, total: contentLength, log, mode: options.progress });
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      tarHash.update(chunk);
      tarballBytes += chunk.length;
      progress.advance(chunk.length);
      callback(null, chunk);
    },
  });
  const extract = tar.extract();
  const wanted = options.path.replace(/^\.?\//, "");
  const abort = new AbortController();
  const feeding = pipeline(body, tap, createGunzip(), extract, { signal: abort.signal });
  let found: { sha256: string; size: number } | undefined;
  const consuming = (async () => {
    for await (const entry of extract) {
      // npm tarballs put everything under one top directory, usually "package/"
      const name = entry.header.name.split("/").slice(1).join("/");
      if (
        name !== wanted ||
        found ||
        (entry.header.type !== "file" && entry.header.type !== "contiguous-file")
      ) {
        entry.resume();
        await new Promise<void>((resolve, reject) => {
          entry.on("end", resolve);
          // a destroyed entry (the download failed) ends with close, not end
          entry.on("close", resolve);
          entry.on("error", reject);
        });
        continue;
      }
      if (options.size != null && entry.header.size !== undefined && entry.header.size !== options.size) {
        throw new OpenworkError(
          `${options.what}: ${options.package}@${options.version}/${wanted} is ${entry.header.size} bytes, the manifest says ${options.size}`,
          { code: "size_mismatch", hint: "the package holds a different binary than the manifest pins" },
        );
      }
      found = await writeEntry(entry as unknown as AsyncIterable<Buffer>, temp);
    }
  })();
  const [feedError, consumeError] = await Promise.all([
    feeding.then(
      () => undefined,
      (error: unknown) => error ?? new Error("the tarball stream failed"),
    ),
    consuming.then(
      () => undefined,
      (error: unknown) => {
        abort.abort();
        return error ?? new Error("reading the tarball failed");
      },
    ),
  ]);
  progress.stop();
  if (feedError || consumeError) {
    // Our own verdicts (size) beat everything; a network or gzip failure beats
    // the "stream destroyed" it causes in the reader; a local failure of the
    // reader (disk full) beats the AbortError it causes in the pipeline.
    const feedAborted =
      systemErrorCode(feedError) === "ABORT_ERR" || (feedError as Error | undefined)?.name === "AbortError";
    const error =
      consumeError instanceof OpenworkError
        ? consumeError
        : feedError && !feedAborted
          ? feedError
          : (consumeError ?? feedError);
    throw corruptTarball(error, options, tarball);
  }
  if (!found) {
    throw new OpenworkError(`${options.what}: ${options.package}@${options.version} has no file ${wanted}`, {
      code: "not_found",
      hint: "the manifest names a path the package does not contain",
    });
  }
  return { ...found, tarballSha512: tarHash.digest("base64"), tarballBytes };
}

/**
 * gzip or tar decoding errors mean bytes that cannot be the published tarball:
 * report them as the integrity failure they are (never retried). A truncated
 * stream (Z_BUF_ERROR) stays a transient network failure.
 */
function corruptTarball(error: unknown, options: NpmBinaryDownload, tarball: string): unknown {
  const code = systemErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (code === "Z_DATA_ERROR" || (!code && /tar header|invalid tar|unexpected end of data/i.test(message))) {
    return new OpenworkError(
      `${options.what}: the tarball ${tarball} is corrupt (${message}), so it cannot match its integrity ${options.integrity ?? ""}`.trim(),
      {
        code: "integrity_mismatch",
        hint: "the registry or a proxy served corrupt bytes; nothing was stored",
        cause: error,
      },
    );
  }
  return error;
}

async function writeEntry(
  entry: AsyncIterable<Buffer>,
  temp: string,
): Promise<{ sha256: string; size: number }> {
  const handle: FileHandle = await open(temp, "wx", 0o600);
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of entry) {
      hash.update(chunk);
      size += chunk.length;
      await handle.write(chunk);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest("hex"), size };
}
