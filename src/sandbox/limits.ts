import os from "node:os";
import { UsageError } from "../errors/errors.js";

/**
 * What a sandbox may use. Every sandbox gets limits (DESIGN.md §3: resource
 * and isolation defaults); these are the defaults, documented in
 * docs/sandbox-boundary.md and `openwork start --help`, and each has a flag.
 */
export interface SandboxLimits {
  /** CPUs (fractions allowed on Docker; Apple's container takes whole CPUs) */
  cpus: number;
  memoryBytes: number;
  /** processes and threads */
  pids: number;
}

const GIB = 1024 ** 3;

/** 4 GiB, up to 2 CPUs (fewer when the host has fewer), 1024 processes. */
export function defaultLimits(): SandboxLimits {
  return { cpus: Math.min(2, os.availableParallelism()), memoryBytes: 4 * GIB, pids: 1024 };
}

/** The smallest memory a runtime starts in (engine and server): below it a start could only fail later. */
export const MIN_MEMORY_BYTES = 256 * 1024 ** 2;

export function parseCpus(text: string): number {
  const value = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(value > 0) || value > os.availableParallelism())
    throw new UsageError(
      `--cpus must be a number of CPUs above 0 and at most this host's ${os.availableParallelism()}, not "${text}"`,
      "e.g. --cpus 1.5",
    );
  return value;
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: GIB, t: 1024 * GIB };

export function parseMemory(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?$/i.exec(text.trim());
  const bytes = match?.[1]
    ? Math.floor(Number(match[1]) * (UNITS[(match[2] ?? "").toLowerCase()] ?? Number.NaN))
    : Number.NaN;
  if (!Number.isFinite(bytes) || bytes < MIN_MEMORY_BYTES)
    throw new UsageError(
      `--memory must be a size of at least 256m (bytes, or with k, m, g, t), not "${text}"`,
      "e.g. --memory 2g",
    );
  return bytes;
}

export function parsePids(text: string): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value < 64)
    throw new UsageError(
      `--pids-limit must be a whole number of at least 64, not "${text}"`,
      "e.g. --pids-limit 2048",
    );
  return value;
}

export function formatLimits(limits: SandboxLimits): string {
  return `${limits.cpus} CPU, ${Math.round(limits.memoryBytes / 1024 ** 2)} MiB, ${limits.pids} processes`;
}
