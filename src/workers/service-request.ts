import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { packageRoot } from "../config/package-root.js";
import { openworkPaths } from "../config/paths.js";
import { OpenworkError } from "../errors/errors.js";
import type { WorkersConfig } from "./config.js";
import { workersStateDir } from "./paths.js";
import { type ServicePlan, servicePlan } from "./service.js";

/**
 * This machine's side of a service unit: which node and which openwork run
 * the supervisor, as whom, with which OPENWORK_HOME — the same ones this
 * command runs with, so the service sees the fleet this user sees.
 */
export function planServiceForFile(
  file: string,
  stopTimeoutMs: number,
  scope: "user" | "system",
): ServicePlan {
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin" };
  if (process.env.OPENWORK_HOME) env.OPENWORK_HOME = path.resolve(process.env.OPENWORK_HOME);
  if (process.env.DOCKER_HOST) env.DOCKER_HOST = process.env.DOCKER_HOST;
  const user = os.userInfo();
  return servicePlan({
    platform: process.platform,
    scope,
    configFile: file,
    node: process.execPath,
    cli: path.join(packageRoot(), "dist", "bin", "openwork.js"),
    home: user.homedir,
    uid: user.uid,
    user: user.username,
    env,
    stopTimeoutSec: Math.ceil(stopTimeoutMs / 1000),
    logDir: workersStateDir(openworkPaths(), file),
  });
}

export function planServiceFor(config: WorkersConfig, scope: "user" | "system"): ServicePlan {
  return planServiceForFile(config.file, config.stopTimeoutMs, scope);
}

/**
 * Runs systemctl/launchctl. Removing a unit that is not loaded is not a
 * failure of `uninstall-service` (it may never have been started).
 */
export function runServiceCommand(tolerateNotLoaded: boolean): (argv: string[]) => Promise<void> {
  return async (argv) => {
    const [command, ...args] = argv;
    if (!command) return;
    const result = await execa(command, args, { reject: false, stdin: "ignore" });
    if (result.exitCode === 0) return;
    const stderr = String(result.stderr ?? "").trim();
    if (tolerateNotLoaded && /not loaded|not found|does not exist|No such|Could not find/i.test(stderr))
      return;
    throw new OpenworkError(
      `${argv.join(" ")} failed (exit ${result.exitCode ?? "?"}): ${stderr || "no output"}`,
      {
        code: "service_command_failed",
      },
    );
  };
}
