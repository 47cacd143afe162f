import type Docker from "dockerode";
import { createDockerClient, type DockerEndpoint, isLocalEngine, probeDocker } from "./client.js";

/**
 * One backend's link to one Docker engine (the Docker and Swarm backends
 * each hold one): the endpoint it drives, a client made on first use, and a
 * probe bounded for where the engine is.
 */
export class EngineConnection {
  private client: Docker | undefined;

  /** `endpoint` undefined: the engine DOCKER_HOST or the docker context names */
  constructor(
    readonly endpoint: DockerEndpoint | undefined,
    docker?: Docker,
  ) {
    this.client = docker;
  }

  get docker(): Docker {
    this.client ??= createDockerClient(this.endpoint);
    return this.client;
  }

  /** Handles name the engine only when it is not the default one: old records and the default stay as they were. */
  get tag(): { engine?: string } {
    return this.endpoint ? { engine: this.endpoint.host } : {};
  }

  /** Is it answering? A remote engine (tcp, ssh) gets longer than a local socket: an ssh handshake alone can take seconds. */
  async probe(): Promise<Awaited<ReturnType<typeof probeDocker>>> {
    const remote = this.endpoint !== undefined && !isLocalEngine(this.endpoint.host);
    const probe = await probeDocker(remote ? 15_000 : 3000, this.endpoint);
    if (probe.ok) this.client ??= probe.docker;
    return probe;
  }
}
