import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { execa } from "execa";
import tar from "tar-stream";
import { Agent, interceptors, request } from "undici";
import { withLock } from "../../src/locks/lock.js";
import { SHARED_TEST_DIR } from "./docker.js";

/** The registry npm itself is configured with (never written into the code). */
async function npmRegistry(): Promise<string> {
  const fromEnv = process.env.npm_config_registry;
  if (fromEnv) return fromEnv.replace(/\/+$/, "");
  const { stdout } = await execa("npm", ["config", "get", "registry"], { env: { NO_UPDATE_NOTIFIER: "1" } });
  const registry = String(stdout).trim();
  if (!/^https?:\/\//.test(registry)) throw new Error(`npm config get registry printed "${registry}"`);
  return registry.replace(/\/+$/, "");
}

const dispatcher = new Agent().compose(interceptors.redirect({ maxRedirections: 5 }));

async function getBuffer(url: string): Promise<Buffer> {
  const response = await request(url, { dispatcher });
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new Error(`GET ${url.replace(/\/\/[^/]+/, "//<registry>")}: HTTP ${response.statusCode}`);
  }
  return Buffer.from(await response.body.arrayBuffer());
}

/**
 * One binary out of an npm package (test helper only: the product's npm source
 * lives elsewhere). Downloaded once per machine into the shared test cache,
 * checked against the registry's sha512 integrity, extracted under a lock.
 */
export async function npmBinary(pkg: string, version: string, binPath: string): Promise<string> {
  const dir = path.join(SHARED_TEST_DIR, "npm", `${pkg}-${version}`);
  const file = path.join(dir, binPath);
  if (existsSync(file)) return file;
  await withLock(path.join(SHARED_TEST_DIR, "locks", `npm-${pkg}-${version}`), async () => {
    if (existsSync(file)) return;
    const registry = await npmRegistry();
    const packument = JSON.parse((await getBuffer(`${registry}/${pkg}`)).toString("utf8")) as {
      versions: Record<string, { dist: { tarball: string; integrity: string } }>;
    };
    const dist = packument.versions[version]?.dist;
    if (!dist) throw new Error(`${pkg}@${version} is not in the registry`);
    const tarball = await getBuffer(dist.tarball);
    const [algorithm, expected] = dist.integrity.split("-", 2) as [string, string];
    const actual = createHash(algorithm).update(tarball).digest("base64");
    if (actual !== expected)
      throw new Error(`${pkg}@${version}: integrity ${algorithm}-${actual}, registry says ${dist.integrity}`);
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const extract = tar.extract();
    extract.on("entry", (header, stream, next) => {
      const name = header.name.replace(/^package\//, "");
      if (header.type !== "file" || name.includes("..")) {
        stream.resume();
        stream.on("end", next);
        return;
      }
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: unknown) => {
        chunks.push(chunk as Buffer);
      });
      stream.on("end", () => {
        const out = path.join(tmp, name);
        mkdirSync(path.dirname(out), { recursive: true });
        writeFile(out, Buffer.concat(chunks), { mode: header.mode ?? 0o644 }).then(() => next(), next);
      });
    });
    await pipeline(Readable.from([tarball]), createGunzip(), extract);
    chmodSync(path.join(tmp, binPath), 0o755);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  });
  return file;
}

/** The previous opencode release, for upgrade tests (the bundled one is 1.18.34). */
export const PREVIOUS_OPENCODE = "1.18.33";
export function previousOpencode(): Promise<string> {
  return npmBinary(`opencode-${process.platform}-${process.arch}`, PREVIOUS_OPENCODE, "bin/opencode");
}
