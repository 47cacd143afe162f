import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import type Docker from "dockerode";
import { probeDocker } from "../../src/docker/client.js";
import { ensureSandboxImage, type ImageResult } from "../../src/image/build.js";
import { createLogger } from "../../src/logging/logger.js";

/**
 * The Docker engine for a test, or a skip with the reason when none answers.
 * With OPENWORK_REQUIRE_DOCKER=1 (CI) a missing engine fails the test instead.
 */
export async function dockerOrSkip(t: TestContext): Promise<Docker | undefined> {
  const probe = await probeDocker(5000);
  if (probe.ok) return probe.docker;
  if (process.env.OPENWORK_REQUIRE_DOCKER === "1") {
    throw new Error(`OPENWORK_REQUIRE_DOCKER=1 but no Docker engine answers: ${probe.reason}`);
  }
  t.skip(`no Docker engine: ${probe.reason}`);
  return undefined;
}

/** Shared across test files (each runs in its own process): one lock, so the image is built once. */
export const SHARED_TEST_DIR =
  process.env.OPENWORK_TEST_SHARED_DIR ?? path.join(os.tmpdir(), "openwork-test-shared");

let image: Promise<ImageResult> | undefined;

/** The sandbox image, built once for the whole suite and reused while its inputs are unchanged. */
export function sharedSandboxImage(docker: Docker): Promise<ImageResult> {
  image ??= ensureSandboxImage({
    docker,
    log: createLogger({ format: "json", level: process.env.OPENWORK_TEST_LOG ?? "warn" }),
    workDir: path.join(SHARED_TEST_DIR, "cache"),
    lockDir: path.join(SHARED_TEST_DIR, "locks"),
  });
  return image;
}
