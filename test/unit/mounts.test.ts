import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { UsageError } from "../../src/errors/errors.js";
import {
  dockerMounts,
  parseMountSpec,
  refuseMountsOnHost,
  type ValidatedMount,
  type ValidateMountsOptions,
  validateMounts,
} from "../../src/mounts/index.js";
import { appleBindsFromMounts, appleMountArgs } from "../../src/sandbox/apple/argv.js";

// One fixture tree: a fake home with credential directories, projects, sockets and symlinks.
const base = mkdtempSync(path.join(os.tmpdir(), "openwork-mounts-"));
const home = path.join(base, "home");
const projects = path.join(home, "projects");
const config = path.join(base, "config");
const allowlist = path.join(config, "allowlist.json");
const noAllowlist = path.join(config, "absent.json");
const badJson = path.join(config, "bad.json");
const badShape = path.join(config, "bad-shape.json");
const servers: net.Server[] = [];

function dir(...parts: string[]): string {
  const p = path.join(...parts);
  mkdirSync(p, { recursive: true });
  return p;
}

function listenUnix(socketPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(socketPath, () => resolve());
    servers.push(server);
  });
}

before(async () => {
  for (const d of [".ssh", ".aws/sub", ".config/gcloud", ".gnupg", ".docker", ".azure", ".kube"])
    dir(home, d);
  for (const d of [
    "app",
    "rw/sub",
    "my.envdir",
    ".env",
    "a:b",
    "a\uff1ab",
    "caf\u00e9",
    ".\u0455sh",
    "app/.kube",
    "sockdir",
    "withsock/run",
    "engine",
    "policy",
    "state/runs",
  ])
    dir(projects, d);
  writeFileSync(path.join(projects, "notes.txt"), "a file\n");
  symlinkSync(path.join(home, ".ssh"), path.join(projects, "link-ssh"));
  symlinkSync("/etc", path.join(projects, "link-etc"));
  symlinkSync(path.join(home, ".ssh", "not-yet"), path.join(projects, "dangling"));
  symlinkSync(path.join(home, ".aws"), path.join(projects, "link-aws"));
  symlinkSync(home, path.join(projects, "link-home"));
  symlinkSync(path.join(projects, "app"), path.join(projects, "link-app"));
  symlinkSync("/usr", path.join(projects, "rw", "escape"));
  await listenUnix(path.join(projects, "sockdir", "docker.sock"));
  await listenUnix(path.join(projects, "withsock", "run", "containerd.sock"));
  dir(config);
  writeFileSync(
    allowlist,
    JSON.stringify({
      roots: [
        { path: "~/projects/rw", allowReadWrite: true },
        { path: path.join(projects, "app"), allowReadWrite: false },
        { path: path.join(projects, "policy"), allowReadWrite: true },
      ],
      blockedSegments: ["secrets-vault"],
    }),
  );
  writeFileSync(
    path.join(projects, "policy", "allow.json"),
    JSON.stringify({ roots: [{ path: path.join(projects, "policy"), allowReadWrite: true }] }),
  );
  writeFileSync(badJson, '{ "roots": [ { "path": "/x", } ] }');
  writeFileSync(badShape, JSON.stringify({ roots: [{ path: "/x", allowReadWrite: "yes" }] }));
  dir(projects, "secrets-vault");
});

after(() => {
  for (const server of servers) server.close();
  rmSync(base, { recursive: true, force: true });
});

const defaults = (): ValidateMountsOptions => ({
  home,
  allowlistPath: allowlist,
  cwd: home,
  env: {
    DOCKER_HOST: `unix://${path.join(projects, "engine", "custom.sock")}`,
    OPENWORK_HOME: path.join(projects, "state"),
  },
  platform: "linux",
});

type Expect =
  | { ok: { hostPath: string; containerPath: string; readOnly: boolean } }
  | { ok: Array<{ hostPath: string; containerPath: string; readOnly: boolean }> }
  | { error: string };

interface Row {
  name: string;
  specs: () => string[];
  options?: () => Partial<ValidateMountsOptions>;
  expect: () => Expect;
}

const ok = (hostPath: string, sub: string, readOnly = true) => ({
  ok: { hostPath, containerPath: `/workspace/extra/${sub}`, readOnly },
});
const refused = (error: string) => ({ error });
const P = (...parts: string[]) => path.join(projects, ...parts);

const rows: Row[] = [
  // accepted
  {
    name: "plain directory, read-only by default",
    specs: () => [`${P("app")}:app`],
    expect: () => ok(P("app"), "app"),
  },
  { name: "explicit :ro", specs: () => [`${P("app")}:app:ro`], expect: () => ok(P("app"), "app") },
  {
    name: ":rw granted by an allowlist root (~ expanded)",
    specs: () => [`${P("rw")}:data:rw`],
    expect: () => ok(P("rw"), "data", false),
  },
  {
    name: ":rw below a granting root",
    specs: () => [`${P("rw", "sub")}:data:rw`],
    expect: () => ok(P("rw", "sub"), "data", false),
  },
  {
    name: ":ro inside a read-write root stays read-only",
    specs: () => [`${P("rw")}:data:ro`],
    expect: () => ok(P("rw"), "data"),
  },
  { name: "nested subpath", specs: () => [`${P("app")}:tools/app`], expect: () => ok(P("app"), "tools/app") },
  {
    name: "trailing slash on subpath",
    specs: () => [`${P("app")}:data/`],
    expect: () => ok(P("app"), "data"),
  },
  {
    name: "relative host path resolved against cwd",
    specs: () => ["projects/app:app"],
    expect: () => ok(P("app"), "app"),
  },
  {
    name: "symlink to an allowed directory resolves to its real path",
    specs: () => [`${P("link-app")}:app`],
    expect: () => ok(P("app"), "app"),
  },
  {
    name: "colon inside a host directory name",
    specs: () => [`${P("a:b")}:ab`],
    expect: () => ok(P("a:b"), "ab"),
  },
  { name: "colon in name with a mode", specs: () => [`${P("a:b")}:ab:ro`], expect: () => ok(P("a:b"), "ab") },
  {
    name: "fullwidth colon is part of the name, not a separator",
    specs: () => [`${P("a\uff1ab")}:ab`],
    expect: () => ok(P("a\uff1ab"), "ab"),
  },
  {
    name: "decomposed unicode is NFC-normalised to the directory's name",
    specs: () => [`${P("cafe\u0301")}:cafe`],
    expect: () => ok(P("caf\u00e9"), "cafe"),
  },
  {
    name: "Cyrillic look-alike of .ssh is a different directory",
    specs: () => [`${P(".\u0455sh")}:x`],
    expect: () => ok(P(".\u0455sh"), "x"),
  },
  {
    name: "my.envdir is not matched by .env",
    specs: () => [`${P("my.envdir")}:env`],
    expect: () => ok(P("my.envdir"), "env"),
  },
  {
    name: "fullwidth dots in the subpath are a name, not ..",
    specs: () => [`${P("app")}:\uff0e\uff0e`],
    expect: () => ok(P("app"), "\uff0e\uff0e"),
  },
  {
    name: "a regular file is accepted by the validator",
    specs: () => [`${P("notes.txt")}:notes`],
    expect: () => ok(P("notes.txt"), "notes"),
  },
  {
    name: "two mounts at distinct subpaths",
    specs: () => [`${P("app")}:a`, `${P("rw")}:b:rw`],
    expect: () => ({
      ok: [
        { hostPath: P("app"), containerPath: "/workspace/extra/a", readOnly: true },
        { hostPath: P("rw"), containerPath: "/workspace/extra/b", readOnly: false },
      ],
    }),
  },
  // spec syntax
  { name: "empty spec", specs: () => [""], expect: () => refused("empty mount spec") },
  { name: "no subpath", specs: () => [P("app")], expect: () => refused("missing container subpath") },
  {
    name: "mode without subpath is ambiguous",
    specs: () => [`${P("app")}:ro`],
    expect: () => refused('missing container subpath ("ro" reads as a mode)'),
  },
  { name: "empty host path", specs: () => [":data"], expect: () => refused("empty host path") },
  { name: "empty subpath", specs: () => [`${P("app")}:`], expect: () => refused("empty container subpath") },
  {
    name: "empty subpath before mode",
    specs: () => [`${P("app")}::ro`],
    expect: () => refused("empty container subpath"),
  },
  {
    name: "absolute subpath",
    specs: () => [`${P("app")}:/etc`],
    expect: () => refused('container subpath "/etc" is absolute'),
  },
  { name: ".. in subpath", specs: () => [`${P("app")}:../x`], expect: () => refused('contains ".."') },
  {
    name: ".. in the middle of a subpath",
    specs: () => [`${P("app")}:a/../../x`],
    expect: () => refused('contains ".."'),
  },
  {
    name: "empty segment in subpath",
    specs: () => [`${P("app")}:a//b`],
    expect: () => refused('has an empty or "." segment'),
  },
  {
    name: "backslash in subpath",
    specs: () => [`${P("app")}:a\\b`],
    expect: () => refused("contains a backslash"),
  },
  {
    name: "fullwidth colon alone does not separate",
    specs: () => [`${P("app")}\uff1adata`],
    expect: () => refused("missing container subpath"),
  },
  {
    name: "comma cannot be carried by mount syntaxes",
    specs: () => [`${P("app")},x:data`],
    expect: () => refused('contains ","'),
  },
  {
    name: "equals sign cannot be carried",
    specs: () => [`${P("app")}=x:data`],
    expect: () => refused('contains "="'),
  },
  {
    name: "newline is refused",
    specs: () => [`${P("app")}\n:data`],
    expect: () => refused("control character U+000A"),
  },
  {
    name: "Windows drive letter parsed, refused on Linux",
    specs: () => ["C:\\x:sub"],
    expect: () => refused('host path "C:\\x" is a Windows drive path'),
  },
  {
    name: "Windows drive with forward slash and mode",
    specs: () => ["D:/data:sub:ro"],
    expect: () => refused('host path "D:/data" is a Windows drive path'),
  },
  {
    name: "overlapping subpaths",
    specs: () => [`${P("app")}:a`, `${P("rw")}:a/b`],
    expect: () => refused("overlaps the one of"),
  },
  {
    name: "same subpath twice",
    specs: () => [`${P("app")}:a`, `${P("rw")}:a`],
    expect: () => refused("overlaps"),
  },
  // places that are never mounted
  { name: "the root directory", specs: () => ["/:root"], expect: () => refused("is the root directory") },
  {
    name: "the home directory itself",
    specs: () => [`${home}:home`],
    expect: () => refused("is your home directory"),
  },
  {
    name: "home through a symlink",
    specs: () => [`${P("link-home")}:home`],
    expect: () => refused("is your home directory"),
  },
  {
    name: "a parent of the home directory",
    specs: () => [`${base}:all`],
    expect: () => refused("contains your home directory"),
  },
  {
    name: "system directory /etc",
    specs: () => ["/etc:etc"],
    expect: () => refused("is a system directory (/etc)"),
  },
  {
    name: "below a system directory",
    specs: () => ["/usr/lib:lib"],
    expect: () => refused("is a system directory (/usr)"),
  },
  { name: "/proc", specs: () => ["/proc:p"], expect: () => refused("is a system directory (/proc)") },
  {
    name: "/var/lib/docker",
    specs: () => ["/var/lib/docker:d"],
    expect: () => refused("is a system directory (/var/lib)"),
  },
  {
    name: "/var itself is too broad",
    specs: () => ["/var:v"],
    expect: () => refused("is too broad to mount"),
  },
  {
    name: "symlink escape into /etc",
    specs: () => [`${P("link-etc")}:e`],
    expect: () => refused("is a system directory (/etc) reached through a symlink"),
  },
  {
    name: "symlink escape inside a read-write root",
    specs: () => [`${P("rw", "escape")}:e:rw`],
    expect: () => refused("is a system directory (/usr) reached through a symlink"),
  },
  // credentials
  { name: ".ssh", specs: () => [`${home}/.ssh:k`], expect: () => refused("credential directory (.ssh)") },
  {
    name: "inside .aws",
    specs: () => [`${home}/.aws/sub:k`],
    expect: () => refused("credential directory (.aws)"),
  },
  {
    name: ".config/gcloud by segments",
    specs: () => [`${home}/.config/gcloud:g`],
    expect: () => refused("credential directory (.config/gcloud)"),
  },
  {
    name: ".gnupg",
    specs: () => [`${home}/.gnupg:g`],
    expect: () => refused("credential directory (.gnupg)"),
  },
  {
    name: ".docker",
    specs: () => [`${home}/.docker:d`],
    expect: () => refused("credential directory (.docker)"),
  },
  {
    name: ".azure",
    specs: () => [`${home}/.azure:a`],
    expect: () => refused("credential directory (.azure)"),
  },
  {
    name: ".kube nested in a project",
    specs: () => [`${P("app", ".kube")}:k`],
    expect: () => refused("credential directory (.kube)"),
  },
  {
    name: ".env directory (segment match)",
    specs: () => [`${P(".env")}:e`],
    expect: () => refused("credential directory (.env)"),
  },
  {
    name: "symlink into .ssh",
    specs: () => [`${P("link-ssh")}:k`],
    expect: () => refused("credential directory (.ssh) through a symlink"),
  },
  {
    name: "dangling symlink into .ssh",
    specs: () => [`${P("dangling")}:k`],
    expect: () => refused("credential directory (.ssh) through a symlink"),
  },
  {
    name: "not-yet-existing child below a symlink into .aws",
    specs: () => [`${P("link-aws", "new-child")}:k`],
    expect: () => refused("credential directory (.aws) through a symlink"),
  },
  {
    name: "segment blocked by the allowlist",
    specs: () => [`${P("secrets-vault")}:s`],
    expect: () => refused("credential directory (secrets-vault)"),
  },
  // engine sockets
  {
    name: "directory with a Docker socket",
    specs: () => [`${P("sockdir")}:s`],
    expect: () => refused("contains a container-engine socket"),
  },
  {
    name: "the socket itself",
    specs: () => [`${P("sockdir", "docker.sock")}:s`],
    expect: () => refused("is a container-engine socket"),
  },
  {
    name: "socket two levels down",
    specs: () => [`${P("withsock")}:s`],
    expect: () => refused("containerd.sock"),
  },
  {
    name: "DOCKER_HOST's socket directory",
    specs: () => [`${P("engine")}:s`],
    expect: () => refused("contains a container-engine socket or state directory"),
  },
  {
    name: "Apple container's app root",
    specs: () => [`${dir(home, "Library", "Application Support", "com.apple.container")}:s`],
    expect: () => refused("container-engine socket or state directory"),
  },
  // openwork's own state (OPENWORK_HOME): every run's tokens
  {
    name: "openwork's state directory",
    specs: () => [`${P("state")}:s`],
    expect: () => refused("is openwork's own state"),
  },
  {
    name: "inside openwork's state",
    specs: () => [`${P("state", "runs")}:s`],
    expect: () => refused("is inside openwork's own state"),
  },
  // existence
  {
    name: "a path that does not exist",
    specs: () => [`${P("nope")}:n`],
    expect: () => refused("does not exist"),
  },
  // allowlist and read-write
  { name: ":rw without a grant", specs: () => [`${P("app")}:app:rw`], expect: () => refused("no root in") },
  {
    name: ":rw with no allowlist file",
    specs: () => [`${P("rw")}:data:rw`],
    options: () => ({ allowlistPath: noAllowlist }),
    expect: () => refused("there is no mount allowlist at"),
  },
  {
    name: "read-only needs no allowlist",
    specs: () => [`${P("app")}:app`],
    options: () => ({ allowlistPath: noAllowlist }),
    expect: () => ok(P("app"), "app"),
  },
  {
    name: "invalid JSON allowlist is reported as invalid with the parse error",
    specs: () => [`${P("app")}:app`],
    options: () => ({ allowlistPath: badJson }),
    expect: () => refused(`mount allowlist ${badJson} is invalid: `),
  },
  {
    name: "allowlist of the wrong shape names the field",
    specs: () => [`${P("app")}:app`],
    options: () => ({ allowlistPath: badShape }),
    expect: () => refused("is invalid: roots.0.allowReadWrite"),
  },
  {
    name: "allowlist inside the workspace",
    specs: () => [`${P("app")}:app`],
    options: () => ({ workspace: config }),
    expect: () => refused("is inside the workspace"),
  },
  {
    name: "a read-write mount may not contain the allowlist",
    specs: () => [`${P("policy")}:p:rw`],
    options: () => ({ allowlistPath: P("policy", "allow.json") }),
    expect: () => refused("contains the mount allowlist"),
  },
  {
    name: "OPENWORK_MOUNT_ALLOWLIST names the file",
    specs: () => [`${P("rw")}:data:rw`],
    options: () => ({ allowlistPath: undefined, env: { OPENWORK_MOUNT_ALLOWLIST: allowlist } }),
    expect: () => ok(P("rw"), "data", false),
  },
];

/** What each substrate does with specs: host refuses them; docker and Apple validate then translate. */
function throughSubstrate(
  substrate: "docker" | "container",
  specs: string[],
  options: ValidateMountsOptions,
) {
  const mounts = validateMounts(specs, options);
  const translated =
    substrate === "docker"
      ? dockerMounts(mounts).map((b) => ({
          source: b.Source,
          target: b.Target,
          readOnly: b.ReadOnly === true,
        }))
      : appleBindsFromMounts(mounts);
  return { mounts, translated };
}

function outcome(fn: () => unknown): { value?: unknown; error?: string } {
  try {
    return { value: fn() };
  } catch (error) {
    assert.ok(error instanceof UsageError, `expected a UsageError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    assert.ok(!error.oneLine().includes("\n"));
    return { error: error.oneLine() };
  }
}

describe("mount validation table", () => {
  test("the table has at least 40 specs", () => {
    assert.ok(rows.length >= 40, `${rows.length} rows`);
  });
  for (const row of rows) {
    test(row.name, () => {
      const options = { ...defaults(), ...(row.options?.() ?? {}) } as ValidateMountsOptions;
      const specs = row.specs();
      const expect = row.expect();
      const docker = outcome(() => throughSubstrate("docker", specs, options));
      const apple = outcome(() => throughSubstrate("container", specs, options));
      // identical on every substrate: the same refusal, or the same mounts translated alike
      assert.deepEqual(apple.error, docker.error);
      const host = outcome(() => refuseMountsOnHost(specs));
      if (specs.length > 0) assert.match(host.error ?? "", /mounts need a sandbox/);
      if ("error" in expect) {
        assert.ok(docker.error, `expected a refusal containing ${JSON.stringify(expect.error)}`);
        assert.ok(
          docker.error.includes(expect.error),
          `${docker.error}\n  lacks ${JSON.stringify(expect.error)}`,
        );
        assert.ok(
          docker.error.startsWith("--mount ") || docker.error.startsWith("mount allowlist "),
          docker.error,
        );
        return;
      }
      assert.equal(docker.error, undefined, docker.error);
      const d = docker.value as ReturnType<typeof throughSubstrate>;
      const a = apple.value as ReturnType<typeof throughSubstrate>;
      const wanted = Array.isArray(expect.ok) ? expect.ok : [expect.ok];
      assert.deepEqual(
        d.mounts.map(({ hostPath, containerPath, readOnly }) => ({ hostPath, containerPath, readOnly })),
        wanted,
      );
      assert.deepEqual(a.mounts, d.mounts);
      assert.deepEqual(a.translated, d.translated);
      assert.deepEqual(
        d.translated,
        wanted.map((w) => ({ source: w.hostPath, target: w.containerPath, readOnly: w.readOnly })),
      );
    });
  }
});

describe("mount spec parsing", () => {
  test("Windows drive letters and colons split without corruption", () => {
    assert.deepEqual(parseMountSpec("C:\\x:sub:ro"), {
      spec: "C:\\x:sub:ro",
      hostPath: "C:\\x",
      subpath: "sub",
      mode: "ro",
      explicitMode: true,
    });
    assert.deepEqual(parseMountSpec("C:\\a:b\\c:sub"), {
      spec: "C:\\a:b\\c:sub",
      hostPath: "C:\\a:b\\c",
      subpath: "sub",
      mode: "ro",
      explicitMode: false,
    });
    assert.equal(parseMountSpec("/data/a:b:c:rw").hostPath, "/data/a:b");
    assert.equal(parseMountSpec("/data/a:b:c:rw").subpath, "c");
    assert.equal(parseMountSpec("/data/x:rw:ro").subpath, "rw");
  });

  test("the host refuses --mount outright and accepts none", () => {
    assert.doesNotThrow(() => refuseMountsOnHost([]));
    const refusal = outcome(() => refuseMountsOnHost(["/data:d"]));
    assert.match(
      refusal.error ?? "",
      /^--mount "\/data:d": mounts need a sandbox.*--sandbox docker, container or auto/,
    );
  });
});

describe("translations", () => {
  const mounts: ValidatedMount[] = [
    { hostPath: "/data/a:b", containerPath: "/workspace/extra/a", readOnly: true, spec: "/data/a:b:a" },
    { hostPath: "/data/rw", containerPath: "/workspace/extra/rw", readOnly: false, spec: "/data/rw:rw:rw" },
  ];
  test("docker gets Mounts entries (a colon in a path cannot split them)", () => {
    assert.deepEqual(dockerMounts(mounts), [
      { Type: "bind", Source: "/data/a:b", Target: "/workspace/extra/a", ReadOnly: true },
      { Type: "bind", Source: "/data/rw", Target: "/workspace/extra/rw", ReadOnly: false },
    ]);
  });
  test("Apple gets --mount type=bind with readonly only where read-only", () => {
    assert.deepEqual(appleMountArgs(appleBindsFromMounts(mounts)), [
      "--mount",
      "type=bind,source=/data/a:b,target=/workspace/extra/a,readonly",
      "--mount",
      "type=bind,source=/data/rw,target=/workspace/extra/rw",
    ]);
  });
});
