import { closeSync, createReadStream, fstatSync, readSync } from "node:fs";
import { stat } from "node:fs/promises";
import { checkComponents, openNoFollow } from "../../files/inside.js";
import { repeatUntilAborted } from "../../retry/poll.js";

/*
 * A log may sit in a directory a sandbox can write (its persisted directory):
 * give that directory as `root` and no link between it and the file is
 * followed; the file itself is never opened through a link either way.
 */
function guard(file: string, root: string | undefined): void {
  if (root) checkComponents(root, file);
}

/**
 * Every line of a file, read as a stream: a log of any size is printed
 * without being held in memory. A missing file has no lines.
 */
export async function eachLine(file: string, onLine: (line: string) => void, root?: string): Promise<void> {
  let pending = "";
  try {
    guard(file, root);
    for await (const chunk of createReadStream(file, { fd: openNoFollow(file) })) {
      pending += (chunk as Buffer).toString("utf8");
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return;
    throw error;
  }
  if (pending.length > 0) onLine(pending);
}

/** The last `count` lines of a file (all of it when count is undefined), read from the end in blocks. */
export async function tailFile(file: string, count?: number, root?: string): Promise<string[]> {
  let fd: number;
  try {
    guard(file, root);
    fd = openNoFollow(file);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return [];
    throw error;
  }
  try {
    const { size } = fstatSync(fd);
    const read = (length: number, position: number) => {
      const buffer = Buffer.alloc(length);
      return buffer.subarray(0, readSync(fd, buffer, 0, length, position)).toString("utf8");
    };
    if (count === undefined) return splitLines(read(size, 0));
    const block = 64 * 1024;
    let position = size;
    let text = "";
    while (position > 0 && text.split("\n").length <= count + 1) {
      const length = Math.min(block, position);
      position -= length;
      text = read(length, position) + text;
    }
    return splitLines(text).slice(-count);
  } finally {
    closeSync(fd);
  }
}

function splitLines(text: string): string[] {
  const lines = text.split(/\r?\n/);
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/**
 * Print the tail, then every line appended until the signal aborts. Polls the
 * size (fs.watch misses appends on some file systems) and starts over when
 * the file shrinks (rotation or truncation).
 */
export async function followFile(
  file: string,
  options: {
    tail?: number | undefined;
    signal?: AbortSignal | undefined;
    intervalMs?: number;
    root?: string | undefined;
  },
  onLine: (line: string) => void,
): Promise<void> {
  for (const line of await tailFile(file, options.tail ?? 10, options.root)) onLine(line);
  let offset = await sizeOf(file);
  let pending = "";
  await repeatUntilAborted(
    async () => {
      const size = await sizeOf(file);
      if (size < offset) offset = 0;
      if (size === offset) return;
      guard(file, options.root);
      for await (const chunk of createReadStream(file, {
        fd: openNoFollow(file),
        start: offset,
        end: size - 1,
      })) {
        pending += (chunk as Buffer).toString("utf8");
      }
      offset = size;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    },
    { pace: { intervalMs: options.intervalMs ?? 250 }, signal: options.signal },
  );
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}
