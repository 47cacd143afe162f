import { statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { openworkPaths } from "../config/paths.js";
import { UsageError } from "../errors/errors.js";
import { defaultAllowlistPath, loadAllowlist, type MountAllowlist } from "./allowlist.js";
import {
  BROAD_DIRECTORIES,
  CREDENTIAL_SEGMENTS,
  credentialSegmentIn,
  findEngineSocketBelow,
  isEngineSocketName,
  isSocket,
  knownEngineSockets,
  systemDirectoryFor,
} from "./policy.js";
import { isWithin, resolveRealPath } from "./resolve.js";
import {
  containerPathFor,
  isWindowsDrivePath,
  mountError,
  type ParsedMountSpec,
  parseMountSpec,
} from "./spec.js";
import type { ValidatedMount } from "./types.js";

export interface ValidateMountsOptions {
  /** the allowlist file; default: OPENWORK_MOUNT_ALLOWLIST or <config dir>/openwork/mount-allowlist.json */
  allowlistPath?: string;
  /** the user's home directory (tests give a fake one) */
  home?: string;
  env?: NodeJS.ProcessEnv;
  /** relative host paths are resolved against this (default: process.cwd()) */
  cwd?: string;
  /** the workspace's real path: the allowlist must not live inside it */
  workspace?: string;
  /** the platform whose paths are validated (default: process.platform) */
  platform?: NodeJS.Platform;
}

/**
 * Validate `--mount` specs for a sandbox. Every substrate calls this same
 * function and gets the same answer; each refusal is one UsageError naming
 * the spec and the reason. Read-only unless `:rw` was asked and an allowlist
 * root grants read-write; asking for `:rw` without a grant is refused (never
 * silently downgraded, which would surprise a tool that expects to write).
 */
export function validateMounts(
  specs: readonly string[],
  options: ValidateMountsOptions = {},
): ValidatedMount[] {
  if (specs.length === 0) return [];
  const context = policyContext(options);
  if (options.workspace) {
    const workspaceReal = resolveRealPath(path.resolve(options.workspace)).realPath;
    if (isWithin(context.allowlistReal, workspaceReal))
      throw new UsageError(
        `mount allowlist ${context.allowlist.file} is inside the workspace ${options.workspace}: a workspace cannot grant itself access`,
        "move it to your config directory (docs/mounts.md)",
      );
  }
  const result: ValidatedMount[] = [];
  const bySubpath = new Map<string, string>();
  for (const spec of specs) {
    const parsed = parseMountSpec(spec);
    const mount = validateOne(parsed, context);
    for (const [other, otherSpec] of bySubpath) {
      if (other === parsed.subpath || isWithin(parsed.subpath, other) || isWithin(other, parsed.subpath))
        throw mountError(
          spec,
          `container subpath "${parsed.subpath}" overlaps the one of ${JSON.stringify(otherSpec)}`,
          "give each mount its own subpath",
        );
    }
    bySubpath.set(parsed.subpath, spec);
    result.push(mount);
  }
  return result;
}

/** What every check needs: the home directory, the allowlist, the engine sockets and openwork's own state. */
function policyContext(options: ValidateMountsOptions): Context {
  const env = options.env ?? process.env;
  const home = resolveRealPath(path.resolve(options.home ?? os.homedir())).realPath;
  const allowlistFile = options.allowlistPath ?? defaultAllowlistPath(env);
  const paths = openworkPaths(env);
  return {
    home,
    platform: options.platform ?? process.platform,
    cwd: options.cwd ?? process.cwd(),
    allowlist: loadAllowlist(allowlistFile, home),
    allowlistReal: resolveRealPath(path.resolve(allowlistFile)).realPath,
    sockets: knownEngineSockets(home, env).map((s) => resolveRealPath(path.resolve(s)).realPath),
    stateDirs: [...new Set([paths.home, paths.cache])].map((d) => resolveRealPath(path.resolve(d)).realPath),
  };
}

/**
 * The workspace of a sandbox is mounted read-write at /workspace, so it passes
 * the same path rules as a --mount (after resolving links): a sandbox started
 * in the home directory, /, /etc, the Docker socket's directory or openwork's
 * own state would hand the agent all of it. It must not hold the mount
 * allowlist either (the agent could grant itself more). Host mode has no
 * boundary to keep, and is not checked.
 */
export function validateSandboxWorkspace(
  workspace: string,
  options: Omit<ValidateMountsOptions, "workspace"> = {},
): void {
  const context = policyContext(options);
  const literal = path.resolve(context.cwd, workspace.normalize("NFC"));
  const resolved = resolveRealPath(literal);
  const fail = (reason: string) =>
    new UsageError(
      `the workspace cannot be given to a sandbox: ${reason.replace(/^host path /, "")}`,
      "start in a project directory (cd into it, or --workspace DIR); to run there anyway, use --sandbox none, which is no sandbox",
    );
  checkHostPath(literal, resolved, context, fail);
  if (isWithin(context.allowlistReal, resolved.realPath))
    throw fail(
      `${resolved.realPath} holds the mount allowlist ${context.allowlist.file}, which the sandbox could then rewrite`,
    );
}

interface Context {
  home: string;
  platform: NodeJS.Platform;
  cwd: string;
  allowlist: MountAllowlist;
  allowlistReal: string;
  sockets: string[];
  stateDirs: string[];
}

function validateOne(parsed: ParsedMountSpec, context: Context): ValidatedMount {
  const { spec } = parsed;
  const { allowlist } = context;
  if (context.platform !== "win32" && isWindowsDrivePath(parsed.hostPath))
    throw mountError(
      spec,
      `host path "${parsed.hostPath}" is a Windows drive path, but this host is ${context.platform}`,
      "give a path on this machine",
    );
  const literal = path.resolve(context.cwd, parsed.hostPath.normalize("NFC"));
  let resolved: ReturnType<typeof resolveRealPath>;
  try {
    resolved = resolveRealPath(literal);
  } catch (error) {
    throw mountError(spec, `host path cannot be resolved: ${(error as Error).message}`);
  }
  checkHostPath(literal, resolved, context, (reason, hint) => mountError(spec, reason, hint));
  const real = resolved.realPath;
  let readOnly = true;
  if (parsed.mode === "rw") {
    const root = allowlist.roots.find((r) => r.allowReadWrite && isWithin(real, r.realPath));
    if (!root)
      throw mountError(
        spec,
        allowlist.present
          ? `read-write was asked, but no root in ${allowlist.file} grants read-write for ${real}`
          : `read-write was asked, but there is no mount allowlist at ${allowlist.file}`,
        `add {"path":${JSON.stringify(real)},"allowReadWrite":true} to its "roots", or drop ":rw"`,
      );
    if (isWithin(context.allowlistReal, real))
      throw mountError(
        spec,
        `host path ${real} contains the mount allowlist ${allowlist.file}: a sandbox must not be able to rewrite it`,
        "mount it read-only, or keep the allowlist elsewhere",
      );
    readOnly = false;
  }
  return { hostPath: real, containerPath: containerPathFor(parsed.subpath), readOnly, spec };
}

/**
 * The path rules every host path handed to a sandbox passes (a --mount and the
 * workspace alike), on the path as written and as resolved: no credential
 * directory, not the root, the home directory or anything containing it, no
 * system directory, nothing too broad, no container-engine socket in or
 * below it, and none of openwork's own state. `fail` words the refusal.
 */
function checkHostPath(
  literal: string,
  resolved: ReturnType<typeof resolveRealPath>,
  context: Pick<Context, "home" | "allowlist" | "sockets" | "stateDirs">,
  fail: (reason: string, hint?: string) => UsageError,
): void {
  const { home, allowlist } = context;
  const real = resolved.realPath;
  const via = real === literal ? "" : ` (really ${real})`;
  const escaped = real !== literal && !isWithin(real, literal);
  // Credential directories are judged on the path as written and as resolved:
  // a link named "keys" that points into ~/.ssh is as dangerous as ~/.ssh.
  const blocked = [...CREDENTIAL_SEGMENTS, ...allowlist.blockedSegments];
  const credential = credentialSegmentIn(real, blocked) ?? credentialSegmentIn(literal, blocked);
  if (credential)
    throw fail(
      `host path ${literal}${via} is or is inside a credential directory (${credential})${escaped ? " through a symlink" : ""}`,
      "mount a directory that holds no credentials",
    );

  if (real === path.parse(real).root)
    throw fail(`host path ${literal}${via} is the root directory`, "mount a specific directory");
  if (real === home)
    throw fail(`host path ${literal}${via} is your home directory`, "mount a project directory below it");
  if (isWithin(home, real))
    throw fail(
      `host path ${literal}${via} contains your home directory`,
      "mount a project directory below it",
    );

  const system = home !== "/root" || !isWithin(real, home) ? systemDirectoryFor(real) : undefined;
  if (system)
    throw fail(
      `host path ${literal}${via} is a system directory (${system})${escaped ? " reached through a symlink" : ""}`,
      "mount a project directory instead",
    );
  if (BROAD_DIRECTORIES.includes(real))
    throw fail(`host path ${literal}${via} is too broad to mount`, "mount a specific directory below it");

  for (const socket of context.sockets) {
    if (isWithin(socket, real))
      throw fail(
        `host path ${literal}${via} ${socket === real ? "is" : "contains"} a container-engine socket or state directory (${socket})`,
        "a sandbox with the engine's socket controls the host; mount something else",
      );
  }
  if (resolved.exists && (isSocket(real) || isEngineSocketName(path.basename(real))))
    throw fail(
      `host path ${literal}${via} is a container-engine socket`,
      "a sandbox with the engine's socket controls the host",
    );

  // openwork's own state holds every run's tokens and the staged sidecars of every workspace
  for (const state of context.stateDirs) {
    if (isWithin(real, state) || isWithin(state, real))
      throw fail(
        `host path ${literal}${via} ${real === state ? "is" : isWithin(real, state) ? "is inside" : "contains"} openwork's own state (${state}): run records, tokens and staged sidecars`,
        "mount a project directory instead",
      );
  }

  if (!resolved.exists)
    throw fail(
      `host path ${literal}${via} does not exist`,
      `create it first (mkdir -p ${JSON.stringify(real)})`,
    );
  let stat: import("node:fs").Stats;
  try {
    stat = statSync(real);
  } catch (error) {
    throw fail(`host path ${real} cannot be read: ${(error as Error).message}`);
  }
  if (!stat.isDirectory() && !stat.isFile())
    throw fail(`host path ${literal}${via} is neither a directory nor a regular file`);
  if (stat.isDirectory()) {
    const socket = findEngineSocketBelow(real);
    if (socket)
      throw fail(
        `host path ${literal}${via} contains a container-engine socket (${socket})`,
        "a sandbox with the engine's socket controls the host; mount a directory without it",
      );
  }
}

/** Host processes see the whole file system: a mount there would promise a boundary that does not exist. */
export function refuseMountsOnHost(specs: readonly string[]): void {
  if (specs.length === 0) return;
  throw new UsageError(
    `--mount ${JSON.stringify(specs[0])}: mounts need a sandbox; with --sandbox none the runtime sees the whole file system, so a mount could not be enforced`,
    "drop --mount, or run with --sandbox docker, container or auto",
  );
}
