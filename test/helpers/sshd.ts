import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { execa } from "execa";
import { NODE1 } from "./swarm.js";

/**
 * A real sshd on the first node's address (in its network namespace), whose sessions reach that
 * node's engine (`docker system dial-stdio`, as docker's ssh:// transport runs it), with a key in
 * an ssh-agent for dockerode and an ssh config for the tunnel's ssh: `ssh://root@10.77.0.11` is
 * then an engine on another machine as far as openwork can tell.
 */
export async function sshdOnNode1OrSkip(
  t: TestContext,
): Promise<{ endpoint: string; env: Record<string, string>; stop(): void } | undefined> {
  if (!existsSync("/usr/sbin/sshd")) {
    if (process.env.OPENWORK_REQUIRE_DOCKER === "1")
      throw new Error("OPENWORK_REQUIRE_DOCKER=1 but no /usr/sbin/sshd (apt install openssh-server)");
    t.skip("no sshd");
    return undefined;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-sshd-"));
  const file = (name: string) => path.join(dir, name);
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file("host_key")]);
  await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file("id")]);
  writeFileSync(file("authorized_keys"), readFileSync(file("id.pub")));
  writeFileSync(
    file("sshd_config"),
    [
      "Port 22",
      `ListenAddress ${NODE1.address}`,
      `HostKey ${file("host_key")}`,
      `PidFile ${file("sshd.pid")}`,
      `AuthorizedKeysFile ${file("authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "AllowTcpForwarding yes",
      // The node's engine, for `docker system dial-stdio` in the session.
      `SetEnv DOCKER_HOST=${NODE1.engine}`,
      "",
    ].join("\n"),
  );
  mkdirSync("/run/sshd", { recursive: true });
  const sshd = spawn(
    "ip",
    ["netns", "exec", "owswarm1", "/usr/sbin/sshd", "-D", "-e", "-f", file("sshd_config")],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let said = "";
  sshd.stderr?.on("data", (chunk: Buffer) => {
    said += chunk.toString();
  });
  const agentSocket = file("agent.sock");
  const agent = spawn("ssh-agent", ["-D", "-a", agentSocket], { stdio: "ignore" });
  for (let i = 0; i < 50 && !existsSync(agentSocket); i++)
    await new Promise((resolve) => setTimeout(resolve, 100));
  await execa("ssh-add", ["-q", file("id")], { env: { SSH_AUTH_SOCK: agentSocket } });
  writeFileSync(file("known_hosts"), `${NODE1.address} ${readFileSync(file("host_key.pub"), "utf8")}`);
  writeFileSync(
    file("ssh_config"),
    [
      `Host ${NODE1.address}`,
      "  User root",
      `  IdentityFile ${file("id")}`,
      "  IdentitiesOnly yes",
      `  UserKnownHostsFile ${file("known_hosts")}`,
      "  StrictHostKeyChecking yes",
      "",
    ].join("\n"),
  );
  const env = { OPENWORK_SSH: `ssh -F ${file("ssh_config")}`, SSH_AUTH_SOCK: agentSocket };
  // Up when a session runs docker on the node.
  for (let i = 0; i < 50; i++) {
    const probe = await execa(
      "ssh",
      ["-F", file("ssh_config"), NODE1.address, "docker", "version", "--format", "ok"],
      {
        reject: false,
      },
    );
    if (probe.stdout.trim() === "ok") break;
    if (i === 49) throw new Error(`sshd on ${NODE1.address} does not serve docker: ${probe.stderr}\n${said}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return {
    endpoint: `ssh://root@${NODE1.address}`,
    env,
    stop: () => {
      sshd.kill();
      agent.kill();
    },
  };
}
