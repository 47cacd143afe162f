import {
  closeSync,
  constants,
  type FSWatcher,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  rmSync,
  statSync,
  watch,
  writeSync,
} from "node:fs";
import { openNoFollow } from "../files/inside.js";
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
 * inode, which O_APPEND makes safe after a truncate. The file lives where the
 * engine (the agent) can write, so it is never opened through a link, and the
 * rotation works on the descriptor it opened and a `.1` it creates itself: a
 * planted link can make it neither copy nor truncate another file.
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
    let fd: number | undefined;
    try {
      try {
        // Read-write: the rotation truncates through this descriptor, never by name.
        fd = openNoFollow(this.file, constants.O_RDWR);
      } catch {
        return; // missing (not written yet), or a link / not a regular file: never followed
      }
      const size = fstatSync(fd).size;
      if (size < this.offset) {
        // truncated by someone else (or by our rotation): start over
        this.offset = 0;
        this.partial = "";
      }
      if (size > this.offset) this.readFrom(fd, size);
      if (size > this.rotateBytes) {
        this.rotate(fd, size);
        this.offset = 0;
        this.#rotations++;
      }
    } finally {
      if (fd !== undefined) closeSync(fd);
      this.busy = false;
    }
  }

  /** Copy what `fd` holds into a fresh `<file>.1` (a link there is removed, not followed), then truncate it. */
  private rotate(fd: number, size: number): void {
    const rotated = `${this.file}.1`;
    rmSync(rotated, { force: true });
    const out = openSync(
      rotated,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      const chunk = Buffer.alloc(1024 * 1024);
      for (let position = 0; position < size; ) {
        const bytesRead = readSync(fd, chunk, 0, Math.min(chunk.length, size - position), position);
        if (bytesRead === 0) break;
        writeSync(out, chunk, 0, bytesRead);
        position += bytesRead;
      }
    } finally {
      closeSync(out);
    }
    ftruncateSync(fd, 0);
  }

  private readFrom(fd: number, size: number): void {
    // Only the tail matters for the ring buffer: never read more than ~1 MiB per poll.
    const start = Math.max(this.offset, size - 1024 * 1024);
    const buffer = Buffer.alloc(size - start);
    const bytesRead = readSync(fd, buffer, 0, buffer.length, start);
    this.offset = start + bytesRead;
    const text = this.partial + buffer.subarray(0, bytesRead).toString("utf8");
    const parts = text.split(/\r?\n/);
    this.partial = parts.pop() ?? "";
    for (const line of parts) if (line.length > 0) this.push(line);
  }

  private push(line: string): void {
    this.lines.push(redactText(line.length > 2000 ? `${line.slice(0, 2000)}…` : line));
    if (this.lines.length > this.maxLines) this.lines.splice(0, this.lines.length - this.maxLines);
  }
}

/**
 * Calls `onChange` whenever `file` is written to (inotify and the like), and
 * once more if watching it fails later, so that whoever relies on it falls
 * back to asking. Undefined when the file cannot be watched at all. Only ever
 * a hint: nothing is read through it (the file may be the agent's link).
 */
export function watchWrites(file: string, onChange: () => void): { close(): void } | undefined {
  let watcher: FSWatcher;
  try {
    watcher = watch(file, { persistent: false }, () => onChange());
  } catch {
    return undefined;
  }
  watcher.on("error", () => {
    watcher.close();
    onChange();
  });
  return { close: () => watcher.close() };
}

/**
 * Whether something was written to `file` at or after `epochMs` (false when it
 * cannot be stat'ed). A file created since then but still empty was not: its
 * creation alone moves its mtime. A hint, like the above.
 */
export function writtenSince(file: string, epochMs: number): boolean {
  try {
    const stats = statSync(file);
    return stats.size > 0 && stats.mtimeMs >= epochMs;
  } catch {
    return false;
  }
}
