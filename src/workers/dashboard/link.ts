import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { OpenworkError } from "../../errors/errors.js";
import { dashboardSecretFile, liveSupervisor, readSupervisorFile } from "../state.js";

/**
 * `workers dashboard`: a one-time login link from the live supervisor. The
 * CLI proves it may have one by presenting the secret the supervisor wrote
 * 0600 into the fleet's state dir — readable by the same user only, and never
 * in anyone's argv or URL.
 */
export async function dashboardLink(stateDir: string): Promise<{ url: string; expiresAt: string }> {
  const supervisor = liveSupervisor(readSupervisorFile(stateDir));
  if (!supervisor)
    throw new OpenworkError("no supervisor runs this fleet, and the dashboard is the supervisor's", {
      code: "supervisor_not_running",
      hint: "start it with `openwork workers start --supervise` (or `openwork workers run`)",
    });
  if (!supervisor.dashboardUrl)
    throw new OpenworkError(`the supervisor (pid ${supervisor.pid}) serves no dashboard`, {
      code: "dashboard_off",
      hint: "it runs with --metrics-port off, or predates the dashboard: restart it with a metrics port",
    });
  let secret: string;
  try {
    secret = readFileSync(dashboardSecretFile(stateDir), "utf8").trim();
  } catch {
    throw new OpenworkError(`cannot read ${dashboardSecretFile(stateDir)}`, {
      code: "dashboard_secret",
      hint: "run `openwork workers dashboard` as the user the supervisor runs as",
    });
  }
  const response = await fetch(`${supervisor.dashboardUrl}/dashboard/codes`, {
    method: "POST",
    headers: { authorization: `Bearer ${secret}` },
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok)
    throw new OpenworkError(`the supervisor refused a login code (HTTP ${response.status})`, {
      code: "dashboard_refused",
      hint: "the secret file may belong to another supervisor; try again",
    });
  return (await response.json()) as { url: string; expiresAt: string };
}

/** Hand a URL to the desktop's browser (xdg-open, open, start); false when there is none. */
export function openInBrowser(url: string): Promise<boolean> {
  const [command, args] =
    process.platform === "darwin"
      ? ["open", [url]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", url]]
        : ["xdg-open", [url]];
  return new Promise((resolve) => {
    const child = spawn(command, args as string[], { stdio: "ignore", detached: true });
    child.once("error", () => resolve(false));
    child.once("spawn", () => {
      child.unref();
      resolve(true);
    });
  });
}
