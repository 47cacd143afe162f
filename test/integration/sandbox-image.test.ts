import assert from "node:assert/strict";
import { test } from "node:test";
import { execa } from "execa";
import { request } from "undici";
import { LABEL_IMAGE, LABEL_INPUTS, readImageInputs } from "../../src/image/inputs.js";
import { findBundled } from "../../src/sidecars/bundled.js";
import { hostTarget } from "../../src/sidecars/platform.js";
import { dockerOrSkip, sharedSandboxImage } from "../helpers/docker.js";
import { TEST_LABELS } from "../helpers/labels.js";
import { freePort, waitFor } from "../helpers/net.js";

test("the sandbox image runs the real opencode, bind-mounted read-only, published on 127.0.0.1", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const image = await sharedSandboxImage(docker);
  const inputs = await readImageInputs();
  const info = await docker.getImage(image.tag).inspect();
  assert.equal(info.Config.Labels?.[LABEL_IMAGE], "sandbox");
  assert.equal(info.Config.Labels?.[LABEL_INPUTS], inputs.hash);

  const lookup = findBundled("opencode", hostTarget());
  assert.ok(lookup.found, lookup.found ? "" : lookup.reason);
  const expected = String((await execa(lookup.sidecar.path, ["--version"])).stdout).trim();

  const port = await freePort();
  const container = await docker.createContainer({
    Image: image.tag,
    Cmd: ["/opt/openwork/opencode", "serve", "--hostname", "0.0.0.0", "--port", "4096"],
    Env: ["HOME=/tmp/home"],
    Labels: TEST_LABELS,
    ExposedPorts: { "4096/tcp": {} },
    HostConfig: {
      Init: true,
      Binds: [`${lookup.sidecar.path}:/opt/openwork/opencode:ro`],
      PortBindings: { "4096/tcp": [{ HostIp: "127.0.0.1", HostPort: String(port) }] },
    },
  });
  t.after(() => container.remove({ force: true }).catch(() => {}));
  await container.start();
  const inspect = await container.inspect();
  assert.equal(inspect.HostConfig.PortBindings?.["4096/tcp"]?.[0]?.HostIp, "127.0.0.1");
  assert.equal(inspect.Mounts.find((m) => m.Destination === "/opt/openwork/opencode")?.RW, false);

  const health = await waitFor(
    async () => {
      const response = await request(`http://127.0.0.1:${port}/global/health`, {
        headersTimeout: 2000,
        bodyTimeout: 2000,
      });
      if (response.statusCode !== 200) {
        await response.body.dump();
        return undefined;
      }
      return (await response.body.json()) as { healthy: boolean; version: string };
    },
    { timeoutMs: 60_000, what: "opencode in the sandbox image answering /global/health" },
  );
  assert.deepEqual(health, { healthy: true, version: expected });
});

test("a second build with unchanged inputs reuses the image", async (t) => {
  const docker = await dockerOrSkip(t);
  if (!docker) return;
  const first = await sharedSandboxImage(docker);
  const { ensureSandboxImage } = await import("../../src/image/build.js");
  const { createLogger } = await import("../../src/logging/logger.js");
  const { SHARED_TEST_DIR } = await import("../helpers/docker.js");
  const again = await ensureSandboxImage({
    docker,
    log: createLogger({ format: "json", level: "warn" }),
    workDir: `${SHARED_TEST_DIR}/cache`,
    lockDir: `${SHARED_TEST_DIR}/locks`,
  });
  assert.equal(again.reused, true);
  assert.equal(again.id, first.id);
});
