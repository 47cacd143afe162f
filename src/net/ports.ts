import net from "node:net";
import { portSchema } from "../contract/env.js";
import { UsageError } from "../errors/errors.js";

/** A TCP port that is free on 127.0.0.1 right now (the kernel picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** A port the user typed (`--port`, a config field): digits only, 1-65535; a usage error names `what`. */
export function parsePort(value: string, what: string): number {
  const parsed = portSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new UsageError(`${what} must be a TCP port (1-65535, digits only), not "${value}"`);
}
