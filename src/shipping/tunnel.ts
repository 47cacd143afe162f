import { spawn } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { OpenworkError } from "../errors/errors.js";
import { identityOf, isAlive, type ProcessIdentity } from "../processes/identity.js";

/** A run's SSH tunnel as its record keeps it: who forwards which local port to the engine host's loopback. */
export interface TunnelRecord extends ProcessIdentity {
  /** the ssh:// endpoint it goes through */
  target: string;
  /** 127.0.0.1 here */
  localPort: number;
  /** 127.0.0.1 on the engine's host, where the runtime is published */
  remotePort: number;
  logFile: string;
}

/**
 * The ssh command line of a tunnel: the user's own ssh (their config, keys,
 * agent and known hosts, as the docker CLI uses for ssh:// engines), never
 * prompting (BatchMode), exiting when the forward cannot be made or the host
 * stops answering, forwarding 127.0.0.1:local here to 127.0.0.1:remote there.
 * OPENWORK_SSH replaces the program (and may add options: "ssh -F ./config").
 */
export function tunnelCommand(
  target: string,
  localPort: number,
  remotePort: number,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const url = new URL(target);
  if (url.protocol !== "ssh:") throw new Error(`not an ssh:// endpoint: ${target}`);
  const ssh = (env.OPENWORK_SSH ?? "ssh").split(/\s+/).filter(Boolean);
  return [
    ...ssh,
    "-N",
    "-T",
    "-o",
    "BatchMode=yes",
    "-o",
    "ExitOnForwardFailure=yes",
    "-o",
    "ServerAliveInterval=15",
    "-o",
    "ServerAliveCountMax=3",
    "-L",
    `127.0.0.1:${localPort}:127.0.0.1:${remotePort}`,
    ...(url.port ? ["-p", url.port] : []),
    url.username ? `${decodeURIComponent(url.username)}@${url.hostname}` : url.hostname,
  ];
}

/**
 * Open a run's tunnel: ssh in the background (its own session, so that it
 * outlives this command like the runtime does), ready once the local port
 * answers; an ssh that exits first is an error with what it said.
 */
export async function openTunnel(options: {
  target: string;
  localPort: number;
  remotePort: number;
  logFile: string;
  deadlineMs?: number;
}): Promise<TunnelRecord> {
  const [command, ...args] = tunnelCommand(options.target, options.localPort, options.remotePort);
  await mkdir(path.dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, "a", 0o600);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(command as string, args, { detached: true, stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once("spawn", () => resolve(child.pid as number));
    child.once("error", (error) =>
      reject(
        new OpenworkError(`the SSH tunnel to ${options.target} could not start: ${error.message}`, {
          code: "tunnel_failed",
          hint: "install an ssh client (or set OPENWORK_SSH), or pass --publish-address",
        }),
      ),
    );
  });
  let exited: number | null = null;
  child.once("exit", (code) => {
    exited = code ?? 1;
  });
  child.unref();
  const identity = identityOf(pid);
  const record: TunnelRecord = {
    pid,
    startTime: identity?.startTime ?? "",
    target: options.target,
    localPort: options.localPort,
    remotePort: options.remotePort,
    logFile: options.logFile,
  };
  const deadline = Date.now() + (options.deadlineMs ?? 20_000);
  while (Date.now() < deadline) {
    if (exited !== null) break;
    if (await answers(options.localPort)) return record;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  closeTunnel(record);
  const said = tail(options.logFile);
  throw new OpenworkError(
    exited !== null
      ? `the SSH tunnel to ${options.target} ended (code ${exited})${said ? `: ${said}` : ""}`
      : `the SSH tunnel to ${options.target} did not open within ${Math.round((options.deadlineMs ?? 20_000) / 1000)} s${said ? `: ${said}` : ""}`,
    {
      code: "tunnel_failed",
      hint: "check that `ssh HOST` works without a prompt (keys or agent, known host), or pass --publish-address",
    },
  );
}

export function tunnelAlive(tunnel: TunnelRecord): boolean {
  return isAlive(tunnel);
}

/** Stop a run's tunnel (only the process recorded, never a pid reused by another); idempotent. */
export function closeTunnel(tunnel: TunnelRecord): void {
  if (!isAlive(tunnel)) return;
  try {
    process.kill(tunnel.pid, "SIGTERM");
  } catch {
    // gone meanwhile
  }
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-3).join(" | ");
  } catch {
    return "";
  }
}
