import type Docker from "dockerode";
import { SANDBOX_PATHS } from "../../contract/layout.js";
import { type DockerEndpoint, statusCode } from "../../docker/client.js";
import { EngineConnection } from "../../docker/connection.js";
import { errorMessage, OpenworkError } from "../../errors/errors.js";
import { lineRelay } from "../../logging/logger.js";
import {
  type BackendProbe,
  LABEL_RUN,
  LABEL_RUNTIME,
  type LaunchSpec,
  type ListedSandbox,
  type LogOptions,
  type SandboxBackend,
  type SandboxHandle,
  type SandboxStatus,
} from "../backend.js";
import { defaultLimits } from "../limits.js";

/** A volume outlives a run (the workspace's state): it carries the workspace's labels, not one run's. */
function volumeLabels(labels: Record<string, string>): Record<string, string> {
  const { [LABEL_RUN]: _run, [LABEL_RUNTIME]: _runtime, ...rest } = labels;
  return rest;
}

export function serviceName(runId: string): string {
  return `openwork-${runId}`;
}

/** Where a service's task runs: the node's name and the address it is reached on. */
export interface TaskPlace {
  node: string;
  address: string;
  state: string;
  containerId?: string;
}

const SERVER_PORT = 8787;
/** Task states after which nothing of the task runs on its node. */
const ENDED = new Set(["shutdown", "complete", "failed", "rejected", "orphaned", "remove"]);

/**
 * One Docker Swarm service per run, with one replica, driven through a
 * manager's Engine API. The runtime is baked into the image (nodes cannot be
 * handed files any other way); the server is published in mode=host on the
 * node that runs the task (no routing mesh: docs/swarm.md); the same limits,
 * dropped capabilities, read-only root and non-root user as a Docker sandbox
 * (Swarm cannot set no-new-privileges: the user is never root and no file
 * in the image is setuid-root-writable, see docs/swarm.md); a health check
 * that runs the server's own probe; Swarm restarts the task when it dies.
 */
export class SwarmBackend implements SandboxBackend {
  readonly kind = "swarm" as const;
  private readonly engine: EngineConnection;

  constructor(endpoint?: DockerEndpoint) {
    this.engine = new EngineConnection(endpoint);
  }

  get endpoint(): DockerEndpoint | undefined {
    return this.engine.endpoint;
  }

  get docker(): Docker {
    return this.engine.docker;
  }

  private get engineTag(): { engine?: string } {
    return this.engine.tag;
  }

  async probe(): Promise<BackendProbe> {
    const probe = await this.engine.probe();
    if (!probe.ok) return { ok: false, reason: probe.reason };
    const info = (await probe.docker.info()) as {
      Swarm?: { LocalNodeState?: string; ControlAvailable?: boolean };
    };
    if (info.Swarm?.LocalNodeState !== "active")
      return {
        ok: false,
        reason: `the engine at ${probe.endpoint.host} is not part of a swarm (docker swarm init)`,
      };
    if (!info.Swarm.ControlAvailable)
      return {
        ok: false,
        reason: `the engine at ${probe.endpoint.host} is a swarm worker; services are made through a manager`,
      };
    return { ok: true, version: probe.version };
  }

  async launch(spec: LaunchSpec): Promise<SandboxHandle> {
    const swarm = spec.swarm;
    if (!swarm)
      throw new OpenworkError("a Swarm launch needs its service settings", { code: "launch_failed" });
    const limits = spec.limits ?? defaultLimits();
    const storage = spec.storage;
    const mounts: Array<Record<string, unknown>> = [
      { Type: "tmpfs", Target: "/tmp", TmpfsOptions: { SizeBytes: 512 * 1024 * 1024, Mode: 0o1777 } },
    ];
    if (storage) {
      mounts.push({
        Type: "volume",
        Source: storage.persistVolume,
        Target: SANDBOX_PATHS.persist,
        VolumeOptions: { Labels: volumeLabels(spec.labels) },
      });
      mounts.push(
        storage.workspace.type === "bind"
          ? { Type: "bind", Source: storage.workspace.source, Target: SANDBOX_PATHS.workspace }
          : {
              Type: "volume",
              Source: storage.workspace.source,
              Target: SANDBOX_PATHS.workspace,
              VolumeOptions: { Labels: volumeLabels(spec.labels) },
            },
      );
    }
    const port = spec.ports[0];
    try {
      const service = await this.docker.createService({
        Name: serviceName(spec.runId),
        Labels: spec.labels,
        TaskTemplate: {
          ContainerSpec: {
            Image: spec.image,
            Labels: spec.labels,
            // Secrets travel only here (and in Swarm's own store), never in a command line.
            Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
            User: spec.user,
            ReadOnly: true,
            Init: true,
            CapabilityDrop: ["ALL"],
            Mounts: mounts,
            StopGracePeriod: 10e9,
            Healthcheck: {
              // The server's own liveness probe, from inside, with the runtime's own Node.
              Test: [
                "CMD",
                swarm.nodeBinary,
                "-e",
                `fetch("http://127.0.0.1:${SERVER_PORT}/system/health").then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`,
              ],
              Interval: 5e9,
              Timeout: 4e9,
              Retries: 3,
              StartPeriod: 120e9,
            },
            Secrets: swarm.secrets.map((secret) => ({
              SecretID: secret.id,
              SecretName: secret.name,
              File: { Name: secret.target, UID: String(swarm.uid), GID: String(swarm.gid), Mode: 0o400 },
            })),
          },
          Resources: {
            Limits: {
              NanoCPUs: Math.round(limits.cpus * 1e9),
              MemoryBytes: limits.memoryBytes,
              Pids: limits.pids,
            },
          },
          RestartPolicy: { Condition: "any", Delay: 1e9, MaxAttempts: 0 },
          Placement: { Constraints: swarm.constraints },
          LogDriver: { Name: "json-file", Options: { "max-size": "10m", "max-file": "3" } },
        },
        Mode: { Replicated: { Replicas: 1 } },
        UpdateConfig: {
          Parallelism: 1,
          // A host-mode port cannot be bound twice on one node: the new task starts after the old stops.
          Order: "stop-first",
          FailureAction: "rollback",
          Monitor: 20e9,
          MaxFailureRatio: 0,
        },
        RollbackConfig: { Parallelism: 1, Order: "stop-first", FailureAction: "pause", Monitor: 20e9 },
        EndpointSpec: {
          Mode: "vip",
          Ports: port
            ? [{ Protocol: "tcp", TargetPort: port.container, PublishedPort: port.host, PublishMode: "host" }]
            : [],
        },
      } as unknown as Docker.CreateServiceOptions);
      return { kind: "swarm", id: (service as { id: string }).id, ...this.engineTag };
    } catch (error) {
      throw new OpenworkError(`the swarm manager refused the service: ${errorMessage(error)}`, {
        code: "launch_failed",
        cause: error,
      });
    }
  }

  /** The service's running task and its node (the task that is current, or the newest). */
  async place(handle: SandboxHandle): Promise<TaskPlace | undefined> {
    const tasks = (await this.docker.listTasks({ filters: { service: [handle.id] } })) as Array<{
      NodeID?: string;
      DesiredState?: string;
      CreatedAt?: string;
      Status?: { State?: string; ContainerStatus?: { ContainerID?: string } };
    }>;
    const current = tasks
      .filter((task) => task.DesiredState === "running")
      .sort((a, b) => String(b.CreatedAt).localeCompare(String(a.CreatedAt)))[0];
    if (!current?.NodeID) return undefined;
    const node = (await this.docker.getNode(current.NodeID).inspect()) as {
      Description?: { Hostname?: string };
      Status?: { Addr?: string };
    };
    return {
      node: node.Description?.Hostname ?? current.NodeID,
      address: node.Status?.Addr ?? "",
      state: current.Status?.State ?? "unknown",
      ...(current.Status?.ContainerStatus?.ContainerID
        ? { containerId: current.Status.ContainerStatus.ContainerID }
        : {}),
    };
  }

  /**
   * Why Swarm does not run the service's task, when it says so: no node fits (a pending task
   * with its scheduler's reason), or tasks keep being rejected or failing (the newest's error).
   */
  async taskProblem(handle: SandboxHandle): Promise<string | undefined> {
    const tasks = (await this.docker.listTasks({ filters: { service: [handle.id] } })) as Array<{
      CreatedAt?: string;
      Status?: { State?: string; Err?: string; Message?: string };
    }>;
    const pending = tasks.find((task) => task.Status?.State === "pending" && task.Status.Err);
    if (pending?.Status?.Err) return pending.Status.Err;
    const failed = tasks
      .filter((task) => task.Status?.State === "rejected" || task.Status?.State === "failed")
      .sort((a, b) => String(b.CreatedAt).localeCompare(String(a.CreatedAt)));
    if (failed.length >= 2)
      return failed[0]?.Status?.Err ?? failed[0]?.Status?.Message ?? "tasks keep failing";
    return undefined;
  }

  /**
   * A service that exists is running as far as a run goes: Swarm itself restarts its task when
   * it dies (health then says whether it answers); only a removed service is gone.
   */
  async status(handle: SandboxHandle): Promise<SandboxStatus> {
    try {
      const info = (await this.docker.getService(handle.id).inspect()) as { CreatedAt?: string };
      const place = await this.place(handle).catch(() => undefined);
      return {
        state: "running",
        ...(info.CreatedAt ? { startedAt: info.CreatedAt } : {}),
        ...(place ? { where: place.node } : {}),
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
    const service = this.docker.getService(handle.id);
    const stdout = lineRelay((line) => onLine("stdout", line));
    const stderr = lineRelay((line) => onLine("stderr", line));
    const stream = (await service.logs({
      stdout: true,
      stderr: true,
      follow: options.follow === true,
      ...(options.tail === undefined ? {} : { tail: options.tail }),
    })) as unknown as NodeJS.ReadableStream & { destroy(): void };
    this.docker.modem.demuxStream(stream, stdout, stderr);
    await new Promise<void>((resolve) => {
      const done = () => {
        stdout.end();
        stderr.end();
        resolve();
      };
      stream.on("end", done);
      stream.on("close", done);
      stream.on("error", done);
      const abort = () => {
        stream.destroy();
        done();
      };
      if (options.signal?.aborted) abort();
      else options.signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /**
   * Remove the service (its task gets SIGTERM, then SIGKILL after the grace), wait until its
   * tasks are gone, and remove the secrets made for its run; idempotent.
   */
  async stop(handle: SandboxHandle, graceMs: number): Promise<void> {
    let runId: string | undefined;
    try {
      const service = this.docker.getService(handle.id);
      const info = (await service.inspect()) as {
        Version?: { Index?: number };
        Spec?: { Labels?: Record<string, string>; Mode?: { Replicated?: { Replicas?: number } } };
      };
      runId = info.Spec?.Labels?.[LABEL_RUN];
      // Scaled to 0 first: the manager then reports when the task has really ended on its node
      // (once the service is removed its tasks vanish from the API while their containers still stop).
      if (info.Spec && info.Spec.Mode?.Replicated?.Replicas !== 0) {
        await service.update({
          ...info.Spec,
          Mode: { Replicated: { Replicas: 0 } },
          version: info.Version?.Index,
        });
      }
      const deadline = Date.now() + graceMs + 30_000;
      while (Date.now() < deadline) {
        const tasks = (await this.docker.listTasks({ filters: { service: [handle.id] } })) as Array<{
          Status?: { State?: string };
        }>;
        if (tasks.every((task) => ENDED.has(task.Status?.State ?? ""))) break;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await service.remove();
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
    if (runId) await this.removeSecrets(runId);
  }

  /** Everything is gone with stop. */
  async remove(_handle: SandboxHandle): Promise<void> {}

  /** Secrets made for a run (its imports), by its run label; idempotent. */
  async removeSecrets(runId: string): Promise<void> {
    const secrets = (await this.docker.listSecrets({
      filters: { label: [`${LABEL_RUN}=${runId}`] },
    })) as Array<{
      ID: string;
    }>;
    for (const secret of secrets)
      await this.docker
        .getSecret(secret.ID)
        .remove()
        .catch(() => {});
  }

  async list(labels: Record<string, string>): Promise<ListedSandbox[]> {
    const filters = { label: Object.entries(labels).map(([key, value]) => `${key}=${value}`) };
    const services = (await this.docker.listServices({ filters })) as Array<{
      ID: string;
      Spec?: { Labels?: Record<string, string> };
    }>;
    return services.map((service) => ({
      kind: "swarm" as const,
      id: service.ID,
      labels: service.Spec?.Labels ?? {},
      state: "running" as const,
      ...this.engineTag,
    }));
  }
}
