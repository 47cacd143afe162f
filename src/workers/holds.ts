import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../files/atomic.js";
import { readJsonFile } from "../files/json.js";
import { withLock } from "../locks/lock.js";

/*
 * `workers stop NAME` must keep a worker stopped while a supervisor runs
 * (otherwise the supervisor would bring it back at its next heartbeat), and
 * work without one. The hold is a file both read: no socket to the
 * supervisor, nothing lost when it restarts.
 */
const HoldsSchema = z.object({ held: z.array(z.string()) });

function holdsFile(stateDir: string): string {
  return path.join(stateDir, "held.json");
}

export function readHolds(stateDir: string): Set<string> {
  return new Set(readJsonFile(holdsFile(stateDir), HoldsSchema)?.held ?? []);
}

/** Hold (or release) these workers; returns the names held afterwards. */
export async function setHolds(stateDir: string, names: readonly string[], held: boolean): Promise<string[]> {
  const file = holdsFile(stateDir);
  return withLock(
    file,
    async () => {
      const holds = readHolds(stateDir);
      for (const name of names) {
        if (held) holds.add(name);
        else holds.delete(name);
      }
      const list = [...holds].sort();
      await writeFileAtomic(file, `${JSON.stringify({ held: list }, null, 2)}\n`, { mode: 0o600 });
      return list;
    },
    { waitMs: 30_000 },
  );
}
