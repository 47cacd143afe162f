import { SANDBOX_PATHS } from "../../contract/layout.js";
import { OpenworkError } from "../../errors/errors.js";
import type { ValidatedMount } from "../../mounts/types.js";
import type { LaunchSpec } from "../backend.js";
import { defaultLimits } from "../limits.js";
import type { AppleFeatures } from "./version.js";

/** One bind mount as Apple's CLI takes it. */
export interface AppleBind {
  source: string;
  target: string;
  readOnly: boolean;
}

export interface AppleRunOptions {
  /** ask for a read-only root file system (needs 0.8.0) */
  readOnlyRoot?: boolean;
}

export interface AppleRunCommand {
  args: string[];
  /** the values behind every `-e NAME`: the child process's environment, never argv */
  env: Record<string, string>;
  name: string;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Apple names containers by their ID; keep to the characters every release accepts. */
export function appleContainerName(runId: string): string {
  const safe = runId.replace(/[^A-Za-z0-9_.-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return `openwork-${safe || "run"}`.slice(0, 63);
}

/**
 * Label values go through Apple's parser, which splits `key=value` on every
 * "=" and fails on a third part; "%" and "=" are percent-encoded on the way in
 * and decoded on the way out (decodeAppleLabel), so any value round-trips.
 */
export function encodeAppleLabel(value: string): string {
  return value.replace(/%/g, "%25").replace(/=/g, "%3D");
}

export function decodeAppleLabel(value: string): string {
  return value.replace(/%3D/gi, "=").replace(/%25/g, "%");
}

/**
 * `--mount type=bind,source=…,target=…[,readonly]`: Apple splits the value on
 * "," and each directive on "=", so a path containing either cannot be said
 * at all (it would silently become another path); refuse it by name.
 */
export function appleMountArgs(binds: readonly AppleBind[]): string[] {
  const args: string[] = [];
  for (const bind of binds) {
    for (const [what, value] of [
      ["source", bind.source],
      ["target", bind.target],
    ] as const) {
      if (/[,=]/.test(value))
        throw new OpenworkError(
          `Apple's container cannot mount ${what} path ${JSON.stringify(value)}: its --mount syntax splits on "," and "="`,
          { code: "apple_mount_path", hint: "rename the directory or use --sandbox docker" },
        );
    }
    args.push(
      "--mount",
      `type=bind,source=${bind.source},target=${bind.target}${bind.readOnly ? ",readonly" : ""}`,
    );
  }
  return args;
}

/** The validated `--mount`s as Apple binds: the same triples Docker gets from dockerMounts. */
export function appleBindsFromMounts(mounts: readonly ValidatedMount[]): AppleBind[] {
  return mounts.map((m) => ({ source: m.hostPath, target: m.containerPath, readOnly: m.readOnly }));
}

/** Every bind of a launch: workspace, persisted directory, staged runtimes (read-only), then the validated mounts. */
export function appleBindsFor(spec: LaunchSpec): AppleBind[] {
  return [
    { source: spec.workspace, target: SANDBOX_PATHS.workspace, readOnly: false },
    { source: spec.persistDir, target: SANDBOX_PATHS.persist, readOnly: false },
    { source: spec.runtimesDir, target: SANDBOX_PATHS.runtimes, readOnly: true },
    ...(spec.imports ? [{ source: spec.imports, target: SANDBOX_PATHS.imports, readOnly: true }] : []),
    ...appleBindsFromMounts(spec.mounts),
  ];
}

/**
 * `container run -d …` for a launch. Ports always carry their host IP (Apple
 * binds 0.0.0.0 without one); secrets travel as `-e NAME` with the value in
 * the CLI's own environment, which Apple's CLI reads when the value is absent.
 */
export function buildRunArgs(
  spec: LaunchSpec,
  features: AppleFeatures,
  options: AppleRunOptions = {},
): AppleRunCommand {
  if (!features.publish)
    throw new OpenworkError(`Apple's container ${features.version} cannot publish ports (-p needs 0.3.0)`, {
      code: "apple_too_old",
      hint: "update container from github.com/apple/container/releases",
    });
  if (options.readOnlyRoot && !features.readOnly)
    throw new OpenworkError(`Apple's container ${features.version} has no --read-only (needs 0.8.0)`, {
      code: "apple_too_old",
      hint: "update container, or run without a read-only root file system",
    });
  if (spec.command.length === 0)
    throw new OpenworkError("launch spec has no command", { code: "apple_launch_spec" });
  const name = appleContainerName(spec.runId);
  const args = ["run", "--detach", "--name", name];
  if (features.init) args.push("--init");
  if (options.readOnlyRoot) args.push("--read-only");
  for (const [key, value] of Object.entries(spec.labels)) {
    if (key === "" || /[=,\s]/.test(key))
      throw new OpenworkError(`label key ${JSON.stringify(key)} cannot be passed to Apple's container`, {
        code: "apple_label",
        hint: 'label keys must be non-empty and contain no "=", "," or spaces',
      });
    args.push("--label", `${key}=${encodeAppleLabel(value)}`);
  }
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(key))
      throw new OpenworkError(`environment variable name ${JSON.stringify(key)} is not valid`, {
        code: "apple_env_name",
      });
    args.push("--env", key);
    env[key] = value;
  }
  for (const port of spec.ports) {
    if (port.hostIp.includes(":"))
      throw new OpenworkError(`Apple's container cannot publish on IPv6 address ${port.hostIp}`, {
        code: "apple_publish",
        hint: "publish on 127.0.0.1 (or 0.0.0.0 for remote access)",
      });
    args.push("--publish", `${port.hostIp}:${port.host}:${port.container}/tcp`);
  }
  args.push(...appleMountArgs(appleBindsFor(spec)));
  if (spec.user) args.push("--user", spec.user);
  // Apple's VM takes whole CPUs and memory in MiB; its CLI has no process limit or capability set
  // (the VM is the boundary: its own kernel): docs/sandbox-boundary.md.
  const limits = spec.limits ?? defaultLimits();
  args.push("--cpus", String(Math.max(1, Math.ceil(limits.cpus))));
  args.push("--memory", `${Math.ceil(limits.memoryBytes / 1024 ** 2)}M`);
  // as the Docker backend: start outside the user's workspace, so its files cannot steer start-up
  args.push("--workdir", SANDBOX_PATHS.persist);
  args.push(spec.image, ...spec.command);
  return { args, env, name };
}
