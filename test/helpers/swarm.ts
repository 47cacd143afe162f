import { existsSync } from "node:fs";
import path from "node:path";
import type { TestContext } from "node:test";
import Docker from "dockerode";
import { execa } from "execa";
import { packageRoot } from "../../src/config/package-root.js";

/**
 * The workplace's throwaway engines (../shared/ci/swarm-2node.sh): two dockerds in their own
 * network namespaces, a manager and a worker of a real Swarm, node addresses reachable from here.
 * Fixed names and addresses: one test file at a time may hold them (the suite runs that file alone).
 */
export const SWARM_SCRIPT = path.resolve(packageRoot(), "..", "shared", "ci", "swarm-2node.sh");
export const NODE1 = { engine: "unix:///tmp/sw1/docker.sock", address: "10.77.0.11", hostname: "owsw1" };
export const NODE2 = { engine: "unix:///tmp/sw2/docker.sock", address: "10.77.0.12", hostname: "owsw2" };
export const SWARM_REGISTRY = "10.77.0.1:5000";

/**
 * Bring the two engines up from nothing (an earlier run's leftovers are taken down first). `images`
 * names what is copied into both nodes from the main engine (none: the runner must bring its own).
 * Skips without the script or root; with OPENWORK_REQUIRE_DOCKER=1 (CI) that is a failure instead.
 */
export async function swarmUpOrSkip(
  t: TestContext,
  options: { images?: string[]; registry?: boolean } = {},
): Promise<boolean> {
  const why = !existsSync(SWARM_SCRIPT)
    ? `no ${SWARM_SCRIPT}`
    : process.getuid?.() !== 0
      ? "the two-node engines need root"
      : undefined;
  if (why) {
    if (process.env.OPENWORK_REQUIRE_DOCKER === "1") throw new Error(`OPENWORK_REQUIRE_DOCKER=1 but ${why}`);
    t.skip(why);
    return false;
  }
  await swarmDown();
  const env = {
    // A name the main engine does not have copies nothing.
    OWSW_IMAGES: options.images?.join(" ") || "openwork-nothing-to-copy:none",
    OWSW_REGISTRY: options.registry ? "1" : "0",
  };
  const up = await execa("bash", [SWARM_SCRIPT, "up"], { env, reject: false, timeout: 180_000, all: true });
  if (up.exitCode !== 0) throw new Error(`swarm-2node.sh up failed (${up.exitCode}):\n${up.all}`);
  return true;
}

export async function swarmDown(): Promise<void> {
  if (!existsSync(SWARM_SCRIPT)) return;
  await execa("bash", [SWARM_SCRIPT, "down"], { reject: false, timeout: 120_000 });
}

/** `openwork start` arguments for a Swarm runtime on these engines, its workspace a directory of the nodes' host. */
export function swarmStartArgs(workspaceDir: string): string[] {
  return [
    "--sandbox",
    "swarm",
    "--docker-host",
    NODE1.engine,
    "--registry",
    SWARM_REGISTRY,
    "--allow-remote",
    "--workspace",
    `engine:${workspaceDir}`,
  ];
}

/** What a Swarm agent does for a task's image, which these nodes' agents never do (DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1): pull it by digest. */
export async function pullOnNodes(
  pinned: string,
  nodes: Array<typeof NODE1> = [NODE1, NODE2],
): Promise<void> {
  for (const node of nodes) {
    const engine = new Docker({ socketPath: node.engine.slice("unix://".length) });
    const stream = await engine.pull(pinned);
    await new Promise((resolve, reject) =>
      engine.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve(null))),
    );
  }
}
