import { createHash, randomBytes } from "node:crypto";
import { validateManifest } from "../../src/manifest/parse.js";
import type { Manifest } from "../../src/manifest/schema.js";
import type { Target } from "../../src/sidecars/platform.js";
import type { Mirror } from "./mirror.js";

/** A tiny executable that answers --version like the real sidecars do; the random tail makes each one distinct. */
export function versionScript(version: string, tailBytes = 64 * 1024): Buffer {
  return Buffer.concat([
    Buffer.from(`#!/bin/sh\necho "${version}"\nexit 0\n# `),
    Buffer.from(randomBytes(tailBytes).toString("hex")),
    Buffer.from("\n"),
  ]);
}

const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

export interface FakeRuntime {
  manifest: Manifest;
  bytes: Record<"opencode" | "node" | "openwork-server", Buffer>;
}

let serial = 0;

/**
 * Publish a small runtime on the mirror and return its manifest: opencode as
 * an npm package (integrity-pinned), node and the server as plain URLs.
 */
export async function publishFakeRuntime(
  mirror: Mirror,
  target: Target = "linux-x64",
  options: { opencodeVersion?: string; sizes?: number } = {},
): Promise<FakeRuntime> {
  const id = ++serial;
  const opencodeVersion = options.opencodeVersion ?? "1.2.3";
  const bytes = {
    opencode: versionScript(opencodeVersion, options.sizes),
    node: versionScript("24.99.0", options.sizes),
    "openwork-server": versionScript("0.1.0", 1024),
  };
  const pkg = `opencode-fake${id}-${target}`;
  const { integrity } = await mirror.addNpmPackage(pkg, opencodeVersion, { "bin/opencode": bytes.opencode });
  const nodeUrl = mirror.addFile(`rt${id}/${target}/node`, bytes.node);
  const serverUrl = mirror.addFile(`rt${id}/openwork-server.mjs`, bytes["openwork-server"]);
  const manifest = validateManifest(
    {
      manifestVersion: 1,
      runtimeVersion: "0.1.0",
      generatedAt: new Date().toISOString(),
      sidecars: {
        opencode: {
          targets: {
            [target]: {
              version: opencodeVersion,
              file: "opencode",
              sha256: sha(bytes.opencode),
              size: bytes.opencode.length,
              source: {
                type: "npm",
                package: pkg,
                version: opencodeVersion,
                integrity,
                path: "bin/opencode",
              },
            },
          },
        },
        node: {
          targets: {
            [target]: {
              version: "24.99.0",
              file: "node",
              sha256: sha(bytes.node),
              size: bytes.node.length,
              source: { type: "url", url: nodeUrl },
            },
          },
        },
        "openwork-server": {
          targets: {
            [target]: {
              version: "0.1.0",
              file: "openwork-server.mjs",
              sha256: sha(bytes["openwork-server"]),
              size: bytes["openwork-server"].length,
              source: { type: "url", url: serverUrl },
            },
          },
        },
      },
    },
    "fake manifest",
  );
  return { manifest, bytes };
}
