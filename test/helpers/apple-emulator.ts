import path from "node:path";
import { execa } from "execa";
import { packageRoot } from "../../src/config/package-root.js";

/** The emulator of Apple's `container` CLI (an executable; see test/fixtures/apple-container-emulator/main.ts). */
export const APPLE_EMULATOR = path.join(
  packageRoot(),
  "test",
  "fixtures",
  "apple-container-emulator",
  "container",
);

/** Environment that points the Apple backend at the emulator, run by this test's Node. */
export function emulatorEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { OPENWORK_APPLE_CONTAINER_BIN: APPLE_EMULATOR, OPENWORK_EMULATOR_NODE: process.execPath, ...extra };
}

export interface EmulatorResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run the emulator as the backend would: no stdin, its own environment. */
export async function emulator(args: string[], env: Record<string, string> = {}): Promise<EmulatorResult> {
  const result = await execa(APPLE_EMULATOR, args, {
    reject: false,
    stdin: "ignore",
    timeout: 60_000,
    env: emulatorEnv(env),
  });
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}
