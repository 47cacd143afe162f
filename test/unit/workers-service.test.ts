import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { isOpenworkError } from "../../src/errors/errors.js";
import { workersConfigId } from "../../src/workers/paths.js";
import {
  installService,
  SERVICE_MARKER,
  type ServicePlan,
  type ServiceRequest,
  servicePlan,
  uninstallService,
} from "../../src/workers/service.js";
import { runCli } from "../helpers/cli.js";

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), "openwork-service-"));
}

function request(overrides: Partial<ServiceRequest> = {}): ServiceRequest {
  return {
    platform: "linux",
    scope: "user",
    configFile: "/srv/fleet/workers.json",
    node: "/usr/local/bin/node",
    cli: "/opt/openwork/dist/bin/openwork.js",
    home: "/home/ada",
    uid: 1000,
    user: "ada",
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", OPENWORK_HOME: "/home/ada/.openwork" },
    stopTimeoutSec: 30,
    logDir: "/home/ada/Library/Logs/openwork",
    ...overrides,
  };
}

/** A runner that records every argv and fails the ones `fail` picks. */
function recorder(fail: (argv: string[]) => boolean = () => false) {
  const calls: string[][] = [];
  return {
    calls,
    run: async (argv: string[]) => {
      calls.push(argv);
      if (fail(argv))
        throw Object.assign(new Error("Command failed"), { stderr: "Failed to connect to bus\n" });
    },
  };
}

function lines(content: string): string[] {
  return content.split("\n");
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isOpenworkError(error), String(error));
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

test("a user systemd unit runs `workers run` for the config, restarts on failure and signals only the supervisor", () => {
  const plan = servicePlan(request());
  const id = workersConfigId("/srv/fleet/workers.json");
  assert.equal(plan.kind, "systemd");
  assert.equal(plan.name, `openwork-workers-${id}.service`);
  assert.equal(plan.file, `/home/ada/.config/systemd/user/openwork-workers-${id}.service`);
  const content = lines(plan.content);
  assert.equal(content[0], `# ${SERVICE_MARKER}`);
  for (const line of [
    "[Unit]",
    "Description=openwork workers (/srv/fleet/workers.json)",
    "After=network-online.target docker.service",
    "Wants=network-online.target",
    "[Service]",
    "Type=simple",
    "ExecStart=/usr/local/bin/node /opt/openwork/dist/bin/openwork.js workers run --config /srv/fleet/workers.json",
    "Environment=OPENWORK_HOME=/home/ada/.openwork",
    "Environment=PATH=/usr/local/bin:/usr/bin:/bin",
    "Restart=on-failure",
    "RestartSec=5",
    "KillSignal=SIGTERM",
    "KillMode=process",
    "TimeoutStopSec=45",
    "[Install]",
    "WantedBy=default.target",
  ]) {
    assert.ok(content.includes(line), `missing ${line}\n${plan.content}`);
  }
  assert.ok(!content.some((line) => line.startsWith("User=")));
  assert.deepEqual(plan.activate, [
    ["systemctl", "--user", "daemon-reload"],
    ["systemctl", "--user", "enable", "--now", plan.name],
  ]);
  assert.deepEqual(plan.deactivate, [["systemctl", "--user", "disable", "--now", plan.name]]);
  assert.deepEqual(plan.afterRemove, [["systemctl", "--user", "daemon-reload"]]);
});

test("a system systemd unit goes to /etc, runs as the user and is wanted by multi-user.target", () => {
  const plan = servicePlan(request({ scope: "system" }));
  assert.equal(plan.file, path.join("/etc/systemd/system", plan.name));
  const content = lines(plan.content);
  assert.ok(content.includes("User=ada"));
  assert.ok(content.includes("WantedBy=multi-user.target"));
  assert.ok(!content.includes("WantedBy=default.target"));
  assert.deepEqual(plan.activate, [
    ["systemctl", "daemon-reload"],
    ["systemctl", "enable", "--now", plan.name],
  ]);
  assert.deepEqual(plan.deactivate, [["systemctl", "disable", "--now", plan.name]]);
});

test("systemd quoting: spaces, quotes and backslashes quoted, % doubled everywhere, $ doubled on the command line", () => {
  const configFile = `/srv/my fleet/100%/$HOME/"x"/a\\b.json`;
  const plan = servicePlan(
    request({ configFile, node: "/opt/my node/bin/node", env: { PATH: "/a b:/c$d%e", X: 'say "hi"' } }),
  );
  const content = lines(plan.content);
  assert.ok(
    content.includes(
      `ExecStart="/opt/my node/bin/node" /opt/openwork/dist/bin/openwork.js workers run --config ` +
        `"/srv/my fleet/100%%/$$HOME/\\"x\\"/a\\\\b.json"`,
    ),
    plan.content,
  );
  assert.ok(content.includes(`Description=openwork workers (/srv/my fleet/100%%/$HOME/"x"/a\\b.json)`));
  assert.ok(content.includes(`Environment="PATH=/a b:/c$d%%e"`), plan.content);
  assert.ok(content.includes(`Environment="X=say \\"hi\\""`), plan.content);
  // the unit is named after the config path itself
  assert.equal(plan.name, `openwork-workers-${workersConfigId(configFile)}.service`);
});

test("a launchd property list carries the arguments, environment and logs, XML-escaped", () => {
  const configFile = "/Users/ada/R&D <fleet>/workers.json";
  const plan = servicePlan(
    request({
      platform: "darwin",
      configFile,
      home: "/Users/ada",
      env: { PATH: "/usr/bin:/bin", Q: `"a'b"` },
    }),
  );
  const label = `dev.openwork.workers.${workersConfigId(configFile)}`;
  assert.equal(plan.kind, "launchd");
  assert.equal(plan.name, label);
  assert.equal(plan.file, `/Users/ada/Library/LaunchAgents/${label}.plist`);
  assert.deepEqual(plan.activate, [["launchctl", "bootstrap", "gui/1000", plan.file]]);
  assert.deepEqual(plan.deactivate, [["launchctl", "bootout", `gui/1000/${label}`]]);
  assert.deepEqual(plan.afterRemove, []);
  assert.equal(plan.logDir, "/home/ada/Library/Logs/openwork");
  const text = plan.content.replace(/\s+/g, "");
  assert.ok(plan.content.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'));
  assert.ok(plan.content.includes(`<!-- ${SERVICE_MARKER} -->`));
  assert.ok(!plan.content.includes("R&D <fleet>"), "unescaped");
  for (const fragment of [
    `<key>Label</key><string>${label}</string>`,
    "<key>ProgramArguments</key><array><string>/usr/local/bin/node</string>" +
      "<string>/opt/openwork/dist/bin/openwork.js</string><string>workers</string><string>run</string>" +
      "<string>--config</string><string>/Users/ada/R&amp;D&lt;fleet&gt;/workers.json</string></array>",
    "<key>EnvironmentVariables</key><dict><key>OPENWORK_SANDBOX_LOG</key><string>/home/ada/Library/Logs/openwork/supervisor.log</string><key>PATH</key><string>/usr/bin:/bin</string>" +
      "<key>Q</key><string>&quot;a&apos;b&quot;</string></dict>",
    "<key>RunAtLoad</key><true/>",
    "<key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>",
    "<key>ExitTimeOut</key><integer>45</integer>",
    "<key>ProcessType</key><string>Background</string>",
    "<key>StandardOutPath</key><string>/home/ada/Library/Logs/openwork/supervisor.log</string>",
    "<key>StandardErrorPath</key><string>/home/ada/Library/Logs/openwork/supervisor.log</string>",
  ]) {
    assert.ok(text.includes(fragment), `missing ${fragment}\n${plan.content}`);
  }
  assert.ok(!text.includes("<key>UserName</key>"));
});

test("a system launchd daemon goes to /Library/LaunchDaemons, runs as the user, loads in the system domain", () => {
  const plan = servicePlan(request({ platform: "darwin", scope: "system" }));
  assert.equal(plan.file, `/Library/LaunchDaemons/${plan.name}.plist`);
  assert.deepEqual(plan.activate, [["launchctl", "bootstrap", "system", plan.file]]);
  assert.deepEqual(plan.deactivate, [["launchctl", "bootout", `system/${plan.name}`]]);
  assert.ok(plan.content.replace(/\s+/g, "").includes("<key>UserName</key><string>ada</string>"));
});

test("other platforms are refused with the supported ones named (exit 2)", () => {
  assert.throws(
    () => servicePlan(request({ platform: "win32" })),
    (error: unknown) => {
      assert.ok(isOpenworkError(error));
      assert.equal(error.code, "service_unsupported_platform");
      assert.equal(error.exitCode, 2);
      assert.match(error.message, /Linux \(systemd\) and macOS \(launchd\).*win32/);
      return true;
    },
  );
});

test("requests that cannot be written faithfully are refused (relative paths, control characters)", () => {
  for (const bad of [
    request({ configFile: "workers.json" }),
    request({ configFile: "/srv/a\nb.json" }),
    // systemd refuses quotes and backslashes in an executable name and cannot say a literal $ there
    request({ node: '/opt/"node"/bin/node' }),
    request({ node: "/opt/$node/bin/node" }),
    request({ env: { "BAD NAME": "x" } }),
  ]) {
    assert.throws(
      () => servicePlan(bad),
      (error: unknown) => isOpenworkError(error) && error.exitCode === 2,
    );
  }
});

test("install writes the file (0644, parents created) and runs the activation in order; reinstall replaces", async () => {
  const home = tempDir();
  const plan = servicePlan(request({ home }));
  const runner = recorder();
  assert.deepEqual(await installService(plan, runner), { file: plan.file, replaced: false });
  assert.equal(readFileSync(plan.file, "utf8"), plan.content);
  assert.equal(statSync(plan.file).mode & 0o777, 0o644);
  assert.deepEqual(runner.calls, plan.activate);

  const changed = servicePlan(request({ home, stopTimeoutSec: 60 }));
  const again = recorder();
  assert.deepEqual(await installService(changed, again), { file: plan.file, replaced: true });
  assert.match(readFileSync(plan.file, "utf8"), /^TimeoutStopSec=75$/m);
  // the old service is stopped first, so that what runs is the new content
  assert.deepEqual(again.calls, [...changed.deactivate, ...changed.activate]);
  assert.deepEqual(readdirSync(path.dirname(plan.file)), [path.basename(plan.file)]);
});

test("launchd install creates the log directory", async () => {
  const home = tempDir();
  const plan = servicePlan(
    request({ platform: "darwin", home, logDir: path.join(home, "logs", "openwork") }),
  );
  const runner = recorder();
  await installService(plan, runner);
  assert.ok(statSync(path.join(home, "logs", "openwork")).isDirectory());
  assert.deepEqual(runner.calls, [["launchctl", "bootstrap", "gui/1000", plan.file]]);
});

test("a file without the marker is neither overwritten nor removed", async () => {
  const home = tempDir();
  const plan = servicePlan(request({ home }));
  mkdirSync(path.dirname(plan.file), { recursive: true });
  writeFileSync(plan.file, "[Service]\nExecStart=/bin/true\n");
  const runner = recorder();
  await rejectsWith(installService(plan, runner), "service_file_foreign", new RegExp(plan.file));
  await rejectsWith(uninstallService(plan, runner), "service_file_foreign");
  assert.equal(readFileSync(plan.file, "utf8"), "[Service]\nExecStart=/bin/true\n");
  assert.deepEqual(runner.calls, []);
});

test("a failed activation removes the new file and names the command and its stderr", async () => {
  const home = tempDir();
  const plan = servicePlan(request({ home }));
  const runner = recorder((argv) => argv.includes("enable"));
  await assert.rejects(installService(plan, runner), (error: unknown) => {
    assert.ok(isOpenworkError(error));
    assert.equal(error.code, "service_command_failed");
    assert.match(error.message, /`systemctl --user enable --now openwork-workers-\w+\.service` failed/);
    assert.match(error.message, /Failed to connect to bus/);
    assert.match(error.hint ?? "", /removed again/);
    return true;
  });
  assert.ok(!existsSync(plan.file));
  assert.deepEqual(readdirSync(path.dirname(plan.file)), []);
  // activation, then a best-effort cleanup of whatever half of it happened
  assert.deepEqual(runner.calls, [...plan.activate, ...plan.deactivate, ...plan.afterRemove]);
});

test("a failed activation of a replacement restores the previous file and activates it again", async () => {
  const home = tempDir();
  const old = servicePlan(request({ home }));
  await installService(old, recorder());
  const replacement = servicePlan(request({ home, stopTimeoutSec: 90 }));
  let enables = 0;
  const runner = recorder((argv) => argv.includes("enable") && ++enables === 1);
  await assert.rejects(installService(replacement, runner), (error: unknown) => {
    assert.ok(isOpenworkError(error));
    assert.equal(error.code, "service_command_failed");
    assert.match(error.hint ?? "", /previous .* was restored and activated again/);
    return true;
  });
  assert.equal(readFileSync(old.file, "utf8"), old.content);
  assert.deepEqual(runner.calls, [...old.deactivate, ...replacement.activate, ...old.activate]);
});

test("uninstall deactivates, removes the file and reloads; with no file it does nothing", async () => {
  const home = tempDir();
  const plan = servicePlan(request({ home }));
  await installService(plan, recorder());
  const runner = recorder();
  assert.deepEqual(await uninstallService(plan, runner), { file: plan.file, removed: true });
  assert.ok(!existsSync(plan.file));
  assert.deepEqual(runner.calls, [...plan.deactivate, ...plan.afterRemove]);

  const none = recorder();
  assert.deepEqual(await uninstallService(plan, none), { file: plan.file, removed: false });
  assert.deepEqual(none.calls, []);
});

test("a failed deactivation leaves the file in place", async () => {
  const home = tempDir();
  const plan = servicePlan(request({ home }));
  await installService(plan, recorder());
  await rejectsWith(
    uninstallService(
      plan,
      recorder((argv) => argv.includes("disable")),
    ),
    "service_command_failed",
    /disable --now/,
  );
  assert.equal(readFileSync(plan.file, "utf8"), plan.content);
});

// --- systemd-analyze ---------------------------------------------------------

const SYSTEMD_ANALYZE = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].find((file) => existsSync(file));
const REQUIRE_ANALYZE = process.env.OPENWORK_REQUIRE_SYSTEMD_ANALYZE === "1";
const analyzeSkip =
  SYSTEMD_ANALYZE === undefined && !REQUIRE_ANALYZE
    ? "systemd-analyze is not installed (set OPENWORK_REQUIRE_SYSTEMD_ANALYZE=1 to fail instead)"
    : false;

/**
 * `systemd-analyze verify` offline (no manager: `--user verify` needs a user
 * session bus). It fails on fatal errors (bad ExecStart, unbalanced quotes,
 * bad specifiers) and reports lesser parse problems as `<file>:<line>: …`
 * while still exiting 0, so those count as failures here too.
 */
function verify(file: string): { ok: boolean; output: string } {
  assert.ok(
    SYSTEMD_ANALYZE,
    "systemd-analyze is required (OPENWORK_REQUIRE_SYSTEMD_ANALYZE=1) but not installed",
  );
  const result = spawnSync(SYSTEMD_ANALYZE, ["verify", "--man=no", file], { encoding: "utf8" });
  const output = `${result.stdout}${result.stderr}`;
  const parseWarnings = output.split("\n").filter((line) => line.startsWith(`${file}:`));
  return { ok: result.status === 0 && parseWarnings.length === 0, output };
}

function renderedUnit(dir: string, configFile: string, scope: "user" | "system" = "user"): ServicePlan {
  const cli = path.join(dir, "openwork entry.js");
  writeFileSync(cli, "process.exit(0);\n");
  return servicePlan(
    request({
      home: dir,
      scope,
      user: "root",
      configFile,
      node: process.execPath,
      cli,
      env: { PATH: "/usr/bin:/bin", OPENWORK_HOME: path.join(dir, "state 100%") },
    }),
  );
}

test("systemd-analyze verifies the rendered units, awkward config paths included", {
  skip: analyzeSkip,
}, () => {
  const dir = tempDir();
  for (const [configFile, scope] of [
    [path.join(dir, "workers.json"), "user"],
    [path.join(dir, `my fleet/100%/$HOME/"quoted" 'single'/back\\slash.json`), "user"],
    [path.join(dir, "workers.json"), "system"],
  ] as const) {
    const plan = renderedUnit(dir, configFile, scope);
    const file = path.join(dir, plan.name);
    writeFileSync(file, plan.content);
    const result = verify(file);
    assert.ok(result.ok, `${plan.content}\n${result.output}`);
  }
});

test("systemd-analyze rejects broken units, so the check above is real", { skip: analyzeSkip }, () => {
  const dir = tempDir();
  const plan = renderedUnit(dir, path.join(dir, "workers.json"));
  const file = path.join(dir, plan.name);
  const breakages: [string, (content: string) => string][] = [
    ["relative ExecStart", (c) => c.replace(/^ExecStart=\S+/m, "ExecStart=./node")],
    ["unbalanced quote", (c) => c.replace(/^ExecStart=(.*)$/m, 'ExecStart=$1 "open')],
    ["unescaped specifier", (c) => c.replace(/%%/g, "%Q")],
    ["bad Restart value", (c) => c.replace("Restart=on-failure", "Restart=sometimes")],
  ];
  for (const [what, breakIt] of breakages) {
    const broken = breakIt(plan.content);
    assert.notEqual(broken, plan.content, what);
    writeFileSync(file, broken);
    assert.equal(verify(file).ok, false, `${what} passed verification:\n${broken}`);
  }
});

test("systemd reads the quoted executable back as the original path", { skip: analyzeSkip }, () => {
  // A node that does not exist: verify names the path it parsed in its complaint.
  const dir = tempDir();
  const node = path.join(dir, "no such dir", "100%", "node");
  const plan = servicePlan(request({ home: dir, node }));
  const file = path.join(dir, plan.name);
  writeFileSync(file, plan.content);
  const result = verify(file);
  assert.equal(result.ok, false);
  assert.ok(result.output.includes(`Command ${node} is not executable`), result.output);
});

test("the unit `openwork workers install-service --print` writes passes systemd-analyze verify", {
  skip: analyzeSkip,
}, async () => {
  const dir = tempDir();
  const config = path.join(dir, "my fleet", "workers.json");
  mkdirSync(path.dirname(config), { recursive: true });
  writeFileSync(config, JSON.stringify({ workers: [{ name: "a", workspace: dir }] }));
  const printed = await runCli(["--json", "workers", "--config", config, "install-service", "--print"]);
  assert.equal(printed.exitCode, 0, printed.stderr);
  const plan = JSON.parse(printed.stdout) as ServicePlan;
  assert.equal(plan.kind, "systemd");
  assert.match(plan.content, /^ExecStart=.* workers run --config "[^"]*my fleet\/workers\.json"$/m);
  assert.ok(
    !existsSync(plan.file) || readFileSync(plan.file, "utf8").includes(SERVICE_MARKER),
    "--print changes nothing",
  );
  const file = path.join(dir, plan.name);
  writeFileSync(file, plan.content);
  const result = verify(file);
  assert.ok(result.ok, `${plan.content}\n${result.output}`);
  const human = await runCli(["workers", "--config", config, "install-service", "--print"]);
  assert.match(human.stdout, /^# then:\nsystemctl --user daemon-reload$/m);
});
