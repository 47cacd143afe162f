import { OpenworkError, systemErrorCode } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { done, notYet, pollUntil, WaitTimeoutError } from "../retry/poll.js";

export interface RetryOptions {
  /** attempts in all, the first included */
  attempts?: number | undefined;
  /** first back-off delay; doubles per attempt, with equal jitter (src/retry) */
  baseDelayMs?: number | undefined;
  maxDelayMs?: number | undefined;
}

/** Failures worth another attempt: the next one may well succeed. */
export class TransientError extends OpenworkError {
  constructor(message: string, cause?: unknown) {
    super(message, { code: "transient_download_failure", cause });
    this.name = "TransientError";
  }
}

const TRANSIENT_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "ERR_STREAM_PREMATURE_CLOSE",
  "Z_BUF_ERROR",
]);

/**
 * Whether an error is a transient network failure (reset, timeout, truncated
 * body, 5xx). Integrity failures and 4xx answers are never transient: the
 * same request would give the same wrong bytes.
 */
export function isTransient(error: unknown): boolean {
  if (error instanceof TransientError) return true;
  if (error instanceof OpenworkError) return false;
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = systemErrorCode(e);
    if (code && TRANSIENT_CODES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Run `fn` until it succeeds, retrying only transient failures, with back-off and jitter. */
export async function withRetries<T>(
  what: string,
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions & { log?: Logger | undefined } = {},
): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 4);
  let lastError: unknown;
  try {
    return await pollUntil(
      async ({ attempt }) => {
        try {
          return done(await fn(attempt));
        } catch (error) {
          if (!isTransient(error)) throw error;
          lastError = error;
          return notYet(describeNetworkError(error));
        }
      },
      {
        what,
        pace: { backoff: { baseMs: options.baseDelayMs ?? 500, maxMs: options.maxDelayMs ?? 8000 } },
        maxAttempts: attempts,
        onNotYet: ({ reason, attempt, nextDelayMs }) =>
          options.log?.warn(
            { attempt, attempts, delayMs: nextDelayMs },
            `${what}: ${reason}; retrying in ${nextDelayMs} ms`,
          ),
      },
    );
  } catch (error) {
    if (!(error instanceof WaitTimeoutError)) throw error;
    throw new OpenworkError(`${what} failed after ${attempts} attempts: ${error.lastReason}`, {
      code: "download_failed",
      hint: "check the network and the source; running the command again retries",
      cause: lastError,
    });
  }
}

export function describeNetworkError(error: unknown): string {
  if (error instanceof OpenworkError) return error.message;
  const code = systemErrorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  switch (code) {
    case "UND_ERR_CONNECT_TIMEOUT":
      return "connect timeout";
    case "UND_ERR_HEADERS_TIMEOUT":
      return "no response headers before the read timeout";
    case "UND_ERR_BODY_TIMEOUT":
      return "the body stalled longer than the read timeout";
    case "UND_ERR_SOCKET":
    case "ECONNRESET":
      return `connection reset or closed early (${message})`;
    default:
      return code && !message.includes(code) ? `${message} (${code})` : message;
  }
}
