import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpOptions } from "../download/http.js";
import { systemErrorCode, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import type { Target } from "../sidecars/platform.js";
import { buildBundledManifest } from "./bundled.js";
import { parseManifest } from "./parse.js";
import type { Manifest } from "./schema.js";

/**
 * Load a manifest from a file path, a file: URL or an http(s) URL. JSON with
 * comments and trailing commas is accepted. Every error names the source and,
 * for an invalid manifest, each offending field by its path. Nothing is cached:
 * a failed fetch is retried by the next call.
 */
export async function loadManifest(source: string, options: HttpOptions = {}): Promise<Manifest> {
  let text: string;
  let name = source;
  if (/^https?:\/\//i.test(source)) {
    // The HTTP client is loaded only for a manifest given as a URL.
    const { fetchText } = await import("../download/http.js");
    text = await fetchText(source, { ...options, headers: { accept: "application/json" } });
  } else {
    const file = source.startsWith("file:") ? fileURLToPath(source) : path.resolve(source);
    name = file;
    try {
      text = await readFile(file, "utf8");
    } catch (error) {
      const code = systemErrorCode(error);
      throw new UsageError(
        `cannot read the manifest ${file}: ${code === "ENOENT" ? "no such file" : (error as Error).message}`,
        "give --manifest a path or URL to a manifest (see docs/manifest.md)",
      );
    }
  }
  return parseManifest(text, name);
}

/** The manifest a command works from: the one given (path or URL), or the one this installation pins for `target`. */
export async function manifestFrom(
  source: string | undefined,
  target: Target,
  log: Logger,
): Promise<Manifest> {
  if (source) return loadManifest(source, { log });
  return buildBundledManifest([target], { log });
}
