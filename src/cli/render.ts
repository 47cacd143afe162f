import type { RuntimeVersions } from "../contract/api.js";
import type { CheckResult } from "../runs/check.js";
import { type RunRecord, runView } from "../runs/record.js";
import type { CorruptRecord } from "../runs/registry.js";
import type { StartPlan, StartResult } from "../runs/start.js";
import { type CredentialsView, credentialsView, type OrphanInfo, type RunStatus } from "../runs/status.js";
import { versionsReport } from "../runs/versions.js";
import { formatBytes } from "../text/units.js";
import { renderTable } from "./table.js";

/*
 * How results look on a terminal. Shared by the command modules (which do
 * not import each other); nothing here decides anything.
 */

/** A plain text table for humans: columns padded to the widest cell. */
export function renderChecks(checks: readonly CheckResult[]): string {
  return renderTable(
    ["CHECK", "RESULT", "MS", "DETAIL"],
    checks.map((check) => [check.name, check.ok ? "pass" : "FAIL", String(check.durationMs), check.detail]),
  );
}

/** ACTIVE / PINNED / TARGET per component, then which runtime the pins come from. */
export function renderVersions(versions: RuntimeVersions): string {
  const report = versionsReport(versions);
  const table = renderTable(
    ["COMPONENT", "ACTIVE", "PINNED", "TARGET"],
    report.components
      .filter((row) => row.active !== null || row.pinned !== null || row.target !== null)
      .map((row) => [row.name, row.active ?? "-", row.pinned ?? "-", row.target ?? "-"]),
  );
  const lines = [table, `pinned by runtime ${report.runtimeId}`];
  if (report.target)
    lines.push(`upgrading to runtime ${report.target.runtimeId} (operation ${report.target.operationId})`);
  return lines.join("\n");
}

function componentLine(status: RunStatus): string {
  const summary = status.runtime.summary;
  if (!summary)
    return status.runtime.reachable
      ? (status.runtime.error ?? "reachable")
      : (status.runtime.error ?? "unreachable");
  return Object.entries(summary.components)
    .map(([name, component]) => `${name}=${component.status}`)
    .join(" ");
}

export function renderStatus(
  statuses: readonly RunStatus[],
  orphans: readonly OrphanInfo[],
  corrupt: readonly CorruptRecord[],
): string {
  const table = renderTable(
    ["RUN", "STATE", "HEALTH", "SANDBOX", "LOCAL", "COMPONENTS", "URL", "WORKSPACE"],
    statuses.map((status) => [
      status.runId,
      status.state,
      status.state === "running" ? (status.healthy ? "healthy" : "UNHEALTHY") : "-",
      status.sandbox,
      status.local.sandbox,
      status.state === "running" ? componentLine(status) : (status.reason ?? "-"),
      status.url ?? "-",
      status.workspace,
    ]),
  );
  const extra: string[] = [];
  for (const orphan of orphans)
    extra.push(
      `orphan: ${orphan.kind} ${orphan.id} (run ${orphan.runId ?? "?"}) has no live run; remove with \`openwork stop --orphans\``,
    );
  for (const entry of corrupt) extra.push(`unreadable run record: ${entry.reason}`);
  // One run: where it lives and what reached it, too.
  const one = statuses.length === 1 ? statuses[0] : undefined;
  if (one?.engine) extra.push(`  engine:          ${one.engine}`);
  if (one?.shipped) {
    const ws = one.shipped.workspace;
    extra.push(
      `  workspace:       ${ws.type === "volume" ? `volume ${ws.source}${one.shipped.uploadedFrom ? ` (uploaded from ${one.shipped.uploadedFrom})` : one.shipped.clonedFrom ? ` (cloned from ${one.shipped.clonedFrom})` : ""}` : `engine:${ws.source}`}`,
      `  state:           volume ${one.shipped.persistVolume}; runtimes in ${one.shipped.runtimesVolume}`,
    );
  }
  const only = one?.credentials;
  if (only) extra.push(...credentialLines(only));
  return [table, ...extra].join("\n");
}

/** What reached a runtime, in a few lines: imports, then variables by name and source. */
export function credentialLines(view: CredentialsView): string[] {
  const config =
    view.hostConfig === null
      ? "not imported (--no-host-config)"
      : view.hostConfig.dir
        ? `${view.hostConfig.dir} (${view.hostConfig.files} files)`
        : "none found";
  const auth =
    view.hostAuth === null
      ? "not imported (--no-host-auth)"
      : view.hostAuth.length > 0
        ? view.hostAuth.join(", ")
        : "none found";
  const lines = [`  opencode config: ${config}`, `  opencode logins: ${auth}`];
  if (view.caCert) lines.push(`  CA bundle:       ${view.caCert.join(", ")}`);
  if (view.env.length > 0)
    lines.push(`  environment:     ${view.env.map((entry) => `${entry.name} (${entry.source})`).join(", ")}`);
  for (const rewrite of view.proxyRewrites) lines.push(`  proxy:           ${rewrite.name} → ${rewrite.to}`);
  return lines;
}

/** `start --dry-run` for a terminal. */
export function renderStartPlan(plan: StartPlan): string {
  const { credentials } = plan;
  const lines = [
    `dry run: nothing was started`,
    `  workspace: ${plan.workspace}`,
    `  sandbox:   ${plan.sandbox}${plan.image ? ` (image ${plan.image})` : ""}`,
    `  runtime:   ${plan.runtimeId}`,
  ];
  if (plan.wouldReuse)
    lines.push(`  would return the running run ${plan.wouldReuse} (pass --replace for a new one)`);
  if (plan.limits)
    lines.push(
      `  limits:    ${plan.limits.cpus} CPUs, ${formatBytes(plan.limits.memoryBytes)}, ${plan.limits.pids} processes`,
    );
  for (const mount of plan.mounts)
    lines.push(`  mount:     ${mount.hostPath} → ${mount.containerPath} (${mount.readOnly ? "ro" : "rw"})`);
  lines.push(
    `  opencode config: ${typeof credentials.hostConfig === "string" ? credentials.hostConfig : credentials.hostConfig.dir ? `${credentials.hostConfig.dir} (${credentials.hostConfig.files.length} files)` : "none found"}`,
    `  opencode logins: ${typeof credentials.hostAuth === "string" ? credentials.hostAuth : credentials.hostAuth.files.join(", ") || "none found"}`,
  );
  if (credentials.caCert) lines.push(`  CA bundle:       ${credentials.caCert.sources.join(", ")}`);
  lines.push(
    `  environment (precedence: ${credentials.precedence.join(" > ")}; store ${credentials.envStore}):`,
  );
  for (const entry of credentials.env)
    lines.push(
      `    ${entry.name}=**** from ${entry.source}${entry.overrides ? ` (over ${entry.overrides.join(", ")})` : ""}`,
    );
  if (credentials.env.length === 0) lines.push("    (nothing)");
  for (const rewrite of credentials.proxyRewrites)
    lines.push(`  proxy rewrite: ${rewrite.name} ${rewrite.from} → ${rewrite.to}`);
  return lines.join("\n");
}

export function renderConnectInfo(result: StartResult, showSecrets: boolean, detach: boolean): string {
  const { record } = result;
  const versions = Object.entries(record.versions)
    .filter(([, version]) => version)
    .map(([name, version]) => `${name} ${version}`)
    .join(", ");
  const lines = [
    `${result.reused ? "already running" : "runtime healthy"}: run ${record.runId} (${record.sandbox === "none" ? "host processes" : record.sandbox})`,
    `  url:       ${record.url}`,
    `  workspace: ${record.workspace}`,
    `  versions:  ${versions}`,
    `  tokens:    ${result.secretsFile} (client, host, owner; mode 0600)`,
    `  attach:    ${record.url}/opencode/ with "Authorization: Bearer <client token>"`,
  ];
  if (showSecrets) {
    lines.push(
      `  client token: ${result.secrets.clientToken}`,
      `  owner token:  ${result.secrets.ownerToken ?? "-"}`,
    );
  }
  const view = credentialsView(record.credentials);
  if (view) lines.push(...credentialLines(view));
  if (result.retired.length > 0) lines.push(`  replaced:  ${result.retired.join(", ")}`);
  lines.push(
    detach
      ? `  status: openwork status ${record.runId}   logs: openwork logs ${record.runId}   stop: openwork stop ${record.runId}`
      : "  Ctrl-C stops the runtime.",
  );
  return lines.join("\n");
}

/** The document `start --json` prints (DESIGN.md §3). */
export function startDocument(result: StartResult, record: RunRecord) {
  return {
    ...runView(record),
    runtimeId: record.runtimeId,
    reused: result.reused,
    retired: result.retired,
    tokens: {
      client: result.secrets.clientToken,
      host: result.secrets.hostToken,
      owner: result.secrets.ownerToken ?? null,
    },
    secretsFile: result.secretsFile,
    logFile: record.logFile,
    credentials: credentialsView(record.credentials) ?? null,
    timings: result.timings,
    ...(result.shippedBytes === undefined ? {} : { shippedBytes: result.shippedBytes }),
  };
}
