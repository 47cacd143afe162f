import { mkdir } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../files/atomic.js";
import { withLock } from "../locks/lock.js";
import { dotenvStatements, formatDotenvLine, parseDotenv } from "./dotenv.js";
import { checkEnvName } from "./names.js";
import { readPrivateFile } from "./private-file.js";

function readStoreText(file: string): Promise<string> {
  return readPrivateFile(file, "the env store", "");
}

/** The store's values by name; an absent store is empty, one open to others is refused. */
export async function readEnvStore(file: string): Promise<Map<string, { value: string; line: number }>> {
  return parseDotenv(await readStoreText(file), file);
}

/**
 * Set one name, editing the file in place: comments, order and the other
 * lines are kept; the file is replaced atomically, mode 0600, under a lock
 * (two `env set` at once lose nothing).
 */
export async function setStoreValue(file: string, name: string, value: string): Promise<"added" | "changed"> {
  checkEnvName(name, "openwork env set");
  const line = formatDotenvLine(name, value);
  return editStore(file, (lines, statements) => {
    const found = statements.filter((s) => s.name === name);
    if (found.length === 0) {
      if (lines.length > 0 && lines.at(-1) === "") lines.splice(lines.length - 1, 0, line);
      else lines.push(line);
      return "added";
    }
    // The last statement wins in dotenv: replace it, drop earlier duplicates.
    for (const statement of found.reverse()) {
      lines.splice(
        statement.firstLine - 1,
        statement.lastLine - statement.firstLine + 1,
        ...(statement === found[0] ? [line] : []),
      );
    }
    return "changed";
  });
}

/** Remove names; the ones that were not set are returned too (unset is idempotent). */
export async function unsetStoreValues(file: string, names: readonly string[]): Promise<string[]> {
  for (const name of names) checkEnvName(name, "openwork env unset");
  return editStore(file, (lines, statements) => {
    const removed = new Set<string>();
    for (const statement of [...statements].reverse()) {
      if (!names.includes(statement.name)) continue;
      lines.splice(statement.firstLine - 1, statement.lastLine - statement.firstLine + 1);
      removed.add(statement.name);
    }
    return [...removed];
  });
}

async function editStore<T>(
  file: string,
  edit: (lines: string[], statements: ReturnType<typeof dotenvStatements>) => T,
): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  return withLock(file, async () => {
    const text = await readStoreText(file);
    // Validate before editing: a broken store is reported, not rewritten.
    parseDotenv(text, file);
    const lines = text === "" ? [] : text.split(/\r?\n/);
    const result = edit(lines, dotenvStatements(text, file));
    let out = lines.join("\n");
    if (out !== "" && !out.endsWith("\n")) out += "\n";
    await writeFileAtomic(file, out, { mode: 0o600 });
    return result;
  });
}
