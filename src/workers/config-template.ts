/**
 * The file `openwork workers init` writes: one worker on the host, enabled,
 * and a Docker worker commented out, each key explained where it is used.
 * `workspace` fills in the host worker's workspace (default "~/src/my-project").
 */
export function workersTemplate(options: { workspace?: string } = {}): string {
  const workspace = JSON.stringify(options.workspace ?? "~/src/my-project");
  return `// openwork workers: a fleet of runtimes, one per workspace, kept running by
// \`openwork workers run\` (or the service \`openwork workers install-service\` sets up).
// JSONC: comments and trailing commas are allowed. Every key: docs/workers.md.
// Durations are seconds, or strings like "500ms", "5s", "10m", "1h".
{
  // How often the supervisor checks that each worker is healthy.
  "heartbeatInterval": "5s",
  // How long \`workers run\` waits for all workers to stop when it is asked to stop.
  "stopTimeout": "30s",

  // What every worker gets unless it sets the key itself (any worker key except
  // name and workspace; "restart" is merged key by key).
  "defaults": {
    "restart": {
      // Give up on a worker after 5 restarts within 10 minutes; a run that stays
      // up 30 seconds counts as a good start.
      "maxRestarts": 5,
      "window": "10m",
      "minUptime": "30s",
      "backoff": { "initial": "1s", "max": "60s", "factor": 2, "jitter": 0.2 },
    },
  },

  "workers": [
    {
      // On the host: no sandbox, so the agent can reach everything you can.
      "name": "my-project",
      "workspace": ${workspace},
      "sandbox": "none",
      "enabled": true,
    },

    // In Docker: the agent sees only its workspace (and the mounts you list),
    // as a non-root user with CPU, memory and process limits.
    // {
    //   "name": "api",
    //   "workspace": "~/src/api",
    //   "sandbox": "docker",
    //   "cpus": 2,
    //   "memory": "2g",
    //   "pidsLimit": 1024,
    //   "mounts": ["~/src/shared-docs:docs:ro"],
    //   "env": ["GITHUB_TOKEN"],
    //   "port": 8801,
    //   // restart it when it stays above 1500 MiB for a minute
    //   "restart": { "maxMemory": "1500m", "maxMemoryFor": "1m" },
    // },
  ],
}
`;
}
