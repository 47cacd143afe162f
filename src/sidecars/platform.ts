import { UsageError } from "../errors/errors.js";

/** A sidecar target: `<os>-<arch>` as npm's platform packages name them. */
export type Target = `${"linux" | "darwin" | "windows"}-${"x64" | "arm64"}`;

export const KNOWN_TARGETS: readonly Target[] = [
  "linux-x64",
  "linux-arm64",
  "darwin-arm64",
  "darwin-x64",
  "windows-x64",
  "windows-arm64",
];

export function hostTarget(
  platform: NodeJS.Platform = process.platform,
  arch: string = process.arch,
): Target {
  const os = platform === "win32" ? "windows" : platform;
  const target = `${os}-${arch}`;
  if (!isTarget(target)) {
    throw new UsageError(
      `unsupported host platform ${platform}/${arch}`,
      "openwork supports linux, darwin and windows on x64 and arm64",
    );
  }
  return target;
}

/** Sandboxes always run Linux, on the host's CPU architecture. */
export function sandboxTarget(arch: string = process.arch): Target {
  const target = `linux-${arch}`;
  if (!isTarget(target)) throw new UsageError(`no Linux sandbox target for CPU architecture ${arch}`);
  return target;
}

export function isTarget(value: string): value is Target {
  return (KNOWN_TARGETS as readonly string[]).includes(value);
}

export function parseTarget(value: string): Target {
  if (!isTarget(value)) {
    throw new UsageError(`unknown target "${value}"`, `use one of: ${KNOWN_TARGETS.join(", ")}`);
  }
  return value;
}

/** Whether this host can execute a binary built for `target` (needed to ask it its version). */
export function canExecute(target: Target, host: Target = hostTarget()): boolean {
  return target === host;
}
