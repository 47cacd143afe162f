import { spawn } from "node:child_process";
import type { Logger } from "pino";
import { OpenworkError } from "../errors/errors.js";
import { onPath } from "../sandbox/apple/cli.js";
import { RuntimeClient } from "./client.js";
import type { RunRegistry } from "./registry.js";
import { findRunningRun, type RunSelector } from "./select.js";

export interface LoginLink {
  runId: string;
  /** the one-time login link: the run's published address and /login?code=… */
  url: string;
  expiresAt: string;
}

/** A one-time login link to the engine's web UI of a running run (docs/web-ui.md). */
export async function loginLink(
  registry: RunRegistry,
  log: Logger,
  selector: Omit<RunSelector, "all">,
): Promise<LoginLink> {
  const { record, secrets } = await findRunningRun(registry, log, selector);
  const client = new RuntimeClient(record.url, { host: secrets.hostToken });
  const code = await client.loginCode();
  return { runId: record.runId, url: new URL(code.path, record.url).toString(), expiresAt: code.expiresAt };
}

/** The platform's opener of URLs: the program and the arguments before the URL. */
export function opener(
  platform: NodeJS.Platform = process.platform,
  searchPath = process.env.PATH ?? "",
): { command: string; args: string[] } | undefined {
  if (platform === "darwin") return onPath("open", searchPath) ? { command: "open", args: [] } : undefined;
  if (platform === "win32") return { command: "cmd", args: ["/c", "start", ""] };
  return onPath("xdg-open", searchPath) ? { command: "xdg-open", args: [] } : undefined;
}

/** Open a URL with the platform's opener, detached; refuses clearly when there is none. */
export async function openInBrowser(url: string): Promise<void> {
  const found = opener();
  if (!found)
    throw new OpenworkError(
      "cannot open a browser: no opener (xdg-open on Linux, open on macOS) is installed",
      {
        code: "no_opener",
        hint: "open the printed link yourself (run without --browser), or install xdg-utils",
      },
    );
  await new Promise<void>((resolve, reject) => {
    const child = spawn(found.command, [...found.args, url], { detached: true, stdio: "ignore" });
    child.once("error", (error) =>
      reject(new OpenworkError(`cannot run ${found.command}: ${error.message}`, { code: "no_opener" })),
    );
    child.once("spawn", () => {
      child.unref();
      resolve();
    });
  });
}
