import { readdirSync, readFileSync } from "node:fs";
import { createDockerClient, resolveDockerEndpoint } from "../docker/client.js";
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

/**
 * A local engine's containers are cgroups on this machine: their counters are
 * read as files (what `docker stats` reports, without its ~130 ms per call,
 * which made a status of eight Docker workers take a second). cgroup v2
 * (systemd or cgroupfs driver) and v1; a remote engine or another layout asks
 * the engine.
 */
function cgroupUsage(id: string): UsageSample | null {
  if (process.platform !== "linux" || !/^[0-9a-f]{64}$/.test(id) || !localEngine()) return null;
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch {
      return undefined;
    }
  };
  const stat = (text: string | undefined, key: string) => {
    const match = text === undefined ? null : new RegExp(`^${key} (\\d+)$`, "m").exec(text);
    return match ? Number(match[1]) : 0;
  };
  for (const dir of [`/sys/fs/cgroup/system.slice/docker-${id}.scope`, `/sys/fs/cgroup/docker/${id}`]) {
    const current = read(`${dir}/memory.current`);
    if (current === undefined) continue;
    const memory = read(`${dir}/memory.stat`);
    return {
      memoryBytes: Math.max(0, Number(current) - stat(memory, "inactive_file")),
      cpuSeconds: stat(read(`${dir}/cpu.stat`), "usage_usec") / 1e6,
      at: performance.now(),
    };
  }
  for (const leaf of [`docker/${id}`, `system.slice/docker-${id}.scope`]) {
    const usage = read(`/sys/fs/cgroup/memory/${leaf}/memory.usage_in_bytes`);
    if (usage === undefined) continue;
    const memory = read(`/sys/fs/cgroup/memory/${leaf}/memory.stat`);
    const cpu =
      read(`/sys/fs/cgroup/cpuacct/${leaf}/cpuacct.usage`) ??
      read(`/sys/fs/cgroup/cpu,cpuacct/${leaf}/cpuacct.usage`);
    return {
      memoryBytes: Math.max(0, Number(usage) - stat(memory, "total_inactive_file")),
      cpuSeconds: Number(cpu ?? 0) / 1e9,
      at: performance.now(),
    };
  }
  return null;
}

/** The engine on this machine's socket (DOCKER_HOST, the context, or the default): its cgroups are ours to read. */
function localEngine(): boolean {
  return resolveDockerEndpoint().host.startsWith("unix://");
}

async function dockerUsage(id: string): Promise<UsageSample | null> {
  const local = cgroupUsage(id);
  if (local) return local;
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
