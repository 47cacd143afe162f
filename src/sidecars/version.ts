import semver from "semver";
import { errorMessage, OpenworkError } from "../errors/errors.js";

export interface VersionProbe {
  /** the normalised semver the binary reported */
  version: string;
  /** the first line it printed, as printed */
  raw: string;
}

/**
 * Ask a binary for its version (`<bin> --version`) with a deadline: a binary
 * that hangs or prints nonsense is an error naming the path, never a guess.
 */
export async function probeVersion(
  command: readonly string[],
  options: {
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    /** what is being checked, for messages ("the opencode sidecar") */
    what?: string | undefined;
  } = {},
): Promise<VersionProbe> {
  const [file, ...args] = command;
  if (!file) throw new Error("probeVersion: empty command");
  const timeout = options.timeoutMs ?? 15_000;
  let stdout: string;
  try {
    // Loaded only when a version is not cached yet (once per binary, not per start).
    const { execa } = await import("execa");
    const result = await execa(file, [...args, "--version"], {
      timeout,
      reject: true,
      stdin: "ignore",
      env: { ...options.env, NO_COLOR: "1" },
      extendEnv: true,
    });
    stdout = String(result.stdout);
  } catch (error) {
    const timedOut = (error as { timedOut?: boolean }).timedOut === true;
    const checking = options.what ? `checking ${options.what}: ` : "";
    throw new OpenworkError(
      timedOut
        ? `${checking}${file} --version did not answer within ${timeout} ms`
        : `${checking}${file} --version failed: ${firstLine(errorMessage(error))}`,
      {
        code: "version_probe_failed",
        hint: "check that the file is an executable for this platform",
        cause: error,
      },
    );
  }
  const raw =
    stdout
      .split(/\r?\n/)
      .find((line) => line.trim().length > 0)
      ?.trim() ?? "";
  const version =
    semver.valid(semver.clean(raw) ?? "") ?? semver.coerce(raw, { includePrerelease: true })?.version;
  if (!version) {
    throw new OpenworkError(
      `${options.what ? `checking ${options.what}: ` : ""}${file} --version printed "${raw}", which holds no version`,
      {
        code: "version_probe_failed",
      },
    );
  }
  return { version, raw };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? text;
}
