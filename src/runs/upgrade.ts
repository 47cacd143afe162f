import { readFile } from "node:fs/promises";
import path from "node:path";
import { OpenworkError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { RuntimeClient } from "./client.js";
import { prepareRuntime } from "./prepare.js";
import type { RunRecord, RunSecrets } from "./record.js";
import type { RunRegistry } from "./registry.js";
import { recordVersions } from "./versions.js";

export interface UpgradeOperation {
  operationId: string;
  state: string;
  step?: string;
  error?: { step?: string; message?: string };
  [key: string]: unknown;
}

const TERMINAL = new Set(["succeeded", "failed", "rolled-back", "interrupted"]);

/**
 * Drive a rolling upgrade from the host: stage the new runtime into the run's
 * persisted directory (where the server, in any substrate, sees it), then ask
 * the server to upgrade to it and follow the operation to its end.
 */
export async function upgradeRun(options: {
  registry: RunRegistry;
  record: RunRecord;
  secrets: RunSecrets;
  manifest: string;
  components?: string[] | undefined;
  log: Logger;
  signal?: AbortSignal;
  onProgress?: (operation: UpgradeOperation) => void;
  timeoutMs?: number;
}): Promise<UpgradeOperation> {
  const { record, secrets, log } = options;
  const staged = await prepareRuntime({
    manifest: options.manifest,
    persistDir: record.persistDir,
    sandboxed: record.sandbox !== "none",
    router: record.router,
    log,
    // The running runtime (and what the server last recorded as current) must survive gc.
    inUse: [record.runtimeId, await currentRuntime(record.persistDir)].filter((id): id is string =>
      Boolean(id),
    ),
  });
  log.info({ runtimeId: staged.runtimeId }, "new runtime staged; asking the server to upgrade");
  const client = new RuntimeClient(record.url as string, {
    client: secrets.clientToken,
    host: secrets.hostToken,
  });
  const started = await client.call<{ operationId: string }>("POST", "/system/runtime/upgrade", {
    auth: "host",
    body: { runtimeId: staged.runtimeId, ...(options.components ? { components: options.components } : {}) },
  });
  if (started.status !== 202 || !started.body?.ok) {
    const reason = started.body && !started.body.ok ? started.body.error.message : `HTTP ${started.status}`;
    throw new OpenworkError(`the server refused the upgrade: ${reason}`, {
      code: started.status === 409 ? "upgrade_in_progress" : "upgrade_refused",
      hint: started.status === 409 ? "another upgrade is running; wait for it (openwork status)" : undefined,
    });
  }
  const operationId = started.body.data.operationId;
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  let last = "";
  for (;;) {
    const operation = await client.data<UpgradeOperation>("GET", `/system/runtime/upgrade/${operationId}`);
    const marker = `${operation.state}:${operation.step ?? ""}`;
    if (marker !== last) {
      last = marker;
      options.onProgress?.(operation);
    }
    if (TERMINAL.has(operation.state)) {
      if (operation.state === "succeeded") {
        const versions = await client.data<{ active: Record<string, unknown> }>(
          "GET",
          "/system/runtime/versions",
        );
        await options.registry.update(record.runId, {
          runtimeId: staged.runtimeId,
          versions: recordVersions(versions.active, record.versions),
        });
      }
      return operation;
    }
    if (Date.now() > deadline)
      throw new OpenworkError(`upgrade ${operationId} did not finish in time; it goes on in the server`, {
        code: "upgrade_timeout",
      });
    if (options.signal?.aborted) {
      throw new OpenworkError(`stopped following upgrade ${operationId}; it goes on in the server`, {
        code: "interrupted",
        hint: "openwork runtime versions shows the result",
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function currentRuntime(persistDir: string): Promise<string | undefined> {
  const text = await readFile(path.join(persistDir, "state", "current-runtime"), "utf8").catch(() => "");
  return text.trim() || undefined;
}
