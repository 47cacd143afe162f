import { createHash } from "node:crypto";
import { open, rm } from "node:fs/promises";
import { Agent, type Dispatcher, EnvHttpProxyAgent, interceptors, request } from "undici";
import { OpenworkError } from "../errors/errors.js";
import { type Logger, silentLogger } from "../logging/logger.js";
import { type BlobStore, checkExpected, type StoredBlob } from "../store/store.js";
import { createProgress, type ProgressMode } from "./progress.js";
import { type RetryOptions, TransientError, withRetries } from "./retry.js";

export interface HttpOptions {
  /** time to establish a connection (default 15 s) */
  connectTimeoutMs?: number | undefined;
  /** longest silence while waiting for headers or body bytes (default 30 s) */
  readTimeoutMs?: number | undefined;
  retry?: RetryOptions | undefined;
  progress?: ProgressMode | undefined;
  log?: Logger | undefined;
}

export interface DownloadResult extends StoredBlob {
  /** bytes received over the network (0 when the blob was already in the store) */
  bytesDownloaded: number;
  attempts: number;
}

/**
 * An undici dispatcher with our timeouts (redirects are followed per request).
 * Where HTTP(S)_PROXY is set, requests go through it, honouring NO_PROXY.
 */
export function createDispatcher(
  options: HttpOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Dispatcher {
  const timeouts = {
    connectTimeout: options.connectTimeoutMs ?? 15_000,
    headersTimeout: options.readTimeoutMs ?? 30_000,
    bodyTimeout: options.readTimeoutMs ?? 30_000,
  };
  const proxied = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].some((name) => env[name]);
  return proxied ? new EnvHttpProxyAgent(timeouts) : new Agent(timeouts);
}

export interface OpenedBody {
  body: Dispatcher.ResponseData["body"];
  contentLength: number | undefined;
}

/**
 * GET `url` and return its body stream once the status is 2xx. 5xx, 408 and
 * 429 are transient (retried by the caller); any other status is final.
 */
export async function openBody(
  url: string,
  dispatcher: Dispatcher,
  headers: Record<string, string> = {},
  options: HttpOptions = {},
): Promise<OpenedBody> {
  const composed = dispatcher.compose(interceptors.redirect({ maxRedirections: 5 }));
  // A watchdog until the headers arrive: undici's timeouts do not cover every
  // stage (e.g. a proxy that accepts the connection and never answers CONNECT).
  const deadlineMs = (options.connectTimeoutMs ?? 15_000) + (options.readTimeoutMs ?? 30_000);
  const controller = new AbortController();
  let watchdog: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_resolve, reject) => {
    watchdog = setTimeout(() => {
      controller.abort();
      reject(new TransientError(`GET ${url}: no response within ${deadlineMs} ms`));
    }, deadlineMs);
  });
  const pending = request(url, { method: "GET", dispatcher: composed, headers, signal: controller.signal });
  // when the watchdog wins, the request may still settle later: its outcome is moot
  pending.then(
    (late) => (controller.signal.aborted ? late.body.destroy() : undefined),
    () => {},
  );
  let response: Dispatcher.ResponseData;
  try {
    response = await Promise.race([pending, expired]);
  } finally {
    clearTimeout(watchdog);
  }
  const { statusCode } = response;
  if (statusCode >= 200 && statusCode < 300) {
    const length = Number(response.headers["content-length"]);
    return { body: response.body, contentLength: Number.isFinite(length) ? length : undefined };
  }
  await response.body.dump().catch(() => {});
  if (statusCode >= 500 || statusCode === 408 || statusCode === 429) {
    throw new TransientError(`GET ${url} answered HTTP ${statusCode}`);
  }
  throw new OpenworkError(`GET ${url} answered HTTP ${statusCode}`, {
    code: statusCode === 404 ? "not_found" : "http_error",
    hint:
      statusCode === 404
        ? "the manifest names a file the source does not have: check the URL or version"
        : statusCode === 401 || statusCode === 403
          ? "the source refuses access: check credentials or the URL"
          : undefined,
  });
}

/** A small text document (a manifest, a packument), with timeouts and retries. */
export async function fetchText(
  url: string,
  options: HttpOptions & { headers?: Record<string, string>; maxBytes?: number } = {},
): Promise<string> {
  const dispatcher = createDispatcher(options);
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  try {
    return await withRetries(
      `GET ${url}`,
      async () => {
        const { body } = await openBody(url, dispatcher, options.headers, options);
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of body) {
          size += (chunk as Buffer).length;
          if (size > maxBytes) {
            body.destroy();
            throw new OpenworkError(`GET ${url}: the document is larger than ${maxBytes} bytes`, {
              code: "too_large",
            });
          }
          chunks.push(chunk as Buffer);
        }
        return Buffer.concat(chunks).toString("utf8");
      },
      { ...options.retry, log: options.log },
    );
  } finally {
    await dispatcher.destroy().catch(() => {});
  }
}

/** A small JSON document, with timeouts and retries. */
export async function fetchJson(
  url: string,
  options: HttpOptions & { headers?: Record<string, string>; maxBytes?: number } = {},
): Promise<unknown> {
  const text = await fetchText(url, {
    ...options,
    headers: { accept: "application/json", ...options.headers },
  });
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new OpenworkError(`GET ${url} did not answer JSON: ${(error as Error).message}`, {
      code: "bad_json",
    });
  }
}

export interface UrlDownload extends HttpOptions {
  url: string;
  /** what this is, for messages: e.g. "opencode 1.18.34 for linux-arm64" */
  what: string;
  sha256: string;
  size: number;
  store: BlobStore;
}

/**
 * Download `url` into the store as the blob `sha256`. One process downloads
 * while the others wait on the blob's lock and then find the blob. Bytes are
 * streamed to a temporary file in the store while hashed; size and sha256 are
 * checked, the data fsynced, then renamed. Nothing is left at the final path
 * or in tmp/ on any failure.
 */
export async function downloadToStore(options: UrlDownload): Promise<DownloadResult> {
  const log = options.log ?? silentLogger();
  const { store, sha256, size } = options;
  const present = await store.get(sha256, size);
  if (present) return { ...present, bytesDownloaded: 0, attempts: 0 };
  return store.withBlobLock(
    sha256,
    async () => {
      const again = await store.get(sha256, size);
      if (again) {
        log.info({ blob: again.path }, `${options.what}: another process fetched it meanwhile`);
        return { ...again, bytesDownloaded: 0, attempts: 0 };
      }
      const dispatcher = createDispatcher(options);
      let attempts = 0;
      let received = 0;
      try {
        const blob = await withRetries(
          `download of ${options.what} from ${options.url}`,
          async (attempt) => {
            attempts = attempt;
            const temp = await store.tempPath(sha256);
            try {
              const result = await streamToFile(options, dispatcher, temp, log);
              received += result.size;
              checkExpected(options.what, options.url, { sha256, size }, result);
              return await store.commit(temp, sha256);
            } catch (error) {
              await rm(temp, { force: true });
              throw error;
            }
          },
          { ...options.retry, log },
        );
        log.info({ blob: blob.path, bytes: blob.size, attempts }, `${options.what}: downloaded and verified`);
        return { ...blob, bytesDownloaded: received, attempts };
      } finally {
        await dispatcher.destroy().catch(() => {});
      }
    },
    () => log.info(`${options.what}: another process is downloading it; waiting for its lock`),
  );
}

async function streamToFile(
  options: UrlDownload,
  dispatcher: Dispatcher,
  temp: string,
  log: Logger,
): Promise<{ sha256: string; size: number }> {
  const { body, contentLength } = await openBody(options.url, dispatcher, {}, options);
  if (contentLength !== undefined && contentLength !== options.size) {
    body.destroy();
    throw new OpenworkError(
      `${options.what}: ${options.url} is ${contentLength} bytes, the manifest says ${options.size}`,
      { code: "size_mismatch", hint: "the source serves a different file than the manifest pins" },
    );
  }
  const handle = await open(temp, "wx", 0o600);
  const hash = createHash("sha256");
  const progress = createProgress({ label: options.what, total: options.size, log, mode: options.progress });
  let size = 0;
  try {
    for await (const chunk of body) {
      const buffer = chunk as Buffer;
      size += buffer.length;
      if (size > options.size) {
        body.destroy();
        throw new OpenworkError(
          `${options.what}: ${options.url} sent more than the ${options.size} bytes the manifest says`,
          { code: "size_mismatch", hint: "the source serves a different file than the manifest pins" },
        );
      }
      hash.update(buffer);
      await handle.write(buffer);
      progress.advance(buffer.length);
    }
    await handle.sync();
  } finally {
    progress.stop();
    await handle.close();
  }
  return { sha256: hash.digest("hex"), size };
}
