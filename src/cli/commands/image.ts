import type { Command } from "commander";
import { OpenworkError, UsageError } from "../../errors/errors.js";
import type { BaseMode } from "../../image/build.js";
import { contextFrom } from "../context.js";

export function registerImage(program: Command): void {
  const image = program
    .command("image")
    .description("the sandbox image used by --sandbox docker and container");
  image
    .command("build")
    .description(
      "build the sandbox image locally (reused while its definition is unchanged): from the public Debian base\n" +
        "where a registry answers, else from a debootstrap root file system imported into the engine",
    )
    .option("--offline", "do not try a registry: build the base from debootstrap (Linux, root)")
    .option("--online", "build only from the public base; fail if no registry answers")
    .option("--force", "build even when an image with the same inputs exists")
    .action(async (options: { offline?: boolean; online?: boolean; force?: boolean }, command: Command) => {
      const ctx = await contextFrom(command);
      const { openworkPaths } = await import("../../config/paths.js");
      const { probeDocker } = await import("../../docker/client.js");
      const { ensureSandboxImage } = await import("../../image/build.js");
      if (options.offline && options.online) {
        throw new UsageError(
          "--offline and --online exclude each other",
          "pick one, or neither to try the registry first",
        );
      }
      const probe = await probeDocker();
      if (!probe.ok) {
        throw new OpenworkError(`no Docker engine answers: ${probe.reason}`, {
          code: "docker_unavailable",
          hint: "start Docker, or set DOCKER_HOST / the docker context",
        });
      }
      const paths = openworkPaths();
      const base: BaseMode = options.offline ? "rootfs" : options.online ? "registry" : "auto";
      const result = await ensureSandboxImage({
        docker: probe.docker,
        log: ctx.log,
        base,
        force: options.force === true,
        workDir: paths.cache,
        lockDir: paths.locks,
      });
      ctx.output(result, () =>
        result.reused
          ? `${result.tag} is up to date (inputs ${result.inputsHash.slice(0, 16)}); nothing built`
          : `built ${result.tag} from ${result.base === "rootfs" ? "a debootstrap root file system" : result.baseImage} in ${(result.durationMs / 1000).toFixed(1)} s`,
      );
    });
  image
    .command("bake")
    .description(
      "bake a verified runtime into an image (the sandbox image + the sidecars + a checksum check at start):\n" +
        "what --sandbox swarm runs, and what a Kubernetes deployment would (docs/kubernetes.md)",
    )
    .option(
      "--manifest <url|path>",
      "sidecar manifest to bake (default: the sidecars bundled with this openwork)",
    )
    .option("--router", "bake the messaging router (opencode-router) in too")
    .option("--health-timeout <seconds>", "how long each component may take to become healthy", "90")
    .option("--image <ref>", "sandbox image to bake onto (default: the locally built openwork-sandbox image)")
    .option("--registry <host[:port]>", "push the baked image there and print its digest")
    .option(
      "--docker-host <endpoint>",
      "with --registry: push through this engine (one that reaches and trusts the registry, e.g. a swarm manager)",
    )
    .action(
      async (
        options: {
          manifest?: string;
          router?: boolean;
          healthTimeout: string;
          image?: string;
          registry?: string;
          dockerHost?: string;
        },
        command: Command,
      ) => {
        const ctx = await contextFrom(command);
        const { parseRegistry } = await import("../../image/registry-ref.js");
        const seconds = Number(options.healthTimeout);
        if (!Number.isFinite(seconds) || seconds <= 0)
          throw new UsageError(
            `--health-timeout must be a positive number of seconds, not "${options.healthTimeout}"`,
          );
        const registry = options.registry === undefined ? undefined : parseRegistry(options.registry);
        if (options.dockerHost !== undefined && registry === undefined)
          throw new UsageError("--docker-host names the engine a push goes through: give --registry too");
        const { resolveRequest } = await import("../../runs/prepare.js");
        const { bakeResolved, publishBaked } = await import("../../runs/swarm-launch.js");
        const { sandboxEntrypointConfig } = await import("../../entrypoint/write.js");
        const router = options.router === true;
        const resolved = await resolveRequest({
          manifest: options.manifest,
          sandboxed: true,
          router,
          log: ctx.log,
        });
        const config = sandboxEntrypointConfig({
          runtimeId: resolved.runtimeId,
          router,
          healthDeadlineS: Math.ceil(seconds),
        });
        const { baked, local } = await bakeResolved({
          resolved,
          config,
          sandboxImage: options.image,
          log: ctx.log,
        });
        let pushed: { ref: string; digest: string; pinned: string } | undefined;
        if (registry) {
          const { createDockerClient, parseDockerHost } = await import("../../docker/client.js");
          const via = options.dockerHost ? createDockerClient(parseDockerHost(options.dockerHost)) : local;
          pushed = await publishBaked({ baked, local, via, registry, log: ctx.log });
        }
        const result = { ...baked, ...(pushed ? { pushed } : {}) };
        ctx.output(result, () =>
          [
            `${baked.reused ? "up to date" : "baked"}: ${baked.tag} (runtime ${baked.runtimeId}, manifest ${baked.manifestDigest.slice(0, 19)}…)`,
            ...(pushed ? [`pushed: ${pushed.pinned}`] : []),
          ].join("\n"),
        );
      },
    );
}
