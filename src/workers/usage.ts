import { readdirSync, readFileSync } from "node:fs";
import { createDockerClient } from "../docker/client.js";
import { parseProcessId } from "../processes/identity.js";
import type { RunRecord } from "../runs/record.js";

/** What a runtime uses right now: resident memory and CPU time consumed so far (all its processes). */
export interface UsageSample {
  memoryBytes: number;
  cpuSeconds: number;
  /** when it was taken (ms, monotonic) */
  at: number;
}

/**
 * Memory and CPU of a run: for a host run, every process descended from its
 * entrypoint (the engine and router are restarted by the server, so a fixed
 * pid list would go stale); for Docker, the container's cgroup as the engine
 * reports it. Apple's CLI has no equivalent the runner can read, so there is
 * no sample (null), never a made-up one.
 */
export async function sampleUsage(record: RunRecord): Promise<UsageSample | null> {
  if (!record.handle || record.state !== "running") return null;
  if (record.sandbox === "none") return hostUsage(record.handle.id);
  if (record.sandbox === "docker") return dockerUsage(record.handle.id);
  return null;
}

/** CPU use between two samples of the same run, as a share of one core (1.0 = one core busy). */
export function cpuShare(before: UsageSample | null, after: UsageSample | null): number | null {
  if (!before || !after || after.at <= before.at) return null;
  return Math.max(0, (after.cpuSeconds - before.cpuSeconds) / ((after.at - before.at) / 1000));
}

const PAGE_BYTES = 4096;
const TICKS_PER_SECOND = 100;

function hostUsage(handleId: string): UsageSample | null {
  const root = parseProcessId(handleId)?.pid;
  if (root === undefined || process.platform !== "linux") return null;
  const table = new Map<number, { ppid: number; rss: number; ticks: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Fields after the command name (which may hold spaces): state is field 3.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(name), {
        ppid: Number(fields[1]),
        ticks: Number(fields[11]) + Number(fields[12]),
        rss: Number(fields[21]) * PAGE_BYTES,
      });
    } catch {
      // gone between the listing and the read
    }
  }
  if (!table.has(root)) return null;
  const members = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, entry] of table)
      if (!members.has(pid) && members.has(entry.ppid)) {
        members.add(pid);
        grew = true;
      }
  }
  let memoryBytes = 0;
  let ticks = 0;
  for (const pid of members) {
    const entry = table.get(pid);
    if (!entry) continue;
    memoryBytes += entry.rss;
    ticks += entry.ticks;
  }
  return { memoryBytes, cpuSeconds: ticks / TICKS_PER_SECOND, at: performance.now() };
}

interface DockerStats {
  memory_stats?: { usage?: number; stats?: Record<string, number> };
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
}

async function dockerUsage(id: string): Promise<UsageSample | null> {
  try {
    const stats = (await createDockerClient()
      .getContainer(id)
      .stats({ stream: false, "one-shot": true } as { stream: false })) as DockerStats;
    const usage = stats.memory_stats?.usage;
    if (usage === undefined) return null;
    // What `docker stats` shows: the page cache the kernel can drop is not the runtime's memory.
    const cache =
      stats.memory_stats?.stats?.inactive_file ?? stats.memory_stats?.stats?.total_inactive_file ?? 0;
    return {
      memoryBytes: Math.max(0, usage - cache),
      cpuSeconds: (stats.cpu_stats?.cpu_usage?.total_usage ?? 0) / 1e9,
      at: performance.now(),
    };
  } catch {
    return null;
  }
}
