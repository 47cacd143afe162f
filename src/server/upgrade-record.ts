import { randomUUID } from "node:crypto";
import { readJson, type StateDir, writeFileAtomic } from "./state.js";

export type OperationState = "running" | "succeeded" | "failed" | "interrupted";
export type StepName =
  | "verify"
  | "start-engine"
  | "gate-engine"
  | "switch-proxy"
  | "restart-router"
  | "gate-router"
  | "load-server"
  | "swap-server"
  | "retire-engine"
  | "record";

export interface StepRecord {
  name: StepName | `rollback:${string}`;
  state: "running" | "done" | "failed" | "skipped";
  startedAt: string;
  finishedAt: string | null;
  detail: string | null;
}

export interface OperationRecord {
  operationId: string;
  state: OperationState;
  request: {
    runtimeId?: string | undefined;
    manifest?: string | undefined;
    components?: string[] | undefined;
  };
  from: { runtimeId: string; versions: Record<string, string> };
  to: { runtimeId: string; versions: Record<string, string> };
  components: string[];
  step: string | null;
  steps: StepRecord[];
  error: { step: string; code: string; message: string; recentOutput?: string[] | undefined } | null;
  rolledBack: boolean | null;
  notes: string[];
  serverPid: number;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

/** Upgrade operations, one JSON file each under state/upgrades (atomic writes: a crash leaves the old or the new). */
export class OperationStore {
  constructor(private readonly state: StateDir) {}

  create(init: Pick<OperationRecord, "request" | "from" | "to" | "components">): OperationRecord {
    const now = new Date().toISOString();
    const record: OperationRecord = {
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

  save(record: OperationRecord): void {
    record.updatedAt = new Date().toISOString();
    writeFileAtomic(this.state.upgradeFile(record.operationId), `${JSON.stringify(record, null, 2)}\n`);
  }

  get(operationId: string): OperationRecord | undefined {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(operationId)) return undefined;
    return readJson<OperationRecord>(this.state.upgradeFile(operationId));
  }

  all(): OperationRecord[] {
    return this.state
      .listUpgrades()
      .map((id) => this.get(id))
      .filter((record): record is OperationRecord => record !== undefined)
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
        step: record.step ?? "unknown",
        code: "interrupted",
        message: `the server (pid ${record.serverPid}) stopped during step ${record.step ?? "unknown"}; the runtime it restarted with is the one recorded in state/current-runtime`,
      };
      this.save(record);
      marked.push(record.operationId);
    }
    return marked;
  }
}
