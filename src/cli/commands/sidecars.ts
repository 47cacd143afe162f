import path from "node:path";
import type { Command } from "commander";
import { oneLine } from "../../errors/errors.js";
import type { InventoryRow } from "../../sidecars/inventory.js";
import { hostTarget, parseTarget, sandboxTarget, type Target } from "../../sidecars/platform.js";
import { sourcePolicyFrom } from "../../sources/policy.js";
import { formatBytes } from "../../text/units.js";
import { type CommandContext, contextFrom } from "../context.js";
import { addSourceOption } from "../sidecar-options.js";
import { renderTable } from "../table.js";

interface CommonOptions {
  target?: string;
  manifest?: string;
}

function withCommon(command: Command): Command {
  return command
    .option("--target <target>", "platform target, e.g. linux-arm64 (default: this host)")
    .option("--manifest <path|url>", "manifest file or URL (default: the sidecars this installation pins)");
}

export function registerSidecars(program: Command): void {
  const sidecars = program
    .command("sidecars")
    .description(
      "inspect, fetch and verify the runtime's sidecar binaries (opencode engine, router, runtime server, node) against a manifest: the one this installation pins, or --manifest PATH|URL",
    );

  withCommon(
    sidecars
      .command("list")
      .description(
        "show each sidecar of the manifest: whether a verified copy is at hand, its path, size, sha256 and the version the binary itself reports",
      ),
  ).action(async (options: CommonOptions, command: Command) => {
    const ctx = await contextFrom(command);
    const { manifestFrom } = await import("../../manifest/load.js");
    const { inventory } = await import("../../sidecars/inventory.js");
    const { openStore } = await import("../../store/store.js");
    const target = options.target ? parseTarget(options.target) : hostTarget();
    const manifest = await manifestFrom(options.manifest, target, ctx.log);
    const rows = await inventory(manifest, target, { store: openStore({ log: ctx.log }), probe: true });
    ctx.output({ target, runtimeVersion: manifest.runtimeVersion, sidecars: rows }, () => renderRows(rows));
  });

  addSourceOption(
    withCommon(
      sidecars
        .command("fetch")
        .description(
          "put every sidecar of the manifest for the target into the store (OPENWORK_HOME), verified: bundled packages when they match, else downloaded from npm (the registry npm is configured with) or the manifest's URL",
        ),
    ),
  ).action(async (options: CommonOptions & { source?: string }, command: Command) => {
    const ctx = await contextFrom(command);
    const { manifestFrom } = await import("../../manifest/load.js");
    const { resolveAll } = await import("../../sources/resolve.js");
    const { openStore } = await import("../../store/store.js");
    const target = options.target ? parseTarget(options.target) : hostTarget();
    const policy = sourcePolicyFrom({ source: options.source });
    const manifest = await manifestFrom(options.manifest, target, ctx.log);
    const resolved = await resolveAll(manifest, target, policy, {
      store: openStore({ log: ctx.log }),
      log: ctx.log,
    });
    const rows = resolved.map((sidecar) => ({
      name: sidecar.name,
      target,
      status: "ok" as const,
      source: sidecar.source,
      origin: sidecar.origin,
      path: sidecar.path,
      size: sidecar.size,
      sha256: sidecar.sha256,
      version: sidecar.version,
      bytesDownloaded: sidecar.bytesDownloaded,
    }));
    ctx.output({ target, sidecars: rows }, () =>
      renderTable(
        ["NAME", "SOURCE", "VERSION", "SIZE", "SHA256", "PATH"],
        rows.map((row) => [
          row.name,
          row.source,
          row.version,
          formatBytes(row.size),
          row.sha256.slice(0, 16),
          row.path,
        ]),
      ),
    );
  });

  withCommon(
    sidecars
      .command("verify")
      .description(
        "re-check the sidecars against the manifest (or, with --runtime, a staged runtime against its runtime.json); exits 1 and lists every mismatch or missing file",
      ),
  )
    .option("--runtime <dir>", "verify a staged runtime directory (<persist>/runtimes/<id>) instead")
    .option("--full", "re-hash every file instead of trusting unchanged files' cached hashes")
    .action(async (options: CommonOptions & { runtime?: string; full?: boolean }, command: Command) => {
      const ctx = await contextFrom(command);
      const { manifestFrom } = await import("../../manifest/load.js");
      const { inventory } = await import("../../sidecars/inventory.js");
      const { openStore } = await import("../../store/store.js");
      if (options.runtime) {
        await verifyRuntimeCommand(path.resolve(options.runtime), options.full === true, ctx);
        return;
      }
      const target = options.target ? parseTarget(options.target) : hostTarget();
      const manifest = await manifestFrom(options.manifest, target, ctx.log);
      const rows = (
        await inventory(manifest, target, { store: openStore({ log: ctx.log }), full: options.full === true })
      ).filter(
        (row) => row.name !== "opencode-router" || manifest.sidecars["opencode-router"]?.targets[target],
      );
      const bad = rows.filter((row) => row.status !== "ok");
      ctx.output({ target, ok: bad.length === 0, sidecars: rows, mismatches: bad }, () =>
        [
          renderRows(rows),
          bad.length === 0 ? "all sidecars verified" : `${bad.length} sidecar(s) failed verification`,
        ].join("\n"),
      );
      if (bad.length > 0) process.exitCode = 1;
    });

  sidecars
    .command("manifest")
    .description(
      "print the manifest this installation pins (Manifest v1, docs/manifest.md) for one or more targets; --resolve downloads the npm packages of other targets to fill in their binaries' sha256 and size",
    )
    .option("--target <target...>", "targets to include (default: this host and its Linux sandbox target)")
    .option("--resolve", "fetch what is not installed here so that every entry carries sha256 and size")
    .action(async (options: { target?: string[]; resolve?: boolean }, command: Command) => {
      const ctx = await contextFrom(command);
      const { buildBundledManifest } = await import("../../manifest/bundled.js");
      const targets = options.target?.map(parseTarget) ?? [
        ...new Set<Target>([hostTarget(), sandboxTarget()]),
      ];
      const manifest = await buildBundledManifest(targets, {
        log: ctx.log,
        resolve: options.resolve === true,
      });
      process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
    });
}

async function verifyRuntimeCommand(dir: string, full: boolean, ctx: CommandContext): Promise<void> {
  const { verifyRuntimeDir } = await import("../../staging/verify.js");
  const result = await verifyRuntimeDir(dir, { full });
  if (result.ok) {
    const { runtime } = result;
    ctx.output(
      { ok: true, runtimeId: runtime.runtimeId, dir, mismatches: [] },
      () => `runtime ${runtime.runtimeId} verified: ${Object.keys(runtime.sidecars).join(", ")}`,
    );
    return;
  }
  const { error } = result;
  ctx.output({ ok: false, runtimeId: error.runtimeId, dir, mismatches: error.mismatches }, () =>
    renderTable(
      ["NAME", "FILE", "EXPECTED SHA256", "ACTUAL SHA256"],
      error.mismatches.map((m) => [m.name, m.file, m.expectedSha256, m.actualSha256 ?? `(${m.reason})`]),
    ),
  );
  ctx.log.error(oneLine(error));
  process.exitCode = 1;
}

function renderRows(rows: InventoryRow[]): string {
  return renderTable(
    ["NAME", "STATUS", "VERSION", "SIZE", "SHA256", "PATH / REASON"],
    rows.map((row) => [
      row.name,
      row.status,
      row.version ??
        (row.version === null ? `${row.pinnedVersion} (not runnable here)` : (row.pinnedVersion ?? "-")),
      row.size === undefined ? "-" : formatBytes(row.size),
      row.sha256 ? row.sha256.slice(0, 16) : "-",
      row.status === "ok" ? (row.path ?? "") : (row.reason ?? ""),
    ]),
  );
}
