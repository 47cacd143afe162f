import http from "node:http";

export interface GetResult {
  status: number;
  text: string;
}

/**
 * A bounded GET over node:http. Not fetch: fetch refuses the WHATWG "bad
 * ports" (6000, 6665-6669, 10080, …), and a component on a kernel-chosen
 * port may land on one of them.
 */
export function httpGet(
  url: string | URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= 64 * 1024) chunks.push(chunk);
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("close", () => {
        clearTimeout(timer);
        if (!res.complete) reject(new Error("the connection closed before the answer was complete"));
      });
      res.on("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${timeoutMs} ms`);
      error.name = "TimeoutError";
      req.destroy(error);
    }, timeoutMs);
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/** The GET ran out of time (as opposed to a refused connection or a broken answer). */
export function isTimeoutError(error: unknown): boolean {
  return (error as { name?: string }).name === "TimeoutError";
}

/** A probe failure in one line: a timeout, or the connection error's code. */
export function describeGetError(error: unknown, timeoutMs: number): string {
  if (isTimeoutError(error)) return `no answer within ${timeoutMs} ms`;
  const code = (error as { code?: string }).code;
  return `connection failed: ${code ?? (error as Error).message ?? String(error)}`;
}
