import { isIP } from "node:net";
import path from "node:path";
import { z } from "zod";
import { checkEnvName } from "../credentials/names.js";
import { parseDockerHost } from "../docker/client.js";
import { errorMessage } from "../errors/errors.js";
import { parseRegistry } from "../image/registry-ref.js";
import { isWindowsDrivePath, parseMountSpec } from "../mounts/spec.js";
import { parsePort } from "../net/ports.js";
import { parseCpus, parseMemory, parsePids } from "../sandbox/limits.js";
import type { SandboxChoice } from "../sandbox/select.js";
import { ENGINE_WORKSPACE_PREFIX, enginePath } from "../shipping/target.js";
import { SOURCE_CHOICES, type SourceChoice } from "../sources/choices.js";
import { DURATION_FORMS, parseDuration } from "./durations.js";

/*
 * The value schemas of workers.json, one per key. Each reports in plain
 * English what it expected and what it found; the walker in config.ts maps
 * each issue's path to the file position of the offending value.
 */

export const SANDBOX_CHOICES: readonly SandboxChoice[] = ["none", "auto", "docker", "container", "swarm"];

/** The worker name rule: it names log files, state and service units. */
export const WORKER_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/i;

/** A JSON value as a message shows it: strings quoted (and shortened), containers by kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return JSON.stringify(shown);
  }
  return String(value);
}

function expecting(what: string) {
  return { error: (issue: { input?: unknown }) => `expected ${what}, found ${describeValue(issue.input)}` };
}

type Conversion<T> = { value: T } | { expected: string; why?: string };

/** A value checked by a function: on failure, "expected <expected>, found <value>[: <why>]". */
function leaf<T>(convert: (input: unknown) => Conversion<T>): z.ZodType<T> {
  return z.unknown().transform((input, ctx) => {
    const result = convert(input);
    if ("value" in result) return result.value;
    const why = result.why ? `: ${result.why}` : "";
    ctx.addIssue({
      code: "custom",
      message: `expected ${result.expected}, found ${describeValue(input)}${why}`,
    });
    return z.NEVER;
  }) as unknown as z.ZodType<T>;
}

/** "--cpus must be X, not "v"" → "X": the flag parsers' own rules, worded for a file. */
function expectationOf(error: unknown): string {
  const message = errorMessage(error);
  return /\bmust be (.+), not ".*"$/s.exec(message)?.[1] ?? message;
}

/** A value one of the CLI's flag parsers checks; JSON numbers are read as the flag's text would be. */
function flagValue<T>(parse: (text: string) => T, numbers: boolean): z.ZodType<T> {
  return leaf<T>((input) => {
    if (typeof input === "string" || (numbers && typeof input === "number" && Number.isFinite(input))) {
      try {
        return { value: parse(String(input)) };
      } catch (error) {
        return { expected: expectationOf(error) };
      }
    }
    return {
      expected: `${expectationOf(rejection(parse))}${numbers ? " (a number or a string)" : " (a string)"}`,
    };
  });
}

export const booleanValue = z.boolean(expecting("true or false"));

export function durationValue(minimum: "zero" | "positive"): z.ZodType<number> {
  const bound = minimum === "zero" ? "of zero or more" : "above zero";
  return leaf<number>((input) => {
    const ms = parseDuration(input);
    if (ms === undefined || (minimum === "positive" && ms === 0))
      return { expected: `a duration ${bound}: ${DURATION_FORMS}` };
    return { value: ms };
  });
}

export const nameValue = leaf<string>((input) =>
  typeof input === "string" && WORKER_NAME.test(input)
    ? { value: input }
    : {
        expected: "a name of 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
      },
);

export const sandboxValue = z.enum(
  SANDBOX_CHOICES as [SandboxChoice, ...SandboxChoice[]],
  expecting(`one of ${SANDBOX_CHOICES.join(", ")}`),
);
export const sourceValue = z.enum(
  SOURCE_CHOICES as [SourceChoice, ...SourceChoice[]],
  expecting(`one of ${SOURCE_CHOICES.join(", ")}`),
);

export const imageValue = leaf<string>((input) =>
  typeof input === "string" && /^\S+$/.test(input)
    ? { value: input }
    : { expected: "an image reference (a non-empty string without spaces)" },
);

/** dockerHost: an endpoint URL or a docker context name, checked as `--docker-host` is (a context is read at start). */
export const dockerHostValue = leaf<string>((input) => {
  const expected = "a Docker endpoint (unix://, tcp://, ssh://…) or a docker context name";
  if (typeof input !== "string" || input.trim() === "") return { expected };
  if (!input.includes("://"))
    return /^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(input) ? { value: input } : { expected };
  try {
    parseDockerHost(input, "dockerHost");
    return { value: input };
  } catch (error) {
    return { expected, why: errorMessage(error).replace(/^dockerHost \S+:? ?/, "") };
  }
});

/** registry: HOST[:PORT], as `--registry`. */
export const registryValue = leaf<string>((input) => {
  if (typeof input !== "string") return { expected: "a registry HOST[:PORT]" };
  try {
    return { value: parseRegistry(input) };
  } catch {
    return { expected: "a registry HOST[:PORT] (no scheme, no path)" };
  }
});

/** A Swarm placement constraint, as `--constraint` takes it (Swarm checks the expression itself). */
export const constraintValue = leaf<string>((input) =>
  typeof input === "string" && /^[A-Za-z0-9_.-]+\s*(==|!=)\s*\S+$/.test(input.trim())
    ? { value: input.trim() }
    : { expected: "a Swarm constraint like node.hostname==node2 or node.labels.zone!=edge" },
);

/** publishAddress: an IP address of the engine's host. */
export const addressValue = leaf<string>((input) =>
  typeof input === "string" && isIP(input) !== 0
    ? { value: input }
    : { expected: "an IP address of the engine's host (e.g. 10.0.0.5)" },
);

/** A worker's workspace: a local path (resolved like the others), or engine:/path kept as written. */
export function workspaceValue(context: PathContext): z.ZodType<string> {
  return leaf<string>((input) => {
    if (typeof input === "string" && input.startsWith(ENGINE_WORKSPACE_PREFIX)) {
      try {
        enginePath(input);
        return { value: input };
      } catch (error) {
        return { expected: "engine:/absolute/path", why: errorMessage(error) };
      }
    }
    return typeof input === "string" && input.trim() !== ""
      ? resolveUserPath(input, context)
      : { expected: "the workspace directory (a non-empty string)" };
  });
}

export const portValue = flagValue((text) => parsePort(text, "port"), true);
export const cpusValue = flagValue(parseCpus, true);
export const memoryValue = flagValue(parseMemory, true);
export const pidsValue = flagValue(parsePids, true);

/** restart.maxMemory: a size like "memory", or null for no memory check. */
export const maxMemoryValue = leaf<number | null>((input) => {
  if (input === null) return { value: null };
  if (typeof input === "string" || (typeof input === "number" && Number.isFinite(input))) {
    try {
      return { value: parseMemory(String(input)) };
    } catch {}
  }
  return { expected: `null (no memory check) or ${expectationOf(rejection(parseMemory))}` };
});

function rejection(parse: (text: string) => unknown): unknown {
  try {
    parse("");
  } catch (error) {
    return error;
  }
  return undefined;
}

export const envEntryValue = leaf<string>((input) => {
  const expected = "KEY (this shell's value) or KEY=VALUE";
  if (typeof input !== "string") return { expected };
  const name = input.split("=", 1)[0] ?? "";
  try {
    checkEnvName(name, "env");
  } catch (error) {
    return { expected, why: errorMessage(error).replace(/^env: /, "") };
  }
  return { value: input };
});

export const maxRestartsValue = z
  .number(expecting("a whole number of 0 or more"))
  .int(expecting("a whole number of 0 or more"))
  .min(0, expecting("a whole number of 0 or more"));

export const factorValue = z
  .number(expecting("a number of 1 or more"))
  .min(1, expecting("a number of 1 or more"));

export const jitterValue = z
  .number(expecting("a number from 0 to 1"))
  .min(0, expecting("a number from 0 to 1"))
  .max(1, expecting("a number from 0 to 1"));

export function listOf<T>(item: z.ZodType<T>, what: string): z.ZodType<T[]> {
  return z.array(item, expecting(`a list of ${what}`));
}

/** Where relative paths in the file resolve, and what "~" means. */
export interface PathContext {
  /** the config file's directory */
  dir: string;
  home: string;
}

/** "~" and "~/x" → the home directory; relative → against the config file's directory. */
function resolveUserPath(value: string, context: PathContext): Conversion<string> {
  if (value === "~") return { value: context.home };
  if (value.startsWith("~/")) return { value: path.resolve(context.home, value.slice(2)) };
  if (value.startsWith("~"))
    return { expected: "a path", why: `only "~" and "~/..." are expanded, not another user's home` };
  return { value: path.resolve(context.dir, value) };
}

export function pathValue(context: PathContext, what: string): z.ZodType<string> {
  return leaf<string>((input) =>
    typeof input === "string" && input.trim() !== ""
      ? resolveUserPath(input, context)
      : { expected: `${what} (a non-empty string)` },
  );
}

/** A manifest is an http(s) URL (kept as written) or a path (resolved like the others). */
export function manifestValue(context: PathContext): z.ZodType<string> {
  const expected = "an http(s) URL or a path to a manifest file";
  return leaf<string>((input) => {
    if (typeof input !== "string" || input.trim() === "") return { expected };
    if (/^https?:\/\//i.test(input)) return { value: input };
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input))
      return { expected, why: "only http and https URLs are loaded" };
    return resolveUserPath(input, context);
  });
}

/** hostPath:subpath[:ro|rw], with the host path resolved like every other path in the file. */
export function mountValue(context: PathContext): z.ZodType<string> {
  const expected = "a mount hostPath:subpath[:ro|rw]";
  return leaf<string>((input) => {
    if (typeof input !== "string") return { expected };
    try {
      const parsed = parseMountSpec(input);
      const host = isWindowsDrivePath(parsed.hostPath)
        ? { value: parsed.hostPath }
        : resolveUserPath(parsed.hostPath, context);
      if (!("value" in host)) return { expected, why: host.why ?? "" };
      return { value: `${host.value}:${parsed.subpath}${parsed.explicitMode ? `:${parsed.mode}` : ""}` };
    } catch (error) {
      return { expected, why: errorMessage(error).replace(/^--mount ".*?": /s, "") };
    }
  });
}
