import type Docker from "dockerode";
import { SANDBOX_PATHS } from "../../contract/layout.js";
import { type DockerEndpoint, statusCode } from "../../docker/client.js";
import { EngineConnection } from "../../docker/connection.js";
import { errorMessage, OpenworkError } from "../../errors/errors.js";
import { lineRelay } from "../../logging/logger.js";
import { dockerMounts } from "../../mounts/docker-binds.js";
import type {
  BackendProbe,
  CreatedSandbox,
  LaunchSpec,
  ListedSandbox,
  LogOptions,
  SandboxBackend,
  SandboxHandle,
  SandboxStatus,
} from "../backend.js";
import { LABEL_MANAGED } from "../backend.js";
import { defaultLimits } from "../limits.js";

export function containerName(runId: string): string {
  return `openwork-${runId}`;
}

/** The settings that make a container a sandbox (docs/sandbox-boundary.md), for the tests to hold us to. */
export const SANDBOX_TMPFS = { "/tmp": "rw,nosuid,nodev,mode=1777,size=512m" };

/**
 * One Docker container per run, driven through the Engine API. The workspace
 * is bound at /workspace, the persisted directory at /persist, the staged
 * runtimes read-only at /runtimes; ports are published on the given host IP
 * only; `Init` reaps the runtime's children. Every container is a sandbox:
 * no capabilities, no new privileges, a non-root user, a read-only root file
 * system (with a tmpfs /tmp), CPU/memory/process limits, a bounded log, and
 * a network of its own so that no run reaches another.
 */
export class DockerBackend implements SandboxBackend {
  readonly kind = "docker" as const;
  private readonly engine: EngineConnection;

  constructor(docker?: Docker, endpoint?: DockerEndpoint) {
    this.engine = new EngineConnection(endpoint, docker);
  }

  /** the engine this backend drives; undefined: the one DOCKER_HOST or the docker context names */
  get endpoint(): DockerEndpoint | undefined {
    return this.engine.endpoint;
  }

  /** The Engine API client (for what lives beside the sandbox on its engine: volumes, images, helpers). */
  get docker(): Docker {
    return this.engine.docker;
  }

  private get engineTag(): { engine?: string } {
    return this.engine.tag;
  }

  async probe(): Promise<BackendProbe> {
    const probe = await this.engine.probe();
    return probe.ok ? { ok: true, version: probe.version } : { ok: false, reason: probe.reason };
  }

  async launch(spec: LaunchSpec): Promise<SandboxHandle> {
    return (await this.create(spec)).start();
  }

  async create(spec: LaunchSpec): Promise<CreatedSandbox> {
    try {
      await this.docker.getImage(spec.image).inspect();
    } catch {
      throw new OpenworkError(`the image ${spec.image} is not on the Docker engine`, {
        code: "image_missing",
        hint: "build it with `openwork image build`, or pass --image with an image the engine has",
      });
    }
    const exposed: Record<string, object> = {};
    const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
    for (const port of spec.ports) {
      exposed[`${port.container}/tcp`] = {};
      bindings[`${port.container}/tcp`] = [{ HostIp: port.hostIp, HostPort: String(port.host) }];
    }
    const limits = spec.limits ?? defaultLimits();
    const network = await this.createNetwork(spec);
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: containerName(spec.runId),
        Image: spec.image,
        Cmd: spec.command,
        // Secrets travel only here, never in Cmd; Env is never logged.
        Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
        Labels: spec.labels,
        User: spec.user,
        WorkingDir: SANDBOX_PATHS.persist,
        ExposedPorts: exposed,
        HostConfig: {
          Init: true,
          // Mounts, not Binds: a Binds entry is colon-separated, so a path with a colon could not be said there.
          Mounts: spec.storage
            ? shippedMounts(spec)
            : dockerMounts([
                {
                  hostPath: spec.workspace,
                  containerPath: SANDBOX_PATHS.workspace,
                  readOnly: false,
                  spec: "workspace",
                },
                {
                  hostPath: spec.persistDir,
                  containerPath: SANDBOX_PATHS.persist,
                  readOnly: false,
                  spec: "persist",
                },
                // What the sandbox executes, read-only: it can change none of it, nor reach the store through it.
                {
                  hostPath: spec.runtimesDir,
                  containerPath: SANDBOX_PATHS.runtimes,
                  readOnly: true,
                  spec: "runtimes",
                },
                ...(spec.imports
                  ? [
                      {
                        hostPath: spec.imports,
                        containerPath: SANDBOX_PATHS.imports,
                        readOnly: true,
                        spec: "imports",
                      },
                    ]
                  : []),
                ...spec.mounts,
              ]),
          PortBindings: bindings,
          NetworkMode: network,
          // The host as seen from the sandbox, by the name Docker Desktop gives it (a proxy on the host's
          // loopback is rewritten to it: src/credentials/proxy.ts).
          ExtraHosts: ["host.docker.internal:host-gateway"],
          RestartPolicy: { Name: "no" },
          // The runtime's output is bounded like every log we keep: 3 files of 10 MiB.
          LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "3" } },
          // Nothing the runtime does needs a capability (it binds ports above 1024 as a plain user).
          CapDrop: ["ALL"],
          SecurityOpt: ["no-new-privileges"],
          ReadonlyRootfs: true,
          Tmpfs: SANDBOX_TMPFS,
          Memory: limits.memoryBytes,
          MemorySwap: limits.memoryBytes,
          NanoCpus: Math.round(limits.cpus * 1e9),
          PidsLimit: limits.pids,
        },
      });
    } catch (error) {
      await this.removeNetwork(network);
      throw new OpenworkError(`the Docker engine refused to create the container: ${errorMessage(error)}`, {
        code: "launch_failed",
        cause: error,
      });
    }
    const started = async (): Promise<SandboxHandle> => {
      // Register the wait before starting: an immediate exit is seen, never missed.
      // (The request goes out now; its answer arrives when the container exits.)
      const exited = (container.wait({ condition: "next-exit" }) as Promise<{ StatusCode: number }>).then(
        (result) => result.StatusCode,
        () => -1,
      );
      try {
        await container.start();
      } catch (error) {
        await container.remove({ force: true }).catch(() => {});
        await this.removeNetwork(network);
        throw new OpenworkError(`the container did not start: ${errorMessage(error)}`, {
          code: "launch_failed",
          cause: error,
        });
      }
      return { kind: "docker", id: container.id, exited, ...this.engineTag };
    };
    return { kind: "docker", id: container.id, start: started, ...this.engineTag };
  }

  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    try {
      const info = await this.docker.getContainer(handle.id).inspect();
      return {
        state: info.State.Running ? "running" : "exited",
        exitCode: info.State.Running ? undefined : info.State.ExitCode,
        ...(info.State.OOMKilled ? { oomKilled: true } : {}),
        startedAt: info.State.StartedAt,
      };
    } catch (error) {
      if (statusCode(error) === 404) return { state: "missing" };
      throw error;
    }
  }

  async logs(
    handle: SandboxHandle,
    options: LogOptions,
    onLine: (stream: "stdout" | "stderr", line: string) => void,
  ): Promise<void> {
    const container = this.docker.getContainer(handle.id);
    const stdout = lineRelay((line) => onLine("stdout", line));
    const stderr = lineRelay((line) => onLine("stderr", line));
    const common = {
      stdout: true,
      stderr: true,
      ...(options.tail === undefined ? {} : { tail: options.tail }),
    };
    if (!options.follow) {
      const buffer = (await container.logs({ ...common, follow: false })) as unknown as Buffer;
      demuxBuffer(buffer, stdout, stderr);
      stdout.end();
      stderr.end();
      return;
    }
    const stream = (await container.logs({ ...common, follow: true })) as unknown as NodeJS.ReadableStream & {
      destroy(): void;
    };
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve) => {
      let finished = false;
      const done = () => {
        if (finished) return;
        finished = true;
        options.signal?.removeEventListener("abort", abort);
        stdout.end();
        stderr.end();
        resolve();
      };
      const abort = () => {
        stream.destroy();
        done();
      };
      stream.on("end", done);
      stream.on("close", done);
      stream.on("error", done);
      if (options.signal?.aborted) abort();
      else options.signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /**
   * Run a command in a running sandbox, as its own user, and return its output (or pass each
   * line to `onLine`); a non-zero exit is an error with that output. For what lives on an engine
   * whose files we cannot reach otherwise (a shipped run's logs, its housekeeping). An abort ends
   * the wait (the command is ended with the stream).
   */
  async exec(
    handle: SandboxHandle,
    command: string[],
    options: { onLine?: (line: string) => void; signal?: AbortSignal | undefined } = {},
  ): Promise<{ output: string }> {
    const container = this.docker.getContainer(handle.id);
    const exec = await container.exec({ Cmd: command, AttachStdout: true, AttachStderr: true });
    const stream = (await exec.start({ hijack: true, stdin: false })) as NodeJS.ReadableStream & {
      destroy(): void;
    };
    let output = "";
    const collect = lineRelay((line) => {
      if (options.onLine) options.onLine(line);
      else output += `${line}\n`;
    });
    this.docker.modem.demuxStream(stream, collect, collect);
    let aborted = false;
    await new Promise<void>((resolve) => {
      const abort = () => {
        aborted = true;
        stream.destroy();
        resolve();
      };
      stream.on("end", resolve);
      stream.on("close", resolve);
      stream.on("error", () => resolve());
      if (options.signal?.aborted) abort();
      else options.signal?.addEventListener("abort", abort, { once: true });
    });
    collect.end();
    if (aborted) return { output };
    const info = await exec.inspect();
    if (info.ExitCode !== 0 && info.ExitCode !== null)
      throw new OpenworkError(
        `${command.join(" ")} failed in the sandbox (code ${info.ExitCode}): ${output.trim()}`,
        { code: "exec_failed" },
      );
    return { output };
  }

  async stop(handle: SandboxHandle, graceMs: number): Promise<void> {
    try {
      // The engine sends SIGTERM, then SIGKILL after t seconds.
      await this.docker.getContainer(handle.id).stop({ t: Math.max(1, Math.ceil(graceMs / 1000)) });
    } catch (error) {
      const code = statusCode(error);
      if (code === 304 || code === 404) return;
      throw error;
    }
  }

  async remove(handle: SandboxHandle): Promise<void> {
    let network: string | undefined;
    try {
      const container = this.docker.getContainer(handle.id);
      network = (await container.inspect()).HostConfig.NetworkMode;
      await container.remove({ force: true, v: true });
    } catch (error) {
      const code = statusCode(error);
      if (code !== 404 && code !== 409) throw error;
    }
    if (network) await this.removeNetwork(network);
  }

  /**
   * A bridge network for this run alone (named like its container): a run's
   * server cannot be reached from another run's sandbox, and containers of
   * other projects on the default bridge cannot reach it either.
   */
  private async createNetwork(spec: LaunchSpec): Promise<string> {
    const name = containerName(spec.runId);
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: "bridge",
        CheckDuplicate: true,
        Labels: spec.labels,
        Options: { "com.docker.network.bridge.enable_icc": "false" },
      });
    } catch (error) {
      // 409: left by an earlier attempt of this same run id; it is this run's network.
      if (statusCode(error) !== 409)
        throw new OpenworkError(
          `the Docker engine refused to create the run's network: ${errorMessage(error)}`,
          {
            code: "launch_failed",
            cause: error,
          },
        );
    }
    return name;
  }

  /** Remove a run's own network (only one of ours: named openwork-…, labelled managed); idempotent. */
  private async removeNetwork(name: string): Promise<void> {
    if (!name.startsWith(containerName(""))) return;
    try {
      const network = this.docker.getNetwork(name);
      const info = (await network.inspect()) as { Labels?: Record<string, string> };
      if (info.Labels?.[LABEL_MANAGED] !== "1") return;
      await network.remove();
    } catch (error) {
      const code = statusCode(error);
      if (code !== 404 && code !== 409) throw error;
    }
  }

  async list(labels: Record<string, string>): Promise<ListedSandbox[]> {
    const filters = { label: Object.entries(labels).map(([key, value]) => `${key}=${value}`) };
    const containers = await this.docker.listContainers({ all: true, filters });
    return containers.map((info) => ({
      kind: "docker" as const,
      id: info.Id,
      ...this.engineTag,
      labels: info.Labels,
      state: info.State === "running" ? "running" : "exited",
    }));
  }
}

/**
 * A shipped run's mounts: volumes only (and a directory of the engine's own host for
 * `--workspace engine:/path`); nothing of this machine.
 */
function shippedMounts(spec: LaunchSpec): Docker.MountSettings[] {
  const storage = spec.storage;
  if (!storage) return [];
  if (spec.imports || spec.mounts.length > 0 || !storage.runtimesVolume)
    throw new OpenworkError(
      "a shipped run binds no directory of this machine (imports and --mount included)",
      {
        code: "launch_failed",
      },
    );
  // NoCopy: an empty volume would otherwise take the image's directory there (owner and mode
  // included), undoing the ownership given to the sandbox's user when it was made.
  const volume = (source: string, target: string, readOnly = false): Docker.MountSettings => ({
    Type: "volume",
    Source: source,
    Target: target,
    ReadOnly: readOnly,
    // (the typings want every field; the engine takes NoCopy alone)
    VolumeOptions: { NoCopy: true } as Docker.MountSettings["VolumeOptions"],
  });
  return [
    storage.workspace.type === "volume"
      ? volume(storage.workspace.source, SANDBOX_PATHS.workspace)
      : { Type: "bind", Source: storage.workspace.source, Target: SANDBOX_PATHS.workspace },
    volume(storage.persistVolume, SANDBOX_PATHS.persist),
    volume(storage.runtimesVolume, SANDBOX_PATHS.runtimes, true),
  ];
}

/** Split a non-TTY log buffer (8-byte frame headers: stream, 0, 0, 0, size) into stdout and stderr. */
function demuxBuffer(buffer: Buffer, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): void {
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const kind = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    const payload = buffer.subarray(offset + 8, offset + 8 + size);
    (kind === 2 ? stderr : stdout).write(payload);
    offset += 8 + size;
  }
}
