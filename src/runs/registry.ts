import { createHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { mkdir, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { type OpenworkPaths, openworkPaths } from "../config/paths.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { writeFileAtomic } from "../files/atomic.js";
import { registerSecret } from "../logging/redact.js";
import type { SandboxKind } from "../sandbox/backend.js";
import { type RunRecord, RunRecordSchema, type RunSecrets, RunSecretsSchema } from "./record.js";

const RECORD = "run.json";

/** A run directory whose record cannot be read, and why. */
export interface CorruptRecord {
  runId: string;
  reason: string;
}
const SECRETS = "secrets.json";

/**
 * The run registry: one directory per run under OPENWORK_HOME/runs, holding
 * the record (atomic writes: temp file, fsync, rename) and a 0600 secrets file.
 */
export class RunRegistry {
  readonly paths: OpenworkPaths;

  constructor(paths: OpenworkPaths = openworkPaths()) {
    this.paths = paths;
  }

  static newRunId(): string {
    const stamp = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
    return `${stamp}-${randomBytes(4).toString("hex")}`;
  }

  static workspaceId(realPath: string): string {
    return createHash("sha256").update(realPath).digest("hex").slice(0, 16);
  }

  /** A short, stable name for this OPENWORK_HOME (the value of the openwork.home label). */
  homeId(): string {
    return createHash("sha256").update(this.paths.home).digest("hex").slice(0, 16);
  }

  runDir(runId: string): string {
    return path.join(this.paths.runs, runId);
  }

  /**
   * What a workspace keeps for one substrate. Never shared between substrates:
   * a sandbox writes its persisted directory, and a host run must never load
   * (or a later start follow) anything a sandbox wrote (DESIGN.md §4a).
   */
  substrateDir(workspaceId: string, sandbox: SandboxKind): string {
    return path.join(this.paths.home, "workspaces", workspaceId, sandbox);
  }

  /** The persisted directory (/persist in a sandbox): the runtime's home, logs and state. */
  persistDir(workspaceId: string, sandbox: SandboxKind): string {
    return path.join(this.substrateDir(workspaceId, sandbox), "persist");
  }

  /**
   * Where runtimes are staged (<root>/runtimes): inside the persisted directory
   * on the host; beside it for a sandbox, which sees it only read-only, so that
   * nothing it executes (or a later start verifies) is writable by it.
   */
  stagingRoot(workspaceId: string, sandbox: SandboxKind): string {
    return sandbox === "none"
      ? this.persistDir(workspaceId, sandbox)
      : this.substrateDir(workspaceId, sandbox);
  }

  /** A start's imports (the user's opencode config, logins, CA bundle): host-only, beside the persisted directory. */
  importDir(workspaceId: string, sandbox: SandboxKind, runId: string): string {
    return path.join(this.substrateDir(workspaceId, sandbox), "imports", runId);
  }

  workspaceLock(workspaceId: string): string {
    return path.join(this.paths.locks, `workspace-${workspaceId}`);
  }

  async write(record: RunRecord): Promise<void> {
    const dir = this.runDir(record.runId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(
      path.join(dir, RECORD),
      `${JSON.stringify(RunRecordSchema.parse(record), null, 2)}\n`,
      { mode: 0o644, fsync: true },
    );
  }

  async update(runId: string, patch: Partial<RunRecord>): Promise<RunRecord> {
    const current = await this.read(runId);
    if (!current) throw new OpenworkError(`no run ${runId} is recorded`, { code: "run_missing" });
    const next = { ...current, ...patch };
    await this.write(next);
    return next;
  }

  async read(runId: string): Promise<RunRecord | undefined> {
    let text: string;
    try {
      text = await readFile(path.join(this.runDir(runId), RECORD), "utf8");
    } catch {
      return undefined;
    }
    try {
      return RunRecordSchema.parse(JSON.parse(text));
    } catch (error) {
      throw new OpenworkError(
        `the run record ${path.join(this.runDir(runId), RECORD)} is corrupt: ${errorMessage(error)}`,
        {
          code: "run_record_corrupt",
          hint: "remove that run's directory if the run is gone",
        },
      );
    }
  }

  /** Every readable record, newest first. Unreadable ones are skipped (and named, with why, by `corrupt`). */
  async list(): Promise<{ records: RunRecord[]; corrupt: CorruptRecord[] }> {
    let names: string[];
    try {
      names = await readdir(this.paths.runs);
    } catch {
      return { records: [], corrupt: [] };
    }
    const records: RunRecord[] = [];
    const corrupt: CorruptRecord[] = [];
    await Promise.all(
      names.map(async (name) => {
        try {
          const record = await this.read(name);
          if (record) records.push(record);
        } catch (error) {
          corrupt.push({ runId: name, reason: errorMessage(error) });
        }
      }),
    );
    corrupt.sort((a, b) => a.runId.localeCompare(b.runId));
    records.sort((a, b) =>
      a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : b.runId.localeCompare(a.runId),
    );
    return { records, corrupt };
  }

  async writeSecrets(runId: string, secrets: RunSecrets): Promise<string> {
    const dir = this.runDir(runId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, SECRETS);
    await writeFileAtomic(file, `${JSON.stringify(RunSecretsSchema.parse(secrets), null, 2)}\n`, {
      mode: 0o600,
      fsync: true,
    });
    return file;
  }

  secretsFile(runId: string): string {
    return path.join(this.runDir(runId), SECRETS);
  }

  async readSecrets(runId: string): Promise<RunSecrets | undefined> {
    try {
      const secrets = RunSecretsSchema.parse(JSON.parse(await readFile(this.secretsFile(runId), "utf8")));
      for (const value of Object.values(secrets)) registerSecret(value);
      return secrets;
    } catch {
      return undefined;
    }
  }
}
