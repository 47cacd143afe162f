import { mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { OUTPUT_FILE_ENV } from "../contract/env.js";
import { ExitCode, errorMessage, OpenworkError, systemErrorCode } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { workersConfigId } from "./paths.js";
import { supervisorLog } from "./state.js";

/**
 * `openwork workers install-service`: a systemd unit (Linux) or a launchd
 * property list (macOS) that keeps `openwork workers run --config FILE`
 * running, restarted when it fails. One service per config file, named by
 * its id (workersConfigId), so two fleets never share one.
 *
 * servicePlan is pure: it renders the file and the commands that load and
 * unload it. installService / uninstallService apply a plan with a `run`
 * callback that executes one argv and throws when it fails; the CLI passes a
 * runner that tolerates "not loaded" failures of the deactivation commands
 * (a service that is not running is already stopped), and tests pass a
 * recorder.
 */

/** Present in every file openwork writes; a file without it is never overwritten or removed. */
export const SERVICE_MARKER = "openwork-managed: workers-service";

export interface ServiceRequest {
  platform: NodeJS.Platform;
  scope: "user" | "system";
  /** absolute path of the fleet file */
  configFile: string;
  /** absolute path of node (process.execPath) */
  node: string;
  /** absolute path of the openwork entry script */
  cli: string;
  /** the user's home: where user-scope files go */
  home: string;
  uid: number;
  /** user name the system-scope service runs as (systemd User=, launchd UserName) */
  user: string;
  /** variables the service carries: OPENWORK_HOME if set, PATH */
  env: Record<string, string>;
  /** how long the supervisor itself takes to stop its runtimes; the manager waits 15 s more */
  stopTimeoutSec: number;
  /** where launchd writes the service's stdout and stderr */
  logDir: string;
}

export interface ServicePlan {
  kind: "systemd" | "launchd";
  /** the systemd unit name (openwork-workers-<id>.service) or the launchd label (dev.openwork.workers.<id>) */
  name: string;
  /** where the unit or property list goes */
  file: string;
  content: string;
  /** argv lists run in order after the file is written */
  activate: string[][];
  /** argv lists run in order before the file is removed (or replaced) */
  deactivate: string[][];
  /** argv lists run after the file is removed (systemd forgets the unit on a daemon-reload) */
  afterRemove: string[][];
  /** a directory the service writes its output to, created before activation (launchd does not create it) */
  logDir?: string | undefined;
}

export interface ServiceRunner {
  /** Runs one command; throws (an execa error, ideally, whose stderr is reported) when it fails. */
  run: (argv: string[]) => Promise<void>;
}

const SUPPORTED = "Linux (systemd) and macOS (launchd)";

/** What the unit or property list for this request is, where it goes and how it is loaded. Pure. */
export function servicePlan(request: ServiceRequest): ServicePlan {
  if (request.platform !== "linux" && request.platform !== "darwin") {
    throw new OpenworkError(`workers install-service supports ${SUPPORTED}, not ${request.platform}`, {
      code: "service_unsupported_platform",
      hint: "run `openwork workers run --config FILE` under the platform's own service manager",
      exitCode: ExitCode.usage,
    });
  }
  validate(request);
  const id = workersConfigId(request.configFile);
  return request.platform === "linux" ? systemdPlan(request, id) : launchdPlan(request, id);
}

/**
 * Writes the plan's file (atomically, mode 0644) and runs its activation.
 * Replacing an earlier openwork file first runs the deactivation, so that the
 * new content is what runs. When activation fails the new file is removed, or
 * the previous content is restored and activated again.
 */
export async function installService(
  plan: ServicePlan,
  options: ServiceRunner,
): Promise<{ file: string; replaced: boolean }> {
  const previous = await readManaged(plan.file, "overwrite");
  if (previous !== undefined) {
    await runAll(plan.deactivate, options.run, `${plan.file} was left as it was`);
  }
  if (plan.logDir) await mkdir(plan.logDir, { recursive: true });
  await writeFileAtomic(plan.file, plan.content, { mode: 0o644 });
  try {
    await runAll(plan.activate, options.run, undefined);
  } catch (error) {
    throw await rollBack(plan, previous, options.run, error);
  }
  return { file: plan.file, replaced: previous !== undefined };
}

/**
 * Runs the plan's deactivation and removes its file; no file, nothing to do
 * (removed: false). Whether "not loaded" failures are tolerated is the
 * runner's choice (the CLI's runner tolerates them).
 */
export async function uninstallService(
  plan: ServicePlan,
  options: ServiceRunner,
): Promise<{ file: string; removed: boolean }> {
  const previous = await readManaged(plan.file, "remove");
  if (previous === undefined) return { file: plan.file, removed: false };
  await runAll(plan.deactivate, options.run, `${plan.file} was left in place`);
  await rm(plan.file, { force: true });
  await runAll(plan.afterRemove, options.run, `${plan.file} was removed`);
  return { file: plan.file, removed: true };
}

// --- systemd -----------------------------------------------------------------

function systemdPlan(request: ServiceRequest, id: string): ServicePlan {
  const name = `openwork-workers-${id}.service`;
  const user = request.scope === "user";
  const file = user
    ? path.join(request.home, ".config", "systemd", "user", name)
    : path.join("/etc/systemd/system", name);
  const systemctl = user ? ["systemctl", "--user"] : ["systemctl"];
  // systemd refuses an executable name with quotes or backslashes, and does
  // not expand `$` in it (nor can `$$` say a literal one): those, no node path can have.
  if (/["'\\$]/.test(request.node)) {
    throw new OpenworkError(
      `systemd cannot run node from ${request.node}: the path has a quote, backslash or $`,
      {
        code: "service_invalid_request",
        hint: "run install-service with a node installed at a plainer path",
        exitCode: ExitCode.usage,
      },
    );
  }
  const execStart = [request.node, request.cli, "workers", "run", "--config", request.configFile];
  const lines = [
    `# ${SERVICE_MARKER}`,
    "# Written by `openwork workers install-service`; `openwork workers uninstall-service` removes it.",
    "[Unit]",
    `Description=openwork workers (${request.configFile.replace(/%/g, "%%")})`,
    "After=network-online.target docker.service",
    "Wants=network-online.target",
    "",
    "[Service]",
    "Type=simple",
    `ExecStart=${execStart.map((word, index) => systemdWord(word, index > 0)).join(" ")}`,
    ...sortedEntries(request.env).map(
      ([key, value]) => `Environment=${systemdWord(`${key}=${value}`, false)}`,
    ),
    ...(user ? [] : [`User=${request.user}`]),
    "Restart=on-failure",
    "RestartSec=5",
    "KillSignal=SIGTERM",
    // Only the supervisor gets the signal: it stops the runtimes it started
    // (in their own process groups) itself, within its stop timeout.
    "KillMode=process",
    `TimeoutStopSec=${stopTimeout(request)}`,
    "",
    "[Install]",
    `WantedBy=${user ? "default.target" : "multi-user.target"}`,
    "",
  ];
  return {
    kind: "systemd",
    name,
    file,
    content: lines.join("\n"),
    activate: [
      [...systemctl, "daemon-reload"],
      [...systemctl, "enable", "--now", name],
    ],
    deactivate: [[...systemctl, "disable", "--now", name]],
    afterRemove: [[...systemctl, "daemon-reload"]],
  };
}

/**
 * One word of a systemd command line or assignment list (systemd.syntax,
 * systemd.service "Command lines"): `%` is a specifier, so `%%`; in the
 * arguments of a command line `$` expands variables, so `$$` (Environment=
 * and the executable name do not expand, and `$` stays); anything beyond a
 * plain path goes in double quotes with `\` and `"` escaped C-style.
 */
export function systemdWord(value: string, expandsVariables: boolean): string {
  let text = value.replace(/%/g, "%%");
  if (expandsVariables) text = text.replace(/\$/g, () => "$$");
  if (/^[A-Za-z0-9_@%+=:,./$-]+$/.test(value)) return text;
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

// --- launchd -----------------------------------------------------------------

function launchdPlan(request: ServiceRequest, id: string): ServicePlan {
  const label = `dev.openwork.workers.${id}`;
  const user = request.scope === "user";
  const file = user
    ? path.join(request.home, "Library", "LaunchAgents", `${label}.plist`)
    : path.join("/Library/LaunchDaemons", `${label}.plist`);
  const domain = user ? `gui/${request.uid}` : "system";
  const args = [request.node, request.cli, "workers", "run", "--config", request.configFile];
  const body = [
    key("Label"),
    string(label),
    key("ProgramArguments"),
    "<array>",
    ...args.map((arg) => `  ${string(arg)}`),
    "</array>",
    key("EnvironmentVariables"),
    "<dict>",
    // The supervisor rotates the file its output goes to when told which one it is.
    ...sortedEntries({ ...request.env, [OUTPUT_FILE_ENV]: supervisorLog(request.logDir) }).flatMap(
      ([name, value]) => [`  ${key(name)}`, `  ${string(value)}`],
    ),
    "</dict>",
    ...(user ? [] : [key("UserName"), string(request.user)]),
    key("RunAtLoad"),
    "<true/>",
    key("KeepAlive"),
    "<dict>",
    `  ${key("SuccessfulExit")}`,
    "  <false/>",
    "</dict>",
    key("ThrottleInterval"),
    "<integer>5</integer>",
    key("ExitTimeOut"),
    `<integer>${stopTimeout(request)}</integer>`,
    key("ProcessType"),
    string("Background"),
    // One file for both, the one `workers start --supervise` uses: `workers logs --supervisor` reads it.
    key("StandardOutPath"),
    string(supervisorLog(request.logDir)),
    key("StandardErrorPath"),
    string(supervisorLog(request.logDir)),
  ];
  const content = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    `<!-- ${SERVICE_MARKER} -->`,
    "<!-- Written by `openwork workers install-service`; `openwork workers uninstall-service` removes it. -->",
    '<plist version="1.0">',
    "<dict>",
    ...body.map((line) => `  ${line}`),
    "</dict>",
    "</plist>",
    "",
  ].join("\n");
  return {
    kind: "launchd",
    name: label,
    file,
    content,
    activate: [["launchctl", "bootstrap", domain, file]],
    deactivate: [["launchctl", "bootout", `${domain}/${label}`]],
    afterRemove: [],
    logDir: request.logDir,
  };
}

const XML_ENTITIES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

export function xmlEscape(value: string): string {
  return value.replace(/[&<>"']/g, (c) => XML_ENTITIES[c] as string);
}

function key(name: string): string {
  return `<key>${xmlEscape(name)}</key>`;
}

function string(value: string): string {
  return `<string>${xmlEscape(value)}</string>`;
}

// --- shared ------------------------------------------------------------------

function stopTimeout(request: ServiceRequest): number {
  return Math.ceil(request.stopTimeoutSec) + 15;
}

function sortedEntries(env: Record<string, string>): [string, string][] {
  return Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** What neither format can carry faithfully is refused up front, not written half-right. */
function validate(request: ServiceRequest): void {
  const bad = (what: string, hint: string): never => {
    throw new OpenworkError(`workers install-service: ${what}`, {
      code: "service_invalid_request",
      hint,
      exitCode: ExitCode.usage,
    });
  };
  for (const [what, file] of [
    ["config file", request.configFile],
    ["node", request.node],
    ["entry script", request.cli],
    ["home", request.home],
    ["log directory", request.logDir],
  ] as const) {
    if (!path.isAbsolute(file))
      bad(`the ${what} path ${JSON.stringify(file)} is not absolute`, "pass an absolute path");
  }
  const values = [request.configFile, request.node, request.cli, request.home, request.logDir, request.user];
  for (const [name, value] of Object.entries(request.env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
      bad(`${JSON.stringify(name)} is not a variable name`, "drop it");
    values.push(value);
  }
  for (const value of values) {
    if (/[\u0000-\u001f\u007f]/.test(value)) {
      bad(`${JSON.stringify(value)} contains a control character`, "rename the file or directory");
    }
  }
  if (request.scope === "system" && !/^[A-Za-z0-9_][A-Za-z0-9_.@-]*$/.test(request.user)) {
    bad(`${JSON.stringify(request.user)} is not a user name a service can run as`, "pass a plain user name");
  }
  if (!Number.isFinite(request.stopTimeoutSec) || request.stopTimeoutSec < 0) {
    bad(`the stop timeout ${request.stopTimeoutSec} is not a number of seconds`, "pass 0 or more");
  }
}

/** The content of an openwork file at `file`, undefined when there is none; a foreign file is refused. */
async function readManaged(file: string, action: "overwrite" | "remove"): Promise<string | undefined> {
  let content: string;
  try {
    content = await readFile(file, "utf8");
  } catch (error) {
    const code = systemErrorCode(error);
    if (code === "ENOENT") return undefined;
    if (code !== "EISDIR") throw error;
    content = "";
  }
  if (content.includes(SERVICE_MARKER)) return content;
  throw new OpenworkError(`refusing to ${action} ${file}: it was not written by openwork`, {
    code: "service_file_foreign",
    hint: `remove ${file} yourself if it is no longer wanted, or choose another config file (the service is named after it)`,
  });
}

function showArgv(argv: readonly string[]): string {
  return argv.map((arg) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}

/** stderr of an execa error when there is some, else the error's message. */
function failureText(error: unknown): string {
  const stderr = (error as { stderr?: unknown } | null)?.stderr;
  const text = typeof stderr === "string" && stderr.trim() !== "" ? stderr.trim() : errorMessage(error);
  return text.replace(/\s*\n\s*/g, "; ");
}

export class ServiceCommandError extends OpenworkError {
  constructor(
    readonly argv: readonly string[],
    readonly detail: string,
    hint: string | undefined,
    cause: unknown,
  ) {
    super(`\`${showArgv(argv)}\` failed: ${detail}`, { code: "service_command_failed", hint, cause });
    this.name = "ServiceCommandError";
  }
}

async function runAll(
  commands: readonly string[][],
  run: ServiceRunner["run"],
  hint: string | undefined,
): Promise<void> {
  for (const argv of commands) {
    try {
      await run([...argv]);
    } catch (error) {
      throw new ServiceCommandError(argv, failureText(error), hint, error);
    }
  }
}

/** After a failed activation: the new file goes, or the previous one comes back (and is activated again). */
async function rollBack(
  plan: ServicePlan,
  previous: string | undefined,
  run: ServiceRunner["run"],
  error: unknown,
): Promise<unknown> {
  if (!(error instanceof ServiceCommandError)) return error;
  let hint: string;
  if (previous === undefined) {
    await runAll(plan.deactivate, run, undefined).catch(() => undefined);
    await rm(plan.file, { force: true });
    await runAll(plan.afterRemove, run, undefined).catch(() => undefined);
    hint = `${plan.file} was removed again; nothing is installed`;
  } else {
    await writeFileAtomic(plan.file, previous, { mode: 0o644 });
    try {
      await runAll(plan.activate, run, undefined);
      hint = `the previous ${plan.file} was restored and activated again`;
    } catch (again) {
      hint = `the previous ${plan.file} was restored, but activating it failed too: ${errorMessage(again)}`;
    }
  }
  return new ServiceCommandError(error.argv, error.detail, hint, error.cause);
}
