import { copyFile, open, stat, truncate } from "node:fs/promises";
import { redactText } from "../logging/redact.js";

export interface LogTailOptions {
  /** lines kept in memory (the summary shows them) */
  maxLines?: number;
  /** the file is rotated (copied to `<file>.1`, then truncated) once it is larger than this */
  rotateBytes?: number;
  pollMs?: number;
}

/**
 * Follows one component's log file into a bounded ring buffer of its recent
 * lines, and rotates the file by copy-then-truncate: the writers (adopted
 * processes, whose descriptors we do not own) keep appending to the same
 * inode, which O_APPEND makes safe after a truncate.
 */
export class LogTail {
  private readonly lines: string[] = [];
  private offset = 0;
  private partial = "";
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  readonly maxLines: number;
  readonly rotateBytes: number;
  #rotations = 0;

  constructor(
    readonly file: string,
    private readonly options: LogTailOptions = {},
  ) {
    this.maxLines = options.maxLines ?? 200;
    this.rotateBytes = options.rotateBytes ?? 10 * 1024 * 1024;
  }

  /** how many times the file was rotated */
  get rotations(): number {
    return this.#rotations;
  }

  start(): this {
    // A failed poll (a full disk during rotation) is tried again at the next tick; it never throws out of the timer.
    this.timer ??= setInterval(() => void this.poll().catch(() => undefined), this.options.pollMs ?? 500);
    this.timer.unref();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  recent(count = this.maxLines): string[] {
    return this.lines.slice(-count);
  }

  /** Read what was appended since the last poll. Public so a caller can flush before reporting. */
  async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      let size: number;
      try {
        size = (await stat(this.file)).size;
      } catch {
        return;
      }
      if (size < this.offset) {
        // truncated by someone else (or by our rotation): start over
        this.offset = 0;
        this.partial = "";
      }
      if (size > this.offset) await this.readFrom(size);
      if (size > this.rotateBytes) {
        await copyFile(this.file, `${this.file}.1`);
        await truncate(this.file, 0);
        this.offset = 0;
        this.#rotations++;
      }
    } finally {
      this.busy = false;
    }
  }

  private async readFrom(size: number): Promise<void> {
    // Only the tail matters for the ring buffer: never read more than ~1 MiB per poll.
    const start = Math.max(this.offset, size - 1024 * 1024);
    const handle = await open(this.file, "r");
    try {
      const buffer = Buffer.alloc(size - start);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
      this.offset = start + bytesRead;
      const text = this.partial + buffer.subarray(0, bytesRead).toString("utf8");
      const parts = text.split(/\r?\n/);
      this.partial = parts.pop() ?? "";
      for (const line of parts) if (line.length > 0) this.push(line);
    } finally {
      await handle.close();
    }
  }

  private push(line: string): void {
    this.lines.push(redactText(line.length > 2000 ? `${line.slice(0, 2000)}…` : line));
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
  }
}
