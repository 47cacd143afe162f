import { randomUUID } from "node:crypto";
import type http from "node:http";
import type { z } from "zod";
import type { ApiErrorCode } from "../contract/api.js";

export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's X-Request-Id when it is sane, else a fresh one. */
export function requestIdOf(req: http.IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

export function sendOk(res: http.ServerResponse, requestId: string, status: number, data: unknown): void {
  send(res, requestId, status, { ok: true, data, meta: { requestId } });
}

/** What an error may carry besides its code and message (the contract's error fields). */
export interface ErrorExtra {
  hint?: string | undefined;
  operationId?: string | undefined;
  data?: unknown;
}

export function sendError(
  res: http.ServerResponse,
  requestId: string,
  status: number,
  code: ApiErrorCode,
  message: string,
  extra: ErrorExtra = {},
): void {
  send(res, requestId, status, { ok: false, error: { code, message, requestId, ...extra } });
}

function send(res: http.ServerResponse, requestId: string, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "x-request-id": requestId,
    "cache-control": "no-store",
  });
  res.end(text);
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly extra: ErrorExtra = {},
  ) {
    super(message);
  }
}

/**
 * Read a JSON body with a size limit and a deadline: our own bodies are small,
 * so one that trickles in is refused (408) long before the server's request timeout.
 */
export async function readJsonBody(
  req: http.IncomingMessage,
  limit = 64 * 1024,
  deadlineMs = 10_000,
): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  const reading = (async () => {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) throw new HttpError(413, "body_too_large", `the request body exceeds ${limit} bytes`);
      chunks.push(chunk as Buffer);
    }
  })();
  reading.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HttpError(408, "request_timeout", `the request body did not arrive within ${deadlineMs} ms`),
        ),
      deadlineMs,
    );
  });
  try {
    await Promise.race([reading, late]);
  } catch (error) {
    if (error instanceof HttpError) throw error;
    throw new HttpError(
      400,
      "invalid_request",
      `the request body could not be read: ${(error as Error).message}`,
    );
  } finally {
    clearTimeout(timer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "invalid_json", "the request body is not valid JSON");
  }
}

export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join(".")}: ` : "";
  throw new HttpError(400, "invalid_request", `${where}${issue?.message ?? "invalid body"}`);
}
