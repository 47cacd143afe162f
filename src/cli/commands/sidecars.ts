import type { Command } from "commander";
import { listBundledSidecars } from "../../sidecars/list.js";
import { hostTarget, parseTarget } from "../../sidecars/platform.js";
import { contextFrom, renderTable } from "../context.js";

export function registerSidecars(program: Command): void {
  const sidecars = program
    .command("sidecars")
    .description("inspect the runtime's sidecar binaries (opencode engine, router, runtime server, node)");

  sidecars
    .command("list")
    .description("show each sidecar with its path, size, sha256 and the version the binary itself reports")
    .option("--target <target>", "platform target, e.g. linux-x64 (default: this host)")
    .action(async (options: { target?: string }, command: Command) => {
      const ctx = contextFrom(command);
      const target = options.target ? parseTarget(options.target) : hostTarget();
      const rows = await listBundledSidecars(target);
      ctx.output({ target, sidecars: rows }, () =>
        renderTable(
          ["NAME", "STATUS", "VERSION", "SIZE", "SHA256", "PATH / REASON"],
          rows.map((row) => [
            row.name,
            row.status,
            row.version ?? (row.version === null ? "(not runnable here)" : "-"),
            row.size === undefined ? "-" : formatBytes(row.size),
            row.sha256 ? row.sha256.slice(0, 16) : "-",
            row.status === "ok" ? (row.path ?? "") : (row.reason ?? ""),
          ]),
        ),
      );
    });
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
