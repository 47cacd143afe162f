import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { repeatUntilAborted } from "../../retry/poll.js";

/**
 * Every line of a file, read as a stream: a log of any size is printed
 * without being held in memory. A missing file has no lines.
 */
export async function eachLine(file: string, onLine: (line: string) => void): Promise<void> {
  let pending = "";
  try {
    for await (const chunk of createReadStream(file)) {
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
export async function tailFile(file: string, count?: number): Promise<string[]> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return [];
    throw error;
  }
  try {
    const { size } = await handle.stat();
    if (count === undefined) return splitLines((await handle.readFile()).toString("utf8"));
    const block = 64 * 1024;
    let position = size;
    let text = "";
    while (position > 0 && text.split("\n").length <= count + 1) {
      const length = Math.min(block, position);
      position -= length;
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, position);
      text = buffer.toString("utf8") + text;
    }
    return splitLines(text).slice(-count);
  } finally {
    await handle.close();
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
  options: { tail?: number | undefined; signal?: AbortSignal | undefined; intervalMs?: number },
  onLine: (line: string) => void,
): Promise<void> {
  for (const line of await tailFile(file, options.tail ?? 10)) onLine(line);
  let offset = await sizeOf(file);
  let pending = "";
  await repeatUntilAborted(
    async () => {
      const size = await sizeOf(file);
      if (size < offset) offset = 0;
      if (size === offset) return;
      for await (const chunk of createReadStream(file, { start: offset, end: size - 1 })) {
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
