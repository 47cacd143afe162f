import { randomUUID } from "node:crypto";
import { readdirSync } from "node:fs";
import { operationSchema, type StepRecord, type UpgradeOperation } from "../contract/api.js";
import type { PersistLayout } from "../contract/layout.js";
import { writeFileAtomicSync } from "../files/atomic.js";
import { readJsonFile } from "../files/json.js";

const OPERATION_ID = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * Upgrade operations, one JSON file each under state/upgrades (atomic writes:
 * a crash leaves the old or the new). Read back through the contract's schema:
 * a file that does not match is not an operation.
 */
export class OperationStore {
  /** the last state of every operation this process saved, written or not (a full disk refuses writes) */
  readonly #latest = new Map<string, UpgradeOperation>();

  constructor(private readonly layout: PersistLayout) {}

  create(init: Pick<UpgradeOperation, "request" | "from" | "to" | "components">): UpgradeOperation {
    const now = new Date().toISOString();
    const record: UpgradeOperation = {
      operationId: `upg_${now.replace(/[-:.TZ]/g, "").slice(0, 14)}_${randomUUID().slice(0, 8)}`,
      state: "running",
      ...init,
      step: null,
      steps: [],
      error: null,
      rolledBack: null,
      notes: [],
      serverPid: process.pid,
      createdAt: now,
      updatedAt: now,
      finishedAt: null,
    };
    this.save(record);
    return record;
  }

  /** Record an operation's state; throws when the file cannot be written (what this process knows is kept). */
  save(record: UpgradeOperation): void {
    record.updatedAt = new Date().toISOString();
    this.#latest.set(record.operationId, structuredClone(record));
    writeFileAtomicSync(this.layout.upgradeFile(record.operationId), `${JSON.stringify(record, null, 2)}\n`);
  }

  get(operationId: string): UpgradeOperation | undefined {
    if (!OPERATION_ID.test(operationId)) return undefined;
    const known = this.#latest.get(operationId);
    if (known) return structuredClone(known);
    return readJsonFile(this.layout.upgradeFile(operationId), operationSchema);
  }

  all(): UpgradeOperation[] {
    let names: string[];
    try {
      names = readdirSync(this.layout.upgradesDir).filter((name) => name.endsWith(".json"));
    } catch {
      return [];
    }
    return names
      .map((name) => this.get(name.slice(0, -".json".length)))
      .filter((record): record is UpgradeOperation => record !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * On a cold start, an operation still `running` was cut short (the server
   * died or the container stopped): report it as interrupted, never resume it blind.
   */
  markInterrupted(): string[] {
    const marked: string[] = [];
    for (const record of this.all()) {
      if (record.state !== "running") continue;
      record.state = "interrupted";
      record.finishedAt = new Date().toISOString();
      record.error ??= {
        step: record.step,
        code: "interrupted",
        message: `the server (pid ${record.serverPid}) stopped during step ${record.step ?? "unknown"}; the runtime it restarted with is the one recorded as current`,
      };
      try {
        this.save(record);
      } catch {
        // A full disk: it is reported interrupted by this process, and again by the next cold start.
      }
      marked.push(record.operationId);
    }
    return marked;
  }
}

/** Append a step (or a rollback step) to an operation, running from now. */
export function beginStep(record: UpgradeOperation, name: StepRecord["name"]): StepRecord {
  const entry: StepRecord = {
    name,
    state: "running",
    startedAt: new Date().toISOString(),
    finishedAt: null,
    detail: null,
  };
  record.steps.push(entry);
  return entry;
}

/** The step ended, done or failed, with what there is to say about it. */
export function endStep(entry: StepRecord, state: "done" | "failed", detail: string | null): void {
  Object.assign(entry, { state, finishedAt: new Date().toISOString(), detail });
}
