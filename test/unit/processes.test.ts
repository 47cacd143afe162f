import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { groupAlive, signalGroup } from "../../src/processes/groups.js";
import { formatProcessId, identityOf, isAlive, parseProcessId } from "../../src/processes/identity.js";
import { pidState, processGroupOf, readEnviron, readProcess } from "../../src/processes/inspect.js";
import { waitFor } from "../helpers/net.js";

test("readProcess: this process, a gone pid, and an unreaped zombie", async () => {
  const self = readProcess(process.pid);
  assert.ok(self);
  assert.equal(self.zombie, false);
  assert.ok(self.startTime.length > 0);
  assert.equal(pidState(process.pid), "alive");
  assert.equal(readProcess(0), undefined);
  assert.equal(pidState(2 ** 22 + 1), "gone");

  // `sh` starts a short child, then execs a `sleep` that never reaps it: the child stays a zombie.
  const parent = spawn("/bin/sh", ["-c", "sleep 0.05 & echo $!; exec sleep 5"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  try {
    const child = await new Promise<number>((resolve) =>
      parent.stdout.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim()))),
    );
    await waitFor(async () => (pidState(child) === "zombie" ? true : undefined), {
      timeoutMs: 5000,
      what: "the unreaped child to be a zombie",
    });
    assert.equal(readProcess(child)?.zombie, true);
    assert.equal(isAlive({ pid: child, startTime: readProcess(child)?.startTime ?? "" }), false);
  } finally {
    parent.kill("SIGKILL");
  }
});

test("identities survive pid reuse: another start time is another process", () => {
  const me = identityOf(process.pid);
  assert.ok(me);
  assert.deepEqual(parseProcessId(formatProcessId(me)), me);
  assert.equal(isAlive(me), true);
  assert.equal(isAlive({ pid: process.pid, startTime: `${me.startTime}0` }), false);
  assert.equal(parseProcessId("12x@3"), undefined);
  assert.equal(parseProcessId("12@"), undefined);
});

test("process groups: a detached child leads its own group; signalling the group reaches it", async () => {
  const leader = spawn("/bin/sh", ["-c", "sleep 30 & wait"], {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, OPENWORK_PROCESSES_TEST: "marker" },
  });
  const pid = leader.pid as number;
  try {
    assert.equal(processGroupOf(pid), pid);
    assert.notEqual(processGroupOf(process.pid), pid);
    assert.equal(readEnviron(pid)?.OPENWORK_PROCESSES_TEST, "marker");
    assert.equal(groupAlive(pid), true);
    signalGroup(pid, "SIGKILL");
    await waitFor(async () => (groupAlive(pid) ? undefined : true), {
      timeoutMs: 5000,
      what: "the group to die",
    });
    signalGroup(pid, "SIGKILL"); // a gone group is not an error
  } finally {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});
