import { createHash } from "node:crypto";
import { createReadStream, readFileSync, statSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";

/**
 * Faults the mirror can inject into a response:
 * - wrong-sha: same length, one byte flipped
 * - wrong-size: a few bytes more than the real file (Content-Length agrees with what is sent)
 * - truncate: Content-Length of the whole file, then half of it and a clean close
 * - slow: half, a stall of `stallMs`, then the rest
 * - status: an HTTP error status (e.g. 500) instead of the file
 * - reset: half, then a TCP reset
 */
export type Fault =
  | { kind: "wrong-sha" }
  | { kind: "wrong-size" }
  | { kind: "truncate" }
  | { kind: "slow"; stallMs: number }
  | { kind: "status"; status: number }
  | { kind: "reset" };

type Content = { bytes: Buffer } | { file: string; size: number };

/**
 * A local HTTP file host and a minimal npm registry (abbreviated packument +
 * tarball) on 127.0.0.1, with per-path fault injection and request counts.
 * Faults apply to the first `times` requests of a path (default: all).
 */
export class Mirror {
  readonly requests = new Map<string, number>();
  private readonly content = new Map<string, Content>();
  private readonly faults = new Map<string, { fault: Fault; times: number }>();
  private readonly packuments = new Map<string, { name: string; versions: Record<string, unknown> }>();
  private readonly sockets = new Set<import("node:net").Socket>();

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
  ) {}

  static async start(): Promise<Mirror> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const mirror = new Mirror(server, `http://127.0.0.1:${port}/`);
    server.on("request", (req, res) => mirror.handle(req, res));
    server.on("connection", (socket) => {
      mirror.sockets.add(socket);
      socket.on("close", () => mirror.sockets.delete(socket));
    });
    return mirror;
  }

  /** Base URL of the npm registry imitation. */
  get registry(): string {
    return `${this.url}npm/`;
  }

  /** Serve `bytes` (or a file, streamed) at `urlPath`; returns the full URL. */
  addFile(urlPath: string, content: Buffer | { file: string }): string {
    const path = urlPath.replace(/^\//, "");
    this.content.set(
      path,
      Buffer.isBuffer(content)
        ? { bytes: content }
        : { file: content.file, size: statSync(content.file).size },
    );
    return `${this.url}${path}`;
  }

  /**
   * Publish a package: a gzipped tarball with the files under package/, and
   * its entry in the packument with the real sha512 integrity.
   */
  async addNpmPackage(
    name: string,
    version: string,
    files: Record<string, Buffer>,
    options: { advertisedIntegrity?: string } = {},
  ): Promise<{ integrity: string; tarballUrl: string; tarballPath: string }> {
    const pack = tar.pack();
    pack.entry({ name: "package/package.json", mode: 0o644 }, JSON.stringify({ name, version }));
    for (const [file, data] of Object.entries(files))
      pack.entry({ name: `package/${file}`, mode: 0o755 }, data);
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    const tgz = gzipSync(Buffer.concat(chunks));
    const integrity = `sha512-${createHash("sha512").update(tgz).digest("base64")}`;
    const tarballPath = `npm/${name}/-/${name}-${version}.tgz`;
    const tarballUrl = this.addFile(tarballPath, tgz);
    const packument = this.packuments.get(name) ?? { name, versions: {} };
    packument.versions[version] = {
      name,
      version,
      dist: {
        tarball: tarballUrl,
        integrity: options.advertisedIntegrity ?? integrity,
        shasum: createHash("sha1").update(tgz).digest("hex"),
      },
    };
    this.packuments.set(name, packument);
    return { integrity, tarballUrl, tarballPath };
  }

  private token: string | undefined;

  /** Make the registry imitation (packuments and tarballs) demand `Authorization: Bearer <token>`, as a private registry does. */
  requireToken(token: string | undefined): void {
    this.token = token;
  }

  fault(urlPath: string, fault: Fault, times = Number.POSITIVE_INFINITY): void {
    this.faults.set(urlPath.replace(/^\//, ""), { fault, times });
  }

  clearFaults(): void {
    this.faults.clear();
  }

  count(urlPath: string): number {
    return this.requests.get(urlPath.replace(/^\//, "")) ?? 0;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0]!.replace(/^\//, ""));
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    if (this.token && path.startsWith("npm/") && req.headers.authorization !== `Bearer ${this.token}`) {
      return void res
        .writeHead(401, { "content-type": "application/json" })
        .end('{"error":"authentication required"}');
    }
    if (path.startsWith("npm/") && !path.includes("/-/")) {
      const packument = this.packuments.get(path.slice("npm/".length));
      if (!packument)
        return void res.writeHead(404, { "content-type": "application/json" }).end('{"error":"Not found"}');
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(packument));
    }
    const content = this.content.get(path);
    if (!content) return void res.writeHead(404).end("not found");
    const rule = this.faults.get(path);
    let fault: Fault | undefined;
    if (rule && rule.times > 0) {
      rule.times--;
      fault = rule.fault;
    }
    if (fault?.kind === "status") return void res.writeHead(fault.status).end(`injected ${fault.status}`);
    if ("file" in content && !fault) {
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": content.size });
      createReadStream(content.file, { highWaterMark: 1 << 20 }).pipe(res);
      return;
    }
    const bytes = "bytes" in content ? content.bytes : readAll(content.file);
    this.serveBytes(res, bytes, fault);
  }

  private serveBytes(res: http.ServerResponse, original: Buffer, fault: Fault | undefined): void {
    let bytes = original;
    if (fault?.kind === "wrong-sha") {
      bytes = Buffer.from(original);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] ?? 0) ^ 0xff;
    }
    if (fault?.kind === "wrong-size") bytes = Buffer.concat([original, Buffer.from("extra")]);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length });
    const half = bytes.subarray(0, bytes.length >> 1);
    const rest = bytes.subarray(bytes.length >> 1);
    switch (fault?.kind) {
      case "truncate":
        res.write(half, () => res.socket?.end());
        return;
      case "reset":
        res.write(half, () => setTimeout(() => res.socket?.resetAndDestroy(), 20));
        return;
      case "slow":
        res.write(half, () => setTimeout(() => res.end(rest), fault.stallMs));
        return;
      default:
        res.end(bytes);
    }
  }
}

function readAll(file: string): Buffer {
  // only for faults injected into a file-backed entry: tests use small files for those
  return readFileSync(file);
}
