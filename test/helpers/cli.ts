import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { packageRoot } from "../../src/config/package-root.js";

export const CLI = path.join(packageRoot(), "dist", "bin", "openwork.js");

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the built CLI as a user would, in its own process, with its own OPENWORK_HOME unless given. */
export async function runCli(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; home?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult> {
  const home = options.home ?? mkdtempSync(path.join(os.tmpdir(), "openwork-home-"));
  const result = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    timeout: options.timeoutMs ?? 120_000,
    env: { OPENWORK_HOME: home, ...options.env },
    cwd: options.cwd,
    stdin: "ignore",
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
