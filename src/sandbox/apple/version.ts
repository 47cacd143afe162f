import semver from "semver";

/**
 * Apple `container` versions and what they can do (DESIGN.md §5). The minimum
 * is 0.3.0 because that is the first release with `-p/--publish`: without it
 * the runtime's server is reachable only on the VM's own address, which
 * changes per start and is not loopback, so nothing we promise (a 127.0.0.1
 * URL, no exposure to the network) would hold.
 */
export const MINIMUM_APPLE_VERSION = "0.3.0";
/** `--read-only` (root file system) exists from this release. */
export const READ_ONLY_SINCE = "0.8.0";
/** `--init` (an init process that reaps zombies) exists from this release. */
export const INIT_SINCE = "0.10.0";
/** inspect/ls JSON: network fields renamed (address/gateway → ipv4Address/ipv4Gateway). */
export const IPV4_FIELDS_SINCE = "0.8.0";
/** inspect/ls JSON: `status` became an object {state, networks, startedDate}. */
export const STATUS_OBJECT_SINCE = "1.0.0";

export interface AppleFeatures {
  version: string;
  publish: boolean;
  readOnly: boolean;
  init: boolean;
}

/**
 * Read `container --version`'s output: "container CLI version 0.9.0 (build:
 * release, commit: 1a2b3c4)". Returns undefined when no version is in it.
 */
export function parseAppleVersion(output: string): string | undefined {
  const match = /\bversion\s+v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)/.exec(output);
  if (!match?.[1]) return undefined;
  return semver.valid(match[1]) ?? undefined;
}

function atLeast(version: string, floor: string): boolean {
  return semver.gte(version, floor);
}

export function appleFeatures(version: string): AppleFeatures {
  return {
    version,
    publish: atLeast(version, MINIMUM_APPLE_VERSION),
    readOnly: atLeast(version, READ_ONLY_SINCE),
    init: atLeast(version, INIT_SINCE),
  };
}

export function meetsMinimum(version: string): boolean {
  return atLeast(version, MINIMUM_APPLE_VERSION);
}
