import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import {
  findNodeAtLocation,
  getNodeValue,
  type Node,
  type ParseError,
  parse,
  parseTree,
  printParseErrorCode,
} from "jsonc-parser";
import type { z } from "zod";
import { ExitCode, errorMessage, OpenworkError, systemErrorCode } from "../errors/errors.js";
import { positionAt } from "../files/text-position.js";
import type { SandboxChoice } from "../sandbox/select.js";
import type { SourceChoice } from "../sources/choices.js";
import {
  addressValue,
  booleanValue,
  constraintValue,
  cpusValue,
  describeValue,
  dockerHostValue,
  durationValue,
  envEntryValue,
  factorValue,
  imageValue,
  jitterValue,
  listOf,
  manifestValue,
  maxMemoryValue,
  maxRestartsValue,
  memoryValue,
  mountValue,
  nameValue,
  type PathContext,
  pathValue,
  pidsValue,
  portValue,
  registryValue,
  sandboxValue,
  sourceValue,
  workspaceValue,
} from "./config-schema.js";
import { formatDuration } from "./durations.js";
import { WORKERS_CONFIG_ENV } from "./paths.js";

export { workersTemplate } from "./config-template.js";
export { parseDuration } from "./durations.js";

/*
 * workers.json: a fleet of runtimes, one per workspace, in one JSONC file
 * (docs/workers.md). Parsing is pure and reports every problem at once, each
 * with the line and column of the offending value, so one pass of edits fixes
 * the file.
 */

/** What `openwork start` would be given for a worker; absent = the flag was not typed. */
export interface WorkerStartOptions {
  sandbox?: SandboxChoice;
  image?: string;
  /** hostPath:subpath[:ro|rw], the host path already absolute */
  mounts: string[];
  router?: boolean;
  port?: number;
  env: string[];
  /** absolute */
  envFiles: string[];
  /** an http(s) URL, or an absolute path */
  manifest?: string;
  source?: SourceChoice;
  cpus?: number;
  memoryBytes?: number;
  pids?: number;
  proxyEnv?: boolean;
  /** absolute */
  caCert?: string;
  hostConfig?: boolean;
  hostAuth?: boolean;
  healthTimeoutMs?: number;
  /** files that replace a verified sidecar (start's --opencode-bin, …), absolute; need allowExternal */
  opencodeBin?: string;
  routerBin?: string;
  serverBin?: string;
  allowExternal?: boolean;
  allowVersionMismatch?: boolean;
  /** start's --docker-host: the engine to run on */
  dockerHost?: string;
  /** start's --publish-address */
  publishAddress?: string;
  /** start's --ship */
  ship?: boolean;
  /** the workspace is a local directory copied to the engine (start's --workspace-upload) */
  uploadWorkspace?: boolean;
  /** start's --allow-remote */
  allowRemote?: boolean;
  /** start's --registry (Swarm) */
  registry?: string;
  /** start's --constraint… (Swarm) */
  constraints?: string[];
}

export interface RestartPolicy {
  maxRestarts: number;
  windowMs: number;
  minUptimeMs: number;
  backoff: { initialMs: number; maxMs: number; factor: number; jitter: number };
  /** restart a worker whose memory stays above this for maxMemoryForMs; null = no memory check */
  maxMemoryBytes: number | null;
  maxMemoryForMs: number;
}

export interface WorkerSpec {
  name: string;
  /** absolute */
  workspace: string;
  enabled: boolean;
  start: WorkerStartOptions;
  restart: RestartPolicy;
  /** 1-based line where the worker's object begins */
  line: number;
}

export interface WorkersConfig {
  /** absolute */
  file: string;
  heartbeatIntervalMs: number;
  stopTimeoutMs: number;
  workers: WorkerSpec[];
}

export interface ConfigProblem {
  file: string;
  line: number;
  column: number;
  /** JSON path like workers[1].restart.maxRestarts */
  at: string;
  /** what was expected and what was found */
  message: string;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 10 * 60_000,
  minUptimeMs: 30_000,
  backoff: { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 },
  maxMemoryBytes: null,
  maxMemoryForMs: 60_000,
};
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 5000;
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;

/** The file has problems: every one of them, one per line of the message. */
export class WorkersConfigError extends OpenworkError {
  readonly file: string;
  readonly problems: ConfigProblem[];

  constructor(file: string, problems: ConfigProblem[]) {
    const count = `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
    const lines = problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.at}: ${p.message}`);
    super([`${file}: ${count}`, ...lines].join("\n"), {
      code: "workers_config_invalid",
      exitCode: ExitCode.usage,
      hint: "fix the file and run the command again (docs/workers.md describes the format)",
    });
    this.name = "WorkersConfigError";
    this.file = file;
    this.problems = problems;
  }
}

/** No file where `workers` looked for one. */
export class WorkersConfigMissingError extends OpenworkError {
  readonly file: string;

  constructor(file: string) {
    super(`no workers config at ${file}`, {
      code: "workers_config_missing",
      exitCode: ExitCode.usage,
      hint: `create it with \`openwork workers init\`, or name yours with --config FILE or ${WORKERS_CONFIG_ENV}`,
    });
    this.name = "WorkersConfigMissingError";
    this.file = file;
  }
}

/** Read and parse the fleet file. */
export async function loadWorkersConfig(file: string): Promise<WorkersConfig> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, "utf8");
  } catch (error) {
    if (systemErrorCode(error) === "ENOENT") throw new WorkersConfigMissingError(absolute);
    throw new OpenworkError(`cannot read the workers config ${absolute}: ${errorMessage(error)}`, {
      code: "workers_config_unreadable",
      cause: error,
    });
  }
  return parseWorkersConfig(text, absolute);
}

/** Two specs that would run the same worker the same way (reload leaves such a worker alone). */
export function sameWorker(a: WorkerSpec, b: WorkerSpec): boolean {
  return isDeepStrictEqual({ ...a, line: 0 }, { ...b, line: 0 });
}

// ---------------------------------------------------------------------------
// The walk: every object is read key by key, each value checked by its schema,
// so one bad value (or one bad worker) never hides another.

interface Walk {
  text: string;
  file: string;
  problems: ConfigProblem[];
}

function report(walk: Walk, node: Node | undefined, at: string, message: string): void {
  const { line, column } = positionAt(walk.text, node?.offset ?? 0);
  walk.problems.push({ file: walk.file, line, column, at: at || "(top level)", message });
}

function join(at: string, key: string | number): string {
  if (typeof key === "number") return `${at}[${key}]`;
  const name = /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
  return at ? `${at}.${name}` : name;
}

/** A key's value is checked by a schema, or read as a nested object by a function. */
type Field = z.ZodType | ((walk: Walk, node: Node, at: string) => unknown);
type Fields = Record<string, Field>;
type Values<F extends Fields> = {
  [K in keyof F]?: F[K] extends z.ZodType
    ? z.output<F[K]>
    : F[K] extends (...args: never[]) => infer R
      ? R
      : never;
};

interface ObjectOptions {
  required?: readonly string[];
  /** keys refused with a reason of their own rather than "unknown" */
  refused?: Readonly<Record<string, string>>;
}

function readObject<F extends Fields>(
  walk: Walk,
  node: Node,
  at: string,
  fields: F,
  options: ObjectOptions = {},
): Values<F> | undefined {
  if (node.type !== "object") {
    report(walk, node, at, `expected an object, found ${describeValue(getNodeValue(node))}`);
    return undefined;
  }
  const values: Record<string, unknown> = {};
  const seen = new Map<string, Node>();
  const allowed = Object.keys(fields);
  for (const property of node.children ?? []) {
    const [keyNode, valueNode] = property.children ?? [];
    if (!keyNode || !valueNode) continue;
    const key = String(keyNode.value);
    const keyAt = join(at, key);
    const earlier = seen.get(key);
    if (earlier) {
      const { line } = positionAt(walk.text, earlier.offset);
      report(walk, keyNode, keyAt, `key "${key}" is given twice (first at line ${line})`);
      continue;
    }
    seen.set(key, keyNode);
    const field = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (!field) {
      const refusal = options.refused?.[key];
      report(walk, keyNode, keyAt, refusal ?? unknownKeyMessage(key, allowed));
      continue;
    }
    if (typeof field === "function") {
      values[key] = field(walk, valueNode, keyAt);
      continue;
    }
    const result = field.safeParse(getNodeValue(valueNode));
    if (result.success) {
      values[key] = result.data;
      continue;
    }
    for (const issue of result.error.issues) {
      const location = issue.path.filter((part) => typeof part !== "symbol");
      const target = findNodeAtLocation(valueNode, location) ?? valueNode;
      report(walk, target, location.reduce<string>(join, keyAt), issue.message);
    }
  }
  for (const key of options.required ?? []) {
    if (!seen.has(key)) report(walk, node, join(at, key), `missing the required key "${key}"`);
  }
  return values as Values<F>;
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const squash = (name: string) => name.toLowerCase().replace(/[-_]/g, "");
  const near = allowed.find((name) => squash(name) === squash(key));
  const suggestion = near ? `; did you mean "${near}"?` : "";
  return `unknown key "${key}"${suggestion} (expected one of: ${allowed.join(", ")})`;
}

const backoffFields = {
  initial: durationValue("positive"),
  max: durationValue("positive"),
  factor: factorValue,
  jitter: jitterValue,
};

const restartFields = {
  maxRestarts: maxRestartsValue,
  window: durationValue("positive"),
  minUptime: durationValue("zero"),
  backoff: (walk: Walk, node: Node, at: string) => readObject(walk, node, at, backoffFields),
  maxMemory: maxMemoryValue,
  maxMemoryFor: durationValue("zero"),
};

type RestartValues = NonNullable<Values<typeof restartFields>>;

/** Every key a worker may set; defaults take all but name and workspace. */
function settingFields(context: PathContext) {
  return {
    enabled: booleanValue,
    sandbox: sandboxValue,
    image: imageValue,
    mounts: listOf(mountValue(context), "mounts hostPath:subpath[:ro|rw]"),
    router: booleanValue,
    port: portValue,
    env: listOf(envEntryValue, "KEY or KEY=VALUE strings"),
    envFile: listOf(pathValue(context, "a path to a dotenv file"), "paths to dotenv files"),
    manifest: manifestValue(context),
    source: sourceValue,
    cpus: cpusValue,
    memory: memoryValue,
    pidsLimit: pidsValue,
    proxyEnv: booleanValue,
    caCert: pathValue(context, "a path to a PEM CA bundle"),
    hostConfig: booleanValue,
    hostAuth: booleanValue,
    healthTimeout: durationValue("positive"),
    opencodeBin: pathValue(context, "a path to an opencode binary"),
    routerBin: pathValue(context, "a path to a router binary"),
    serverBin: pathValue(context, "a path to a runtime server bundle"),
    allowExternal: booleanValue,
    allowVersionMismatch: booleanValue,
    dockerHost: dockerHostValue,
    publishAddress: addressValue,
    ship: booleanValue,
    uploadWorkspace: booleanValue,
    allowRemote: booleanValue,
    registry: registryValue,
    constraints: listOf(constraintValue, "Swarm constraints like node.hostname==node2"),
    restart: (walk: Walk, node: Node, at: string) => readObject(walk, node, at, restartFields),
  };
}

type Settings = NonNullable<Values<ReturnType<typeof settingFields>>>;

function workerFields(context: PathContext) {
  return {
    name: nameValue,
    workspace: workspaceValue(context),
    ...settingFields(context),
  };
}

// ---------------------------------------------------------------------------

/** Parse workers.json text; `file` is where it came from (relative paths in it resolve against its directory). */
export function parseWorkersConfig(
  text: string,
  file: string,
  options: { home?: string } = {},
): WorkersConfig {
  const absolute = path.resolve(file);
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const walk: Walk = { text: source, file: absolute, problems: [] };

  const syntax: ParseError[] = [];
  parse(source, syntax, { allowTrailingComma: true, disallowComments: false });
  if (syntax.length > 0) {
    for (const error of syntax) {
      const { line, column } = positionAt(source, error.offset);
      walk.problems.push({
        file: absolute,
        line,
        column,
        at: "(syntax)",
        message: syntaxMessage(source, error),
      });
    }
    throw new WorkersConfigError(absolute, walk.problems);
  }
  const root = parseTree(source, [], { allowTrailingComma: true, disallowComments: false });
  if (!root) {
    report(walk, undefined, "", "expected an object with a workers list, found an empty file");
    throw new WorkersConfigError(absolute, walk.problems);
  }

  const context: PathContext = { dir: path.dirname(absolute), home: options.home ?? os.homedir() };
  const settings = settingFields(context);
  const top = readObject(
    walk,
    root,
    "",
    {
      heartbeatInterval: durationValue("positive"),
      stopTimeout: durationValue("positive"),
      defaults: (w: Walk, node: Node, at: string) =>
        readObject(w, node, at, settings, {
          refused: {
            name: '"name" cannot be a default: each worker names itself',
            workspace: '"workspace" cannot be a default: each worker has its own (one runtime per workspace)',
          },
        }),
      workers: (_w: Walk, node: Node) => node,
    },
    { required: ["workers"] },
  );

  const workers: WorkerSpec[] = [];
  const workersNode = top?.workers;
  if (workersNode && workersNode.type !== "array") {
    report(
      walk,
      workersNode,
      "workers",
      `expected a list of workers, found ${describeValue(getNodeValue(workersNode))}`,
    );
  } else if (workersNode) {
    const fields = workerFields(context);
    const seen = new Seen();
    (workersNode.children ?? []).forEach((node, index) => {
      const before = walk.problems.length;
      const at = `workers[${index}]`;
      const own = readObject(walk, node, at, fields, { required: ["name", "workspace"] });
      if (!own) return;
      const line = positionAt(source, node.offset).line;
      const merged = mergeSettings(top?.defaults ?? {}, own);
      checkWorker(walk, node, at, own, merged);
      seen.check(walk, node, at, line, own, merged);
      if (walk.problems.length === before && own.name !== undefined && own.workspace !== undefined)
        workers.push(workerSpec(own.name, own.workspace, merged, line));
    });
  }

  if (walk.problems.length > 0) {
    walk.problems.sort((a, b) => a.line - b.line || a.column - b.column);
    throw new WorkersConfigError(absolute, walk.problems);
  }
  return {
    file: absolute,
    heartbeatIntervalMs: top?.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
    stopTimeoutMs: top?.stopTimeout ?? DEFAULT_STOP_TIMEOUT_MS,
    workers,
  };
}

/** jsonc-parser's error codes (by name: the enum is const), in words. */
const SYNTAX_WORDING: Readonly<Record<string, string>> = {
  InvalidSymbol: "an unexpected character",
  InvalidNumberFormat: "a malformed number",
  PropertyNameExpected: "expected a key in double quotes",
  ValueExpected: "expected a value",
  ColonExpected: "expected a colon after the key",
  CommaExpected: "expected a comma",
  CloseBraceExpected: 'expected "}" to close the object',
  CloseBracketExpected: 'expected "]" to close the list',
  EndOfFileExpected: "expected the end of the file after the top-level object",
  InvalidCommentToken: "a malformed comment",
  UnexpectedEndOfComment: "a comment that is never closed",
  UnexpectedEndOfString: "a string that is never closed",
  UnexpectedEndOfNumber: "a number that ends too early",
  InvalidUnicode: "an invalid \\u escape",
  InvalidEscapeCharacter: "an invalid escape in a string",
  InvalidCharacter: "a character not allowed in a string",
};

function syntaxMessage(text: string, error: ParseError): string {
  const token = text.slice(error.offset, error.offset + Math.max(1, error.length)).split("\n")[0] ?? "";
  const shown = token.startsWith('"') ? token : JSON.stringify(token);
  const found = error.offset >= text.length ? "the end of the file" : shown;
  const code = printParseErrorCode(error.error);
  return `${SYNTAX_WORDING[code] ?? "invalid JSONC"}, found ${found} (${code})`;
}

/** Defaults under a worker: the worker's keys win; restart (and its backoff) field by field. */
function mergeSettings(defaults: Settings, own: Settings): Settings {
  const merged: Settings = { ...defaults, ...own };
  if (defaults.restart || own.restart) {
    const restart: RestartValues = { ...defaults.restart, ...own.restart };
    if (defaults.restart?.backoff || own.restart?.backoff)
      restart.backoff = { ...defaults.restart?.backoff, ...own.restart?.backoff };
    merged.restart = restart;
  }
  return merged;
}

const SANDBOX_ONLY = {
  cpus: "cpus limits a sandbox",
  memory: "memory limits a sandbox",
  pidsLimit: "pidsLimit limits a sandbox",
  image: "image applies to a sandbox",
  mounts: "mounts need a sandbox",
  publishAddress: "publishAddress applies to a Docker sandbox",
  uploadWorkspace: "uploadWorkspace applies to a Docker engine",
} as const;

/** The rules that span keys, checked after defaults are merged (the same rules as `openwork start`). */
function checkWorker(walk: Walk, node: Node, at: string, own: Settings, merged: Settings): void {
  // As for `start`: naming an engine (or shipping) means Docker when no sandbox is said.
  const sandbox = merged.sandbox ?? (merged.dockerHost !== undefined || merged.ship ? "docker" : "none");
  if (sandbox === "none") {
    const how = own.sandbox
      ? 'its sandbox is "none"'
      : merged.sandbox
        ? 'its sandbox is "none" (from defaults)'
        : 'its sandbox is "none" (the default)';
    for (const [key, rule] of Object.entries(SANDBOX_ONLY) as [keyof typeof SANDBOX_ONLY, string][]) {
      const value = merged[key];
      if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) continue;
      const fromDefaults = own[key] === undefined ? " (from defaults)" : "";
      report(
        walk,
        findNodeAtLocation(node, [key]) ?? findNodeAtLocation(node, ["sandbox"]) ?? node,
        join(at, key),
        `${rule}${fromDefaults}, but ${how}: host processes, which nothing limits or isolates; remove ${key} or set sandbox to docker, container or auto`,
      );
    }
  }
  const backoff = merged.restart?.backoff;
  const initial = backoff?.initial ?? DEFAULT_RESTART_POLICY.backoff.initialMs;
  const max = backoff?.max ?? DEFAULT_RESTART_POLICY.backoff.maxMs;
  if (max < initial) {
    report(
      walk,
      findNodeAtLocation(node, ["restart", "backoff", "max"]) ??
        findNodeAtLocation(node, ["restart", "backoff", "initial"]) ??
        node,
      `${at}.restart.backoff.max`,
      `expected restart.backoff.max of at least restart.backoff.initial (${formatDuration(initial)}), found ${formatDuration(max)}`,
    );
  }
}

/** Names, workspaces (of enabled workers) and fixed ports are each one worker's. */
class Seen {
  private readonly names = new Map<string, { name: string; line: number }>();
  private readonly workspaces = new Map<string, { name: string; line: number }>();
  private readonly ports = new Map<number, { name: string; line: number }>();

  check(
    walk: Walk,
    node: Node,
    at: string,
    line: number,
    own: Settings & { name?: string; workspace?: string },
    merged: Settings,
  ): void {
    const name = own.name ?? `#${at}`;
    if (own.name !== undefined) {
      const key = own.name.toLowerCase();
      const first = this.names.get(key);
      if (first) {
        const same = first.name === own.name ? "" : " (names are compared ignoring case)";
        report(
          walk,
          findNodeAtLocation(node, ["name"]) ?? node,
          join(at, "name"),
          `expected a name no other worker has, found "${own.name}", already the name of the worker at line ${first.line}${same}`,
        );
      } else {
        this.names.set(key, { name: own.name, line });
      }
    }
    if (own.workspace !== undefined && merged.enabled !== false) {
      const first = this.workspaces.get(own.workspace);
      if (first) {
        report(
          walk,
          findNodeAtLocation(node, ["workspace"]) ?? node,
          join(at, "workspace"),
          `expected a workspace no other enabled worker has, found ${own.workspace}, already the workspace of worker "${first.name}" (line ${first.line}): one runtime per workspace, so a second start would return the first's runtime; disable one of them ("enabled": false)`,
        );
      } else {
        this.workspaces.set(own.workspace, { name, line });
      }
    }
    if (merged.port !== undefined) {
      const first = this.ports.get(merged.port);
      const fromDefaults = own.port === undefined ? " (from defaults)" : "";
      if (first) {
        report(
          walk,
          findNodeAtLocation(node, ["port"]) ?? node,
          join(at, "port"),
          `expected a port no other worker uses, found ${merged.port}${fromDefaults}, already the port of worker "${first.name}" (line ${first.line})`,
        );
      } else {
        this.ports.set(merged.port, { name, line });
      }
    }
  }
}

function workerSpec(name: string, workspace: string, merged: Settings, line: number): WorkerSpec {
  const start: WorkerStartOptions = {
    mounts: merged.mounts ?? [],
    env: merged.env ?? [],
    envFiles: merged.envFile ?? [],
  };
  // Only what the file sets is present, so sameWorker compares what the user wrote.
  const optional: Partial<WorkerStartOptions> = {
    sandbox: merged.sandbox,
    image: merged.image,
    router: merged.router,
    port: merged.port,
    manifest: merged.manifest,
    source: merged.source,
    cpus: merged.cpus,
    memoryBytes: merged.memory,
    pids: merged.pidsLimit,
    proxyEnv: merged.proxyEnv,
    caCert: merged.caCert,
    hostConfig: merged.hostConfig,
    hostAuth: merged.hostAuth,
    healthTimeoutMs: merged.healthTimeout,
    opencodeBin: merged.opencodeBin,
    routerBin: merged.routerBin,
    serverBin: merged.serverBin,
    allowExternal: merged.allowExternal,
    allowVersionMismatch: merged.allowVersionMismatch,
    dockerHost: merged.dockerHost,
    publishAddress: merged.publishAddress,
    ship: merged.ship,
    uploadWorkspace: merged.uploadWorkspace,
    allowRemote: merged.allowRemote,
    registry: merged.registry,
    constraints: merged.constraints,
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) Object.assign(start, { [key]: value });
  }
  const restart = merged.restart ?? {};
  const backoff = restart.backoff ?? {};
  const base = DEFAULT_RESTART_POLICY;
  return {
    name,
    workspace,
    enabled: merged.enabled ?? true,
    start,
    restart: {
      maxRestarts: restart.maxRestarts ?? base.maxRestarts,
      windowMs: restart.window ?? base.windowMs,
      minUptimeMs: restart.minUptime ?? base.minUptimeMs,
      backoff: {
        initialMs: backoff.initial ?? base.backoff.initialMs,
        maxMs: backoff.max ?? base.backoff.maxMs,
        factor: backoff.factor ?? base.backoff.factor,
        jitter: backoff.jitter ?? base.backoff.jitter,
      },
      maxMemoryBytes: restart.maxMemory === undefined ? base.maxMemoryBytes : restart.maxMemory,
      maxMemoryForMs: restart.maxMemoryFor ?? base.maxMemoryForMs,
    },
    line,
  };
}
