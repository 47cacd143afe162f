import { type Command, Option } from "commander";
import { UsageError } from "../../errors/errors.js";
import { printable } from "../../logging/terminal.js";
import { parseLabels } from "../../sandbox/backend.js";
import { parseCpus, parseMemory, parsePids } from "../../sandbox/limits.js";
import { sourcePolicyFrom } from "../../sources/policy.js";
import { contextFrom } from "../context.js";
import { addSidecarOverrideOptions, addSourceOption } from "../sidecar-options.js";
import { holdSignals, shutdown } from "../signals.js";

interface StartFlags {
  workspace: string;
  sandbox: string;
  detach?: boolean;
  check?: boolean;
  checkEvents?: boolean;
  image?: string;
  mount: string[];
  port?: string;
  router?: boolean;
  manifest?: string;
  replace?: boolean;
  allowRemote?: boolean;
  workspaceUpload?: string;
  workspaceGit?: string;
  dockerHost?: string;
  publishAddress?: string;
  ship?: boolean;
  registry?: string;
  constraint: string[];
  cpus?: string;
  memory?: string;
  pidsLimit?: string;
  healthTimeout: string;
  showSecrets?: boolean;
  startService?: boolean;
  opencodeBin?: string;
  routerBin?: string;
  serverBin?: string;
  allowExternal?: boolean;
  allowVersionMismatch?: boolean;
  source?: string;
  env: string[];
  envFile: string[];
  proxyEnv: boolean;
  caCert?: string;
  hostConfig: boolean;
  hostAuth: boolean;
  dryRun?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function addStartOptions(command: Command): Command {
  command
    .option(
      "--workspace <dir>",
      "the workspace directory (default: the current directory); on a remote engine engine:/path names a directory of that engine's host",
      process.cwd(),
    )
    .option(
      "--workspace-upload <dir>",
      "on a remote engine: copy this local directory (without what .gitignore names) into a volume there at the first start, and use that",
    )
    .option(
      "--workspace-git <url[#ref]>",
      "on a remote engine: clone this repository into a volume there at the first start (https, git, ssh or user@host:path; #branch)",
    )
    .option(
      "--docker-host <endpoint>",
      "the Docker engine to run on: unix://, tcp:// (TLS from DOCKER_CERT_PATH), ssh://user@host, or a docker context name (default: DOCKER_HOST, the current context)",
    )
    .option(
      "--publish-address <ip>",
      "publish the server on this address of the engine's host and reach it there (needed for a tcp:// engine; an ssh:// one is reached through an SSH tunnel otherwise)",
    )
    .option(
      "--registry <host[:port]>",
      "swarm: the registry the runtime's baked image is pushed to (through the manager) and nodes pull by digest",
    )
    .option(
      "--constraint <expr>",
      "swarm: a placement constraint in Swarm's syntax, e.g. node.hostname==node2 (repeatable)",
      collect,
      [],
    )
    .option(
      "--ship",
      "keep the runtime and its state in volumes on the engine, copied through the Engine API, even when it is local (always so for tcp:// and ssh://)",
    )
    .addOption(
      new Option(
        "--sandbox <kind>",
        "where to run: none (host processes), auto, docker, container, swarm (a service on a swarm: --docker-host names a manager)",
      )
        .choices(["none", "auto", "docker", "container", "swarm"])
        .default("none"),
    )
    .option("--image <ref>", "sandbox image to use instead of the locally built openwork-sandbox image")
    .option(
      "--mount <spec>",
      "extra mount hostPath:subpath[:ro|rw] at /workspace/extra/<subpath> (repeatable)",
      collect,
      [],
    )
    .option("--port <n>", "host port for the runtime server (default: a free port on 127.0.0.1)")
    .option("--router", "start the messaging router (opencode-router) too")
    .option(
      "--manifest <url|path>",
      "sidecar manifest to run (default: the sidecars bundled with this openwork)",
    )
    .option("--replace", "replace a running runtime of this workspace (the new one must be healthy first)")
    .option("--allow-remote", "publish the server on all interfaces instead of 127.0.0.1")
    .option("--cpus <n>", "a sandbox's CPU limit (default: 2, or fewer when the host has fewer)")
    .option("--memory <size>", "a sandbox's memory limit, e.g. 2g (default: 4g; a run over it is OOM-killed)")
    .option("--pids-limit <n>", "a sandbox's limit on processes and threads (default: 1024)")
    .option(
      "--env <KEY[=VALUE]>",
      "set a variable in the runtime's environment; KEY alone passes this shell's value (repeatable)",
      collect,
      [],
    )
    .option(
      "--env-file <file>",
      "variables from a dotenv file, mode 0600 (repeatable; a later file wins)",
      collect,
      [],
    )
    .option("--no-proxy-env", "do not pass this shell's HTTPS_PROXY/HTTP_PROXY/NO_PROXY to the runtime")
    .option(
      "--ca-cert <file>",
      "a PEM CA bundle the runtime trusts (default: this shell's NODE_EXTRA_CA_CERTS or SSL_CERT_FILE)",
    )
    .option("--no-host-config", "do not import your opencode config directory into the runtime")
    .option(
      "--no-host-auth",
      "do not import your opencode logins (auth.json, mcp-auth.json) into the runtime",
    )
    .option(
      "--dry-run",
      "resolve and check everything a start would (credentials with values masked) and start nothing",
    )
    .option("--health-timeout <seconds>", "how long each component may take to become healthy", "90")
    .option("--show-secrets", "print the tokens in the human output too (they are always in --json)")
    .option(
      "--start-service",
      "with --sandbox container or auto: start Apple's container service if it is down (container system start --enable-kernel-install)",
    );
  addSidecarOverrideOptions(command);
  addSourceOption(command);
  return command;
}

export function registerStart(program: Command): void {
  addStartOptions(
    program
      .command("start")
      .description(
        "start the runtime for a workspace: resolve and verify the sidecars, stage them, launch engine, router and\n" +
          "server on the chosen substrate, wait until healthy, then stay in the foreground (or --detach).\n" +
          "A healthy runtime already running for the workspace is returned, not duplicated (unless --replace).\n" +
          "--sandbox none runs host processes: no boundary at all between the agent and your machine. A sandbox\n" +
          "(docker, container) runs as a non-root user with no capabilities, limits, its own network, and sees only\n" +
          "the workspace, its own persisted state and the runtime read-only (docs/sandbox-boundary.md).",
      )
      .option("--detach", "return once healthy and leave the runtime running in the background")
      .option(
        "--check",
        "after starting, run the smoke checks, print the results, and stop (unless --detach)",
      )
      .option("--check-events", "with --check: also wait for a server-sent event from the engine"),
  ).action(async (flags: StartFlags, command: Command) => runStart(flags, command, flags.detach === true));

  addStartOptions(
    program
      .command("serve")
      .description(
        "start the runtime in the foreground and stream its logs until Ctrl-C (start without --detach)",
      ),
  ).action(async (flags: StartFlags, command: Command) =>
    runStart({ ...flags, detach: false, check: false }, command, false),
  );
}

async function runStart(flags: StartFlags, command: Command, detach: boolean): Promise<void> {
  const release = holdSignals();
  const ctx = await contextFrom(command);
  // What only some starts use (checks, the foreground, Apple's service) is loaded where it is used.
  const { parsePort } = await import("../../net/ports.js");
  const { parseRegistry } = await import("../../image/registry-ref.js");
  const { RunRegistry } = await import("../../runs/registry.js");
  const { planStart, startRun } = await import("../../runs/start.js");
  const { parseSandboxChoice, registerBackend } = await import("../../sandbox/select.js");
  const { renderChecks, renderConnectInfo, renderStartPlan, startDocument } = await import("../render.js");
  try {
    const healthTimeout = Number(flags.healthTimeout);
    if (!Number.isFinite(healthTimeout) || healthTimeout <= 0) {
      throw new UsageError(
        `--health-timeout must be a positive number of seconds, not "${flags.healthTimeout}"`,
      );
    }
    const port = flags.port === undefined ? undefined : parsePort(flags.port, "--port");
    if (flags.startService) {
      if (flags.sandbox === "none" || flags.sandbox === "docker") {
        throw new UsageError("--start-service applies to Apple's container (--sandbox container or auto)");
      }
      const { AppleContainerBackend } = await import("../../sandbox/apple/index.js");
      registerBackend(
        "container",
        () => new AppleContainerBackend({ probeTimeoutMs: 5000, startService: true }),
      );
    }
    const registry = new RunRegistry();
    // What the user did not type is left undefined: a new run takes the default, a running one is not compared.
    const typed = (option: string) => command.getOptionValueSource(option) === "cli";
    const options = {
      // --workspace-upload names the workspace by itself; --workspace's default (here) is then not one.
      workspace:
        (flags.workspaceUpload !== undefined || flags.workspaceGit !== undefined) && !typed("workspace")
          ? ""
          : flags.workspace,
      workspaceUpload: flags.workspaceUpload,
      workspaceGit: flags.workspaceGit,
      dockerHost: flags.dockerHost,
      publishAddress: flags.publishAddress,
      ship: flags.ship,
      imageRegistry: flags.registry === undefined ? undefined : parseRegistry(flags.registry),
      constraints: flags.constraint,
      sandbox: typed("sandbox") ? parseSandboxChoice(flags.sandbox) : undefined,
      image: flags.image,
      mounts: flags.mount,
      port,
      router: flags.router,
      replace: flags.replace === true,
      allowRemote: flags.allowRemote,
      limits: {
        cpus: flags.cpus === undefined ? undefined : parseCpus(flags.cpus),
        memoryBytes: flags.memory === undefined ? undefined : parseMemory(flags.memory),
        pids: flags.pidsLimit === undefined ? undefined : parsePids(flags.pidsLimit),
      },
      healthTimeoutMs: healthTimeout * 1000,
      runtime: { manifest: flags.manifest, sources: sourcePolicyFrom(flags) },
      registry,
      log: ctx.log,
      signal: shutdown.signal,
      extraLabels: parseLabels(process.env.OPENWORK_LABELS),
      credentials: {
        env: flags.env,
        envFiles: flags.envFile,
        proxyEnv: flags.proxyEnv,
        caCert: flags.caCert,
        hostConfig: flags.hostConfig,
        hostAuth: flags.hostAuth,
      },
    };
    if (flags.dryRun) {
      const plan = await planStart(options);
      ctx.output(plan, () => renderStartPlan(plan));
      return;
    }
    const result = await startRun(options);
    if (flags.check) {
      const { checkStartedRun } = await import("../../runs/check.js");
      const checked = await checkStartedRun({
        registry,
        result,
        log: ctx.log,
        events: flags.checkEvents === true,
        keepRunning: detach,
      });
      ctx.output(
        { ...startDocument(result, checked.record), checks: checked.checks, passed: checked.passed },
        () => renderChecks(checked.checks),
      );
      process.exitCode = checked.passed ? 0 : 1;
      return;
    }
    ctx.output(startDocument(result, result.record), () =>
      renderConnectInfo(result, flags.showSecrets === true, detach),
    );
    if (!detach) {
      const { followInForeground } = await import("../../runs/foreground.js");
      await followInForeground({
        registry,
        record: result.record,
        log: ctx.log,
        signal: shutdown.signal,
        stopOnExit: !result.reused,
        print: (line) => process.stderr.write(`[runtime] ${printable(line)}\n`),
      });
      process.exitCode = 0;
    }
  } finally {
    release();
  }
}
