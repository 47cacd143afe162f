/** A closed loop of requests (each worker sends the next when the last answered), counting every failure. */
export interface LoadResult {
  total: number;
  failed: number;
  failures: string[];
  /** requests that were answered, per path */
  byPath: Record<string, number>;
}

export function closedLoop(
  baseUrl: string,
  token: string,
  paths: string[],
  options: {
    workers?: number;
    check?: (path: string, status: number, body: string) => boolean;
    /** a steady loop: each worker starts a request at most this often (0: back to back) */
    intervalMs?: number;
  } = {},
): { stop(): Promise<LoadResult> } {
  let running = true;
  const result: LoadResult = { total: 0, failed: 0, failures: [], byPath: {} };
  const check = options.check ?? ((_path, status) => status >= 200 && status < 300);
  const worker = async (offset: number) => {
    let i = offset;
    while (running) {
      const startedAt = Date.now();
      const path = paths[i++ % paths.length] as string;
      result.total++;
      try {
        const response = await fetch(`${baseUrl}${path}`, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(30_000),
        });
        const body = await response.text();
        if (!check(path, response.status, body)) {
          result.failed++;
          if (result.failures.length < 20)
            result.failures.push(`${path}: HTTP ${response.status} ${body.slice(0, 200)}`);
        } else {
          result.byPath[path] = (result.byPath[path] ?? 0) + 1;
        }
      } catch (error) {
        result.failed++;
        if (result.failures.length < 20)
          result.failures.push(
            `${path}: ${String(error)} ${String((error as { cause?: unknown }).cause ?? "")}`,
          );
      }
      const wait = (options.intervalMs ?? 0) - (Date.now() - startedAt);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };
  const workers = Array.from({ length: options.workers ?? 2 }, (_, n) => worker(n));
  return {
    async stop() {
      running = false;
      await Promise.all(workers);
      return result;
    },
  };
}
