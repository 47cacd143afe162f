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
}
