import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The installed openwork package's root (where package.json is), from dist/ or src/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string };
      if (pkg.name === "openwork") return dir;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("cannot find the openwork package root");
    dir = parent;
  }
}

let cachedVersion: string | undefined;

export function packageVersion(): string {
  if (!cachedVersion) {
    const pkg = JSON.parse(readFileSync(path.join(packageRoot(), "package.json"), "utf8")) as {
      version: string;
    };
    cachedVersion = pkg.version;
  }
  return cachedVersion;
}
