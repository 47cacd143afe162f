import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parse } from "dotenv";
import { formatDotenvLine, parseDotenv } from "../../src/credentials/dotenv.js";
import { installImports } from "../../src/credentials/install.js";
import { checkEnvName } from "../../src/credentials/names.js";
import { describePlan, resolveCredentials } from "../../src/credentials/plan.js";
import { readPrivateFile } from "../../src/credentials/private-file.js";
import { proxyEnvironment, rewriteProxyUrl } from "../../src/credentials/proxy.js";
import { readEnvStore, setStoreValue, unsetStoreValues } from "../../src/credentials/store.js";
import { UsageError } from "../../src/errors/errors.js";
import { REDACTED, redactText } from "../../src/logging/redact.js";

const tmp = () => mkdtempSync(path.join(os.tmpdir(), "openwork-credentials-"));

function usage(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(`${error.message} ${error.hint ?? ""}`, pattern);
    return true;
  });
}

async function usageAsync(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(fn, (error: unknown) => {
    assert.ok(error instanceof UsageError, String(error));
    assert.match(`${error.message} ${error.hint ?? ""}`, pattern);
    return true;
  });
}

test("names: invalid and reserved ones are refused with their name, never dropped", () => {
  checkEnvName("ANTHROPIC_API_KEY", "--env");
  checkEnvName("_x1", "--env");
  usage(() => checkEnvName("1ABC", "--env"), /"1ABC" is not a valid/);
  usage(() => checkEnvName("A-B", "--env"), /"A-B" is not a valid/);
  for (const name of [
    "OPENWORK_TOKEN",
    "OPENWORK_ANYTHING",
    "OPENCODE_SERVER_PASSWORD",
    "OPENCODE_SERVER_USERNAME",
    "HOME",
    "PATH",
    "XDG_CONFIG_HOME",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
  ])
    usage(() => checkEnvName(name, "the env file x:3"), new RegExp(`x:3: ${name} is reserved`));
});

test("dotenv: values parsed by the library, and a line it would skip is an error with its line", () => {
  const values = parseDotenv(
    "# comment\nA=1\nexport B='two words'\nC=\"multi\nline\"\n\nD=`x'y\"`\nA=again\n",
    "f.env",
  );
  assert.deepEqual(Object.fromEntries([...values].map(([k, v]) => [k, v.value])), {
    A: "again",
    B: "two words",
    C: "multi\nline",
    D: "x'y\"",
  });
  assert.equal(values.get("A")?.line, 8, "the line of the assignment that wins");
  usage(() => parseDotenv("A=1\nthis is not an assignment\n", "f.env"), /f\.env:2: not a NAME=value line/);
  usage(() => parseDotenv('A="never closed\nB=2\n', "f.env"), /f\.env:1: .*never closes/);
  usage(() => parseDotenv("OPENWORK_X=1\n", "f.env"), /f\.env:1: OPENWORK_X is reserved/);
});

test("dotenv: every value is written in a quoting that reads back exactly", () => {
  for (const value of [
    "plain",
    "",
    "with space",
    "has # hash",
    "it's",
    'say "hi"',
    "back\\nslash-n",
    "new\nline",
    "both ' and \"",
    "`tick` and 'single'",
    "  padded  ",
  ]) {
    const line = formatDotenvLine("K", value);
    assert.equal(parse(line).K, value, `${JSON.stringify(value)} → ${line}`);
  }
  usage(() => formatDotenvLine("K", "x\n'\"`"), /cannot be written/);
});

test("private files: open to group or others → refused with the chmod that fixes it", async () => {
  const dir = tmp();
  const file = path.join(dir, "env");
  writeFileSync(file, "A=1\n");
  chmodSync(file, 0o640);
  await usageAsync(() => readPrivateFile(file, "the env file"), /mode 0640.*chmod 600 /s);
  chmodSync(file, 0o604);
  await usageAsync(() => readPrivateFile(file, "the env file"), /chmod 600/);
  chmodSync(file, 0o600);
  assert.equal(await readPrivateFile(file, "the env file"), "A=1\n");
  await usageAsync(() => readPrivateFile(path.join(dir, "missing"), "the env file"), /does not exist/);
});

test("env store: set and unset edit in place, keep comments, write 0600, and are idempotent", async () => {
  const file = path.join(tmp(), "cfg", "env");
  assert.equal((await readEnvStore(file)).size, 0, "an absent store is empty");
  assert.equal(await setStoreValue(file, "A", "1"), "added");
  writeFileSync(file, `# my keys\n${readFileSync(file, "utf8")}# trailing note\n`, { mode: 0o600 });
  assert.equal(await setStoreValue(file, "B", 'it\'s "quoted"\nand multi-line'), "added");
  assert.equal(await setStoreValue(file, "A", "changed value"), "changed");
  const text = readFileSync(file, "utf8");
  assert.match(text, /^# my keys\nA='changed value'\n# trailing note\n/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const values = await readEnvStore(file);
  assert.equal(values.get("A")?.value, "changed value");
  assert.equal(values.get("B")?.value, 'it\'s "quoted"\nand multi-line');
  assert.deepEqual(await unsetStoreValues(file, ["B", "NOT_THERE"]), ["B"]);
  assert.deepEqual([...(await readEnvStore(file)).keys()], ["A"]);
  assert.match(readFileSync(file, "utf8"), /# trailing note/);
  chmodSync(file, 0o644);
  await usageAsync(() => readEnvStore(file), /chmod 600/);
  await usageAsync(() => setStoreValue(file, "OPENWORK_HOME", "x"), /OPENWORK_HOME is reserved/);
});

test("proxies: loopback names the host as the sandbox sees it; others, and NO_PROXY, are left alone", () => {
  const alias = "host.docker.internal";
  assert.equal(rewriteProxyUrl("http://127.0.0.1:3128", alias), "http://host.docker.internal:3128");
  assert.equal(rewriteProxyUrl("http://localhost:3128/", alias), "http://host.docker.internal:3128/");
  assert.equal(rewriteProxyUrl("http://u:p@127.0.0.1:8080", alias), "http://u:p@host.docker.internal:8080");
  assert.equal(rewriteProxyUrl("http://[::1]:3128", alias), "http://host.docker.internal:3128");
  assert.equal(rewriteProxyUrl("127.0.0.1:3128", alias), "host.docker.internal:3128");
  assert.equal(rewriteProxyUrl("http://proxy.corp:3128", alias), "http://proxy.corp:3128");
  assert.equal(rewriteProxyUrl("http://127.example.com:3128", alias), "http://127.example.com:3128");
  const { values } = proxyEnvironment({ https_proxy: "http://p:1", NO_PROXY: "corp" });
  assert.equal(values.https_proxy, "http://p:1");
  assert.equal(values.NO_PROXY, "corp,localhost,127.0.0.1,::1");
  assert.equal(values.no_proxy, "corp,localhost,127.0.0.1,::1", "one list under both names");
  assert.deepEqual(proxyEnvironment({ PATH: "/bin" }).values, {});
});

test("resolution: flag over file over store over the caller's proxy, with what each overrode; values masked", async () => {
  const dir = tmp();
  const store = path.join(dir, "store");
  writeFileSync(store, "SHARED=from-store-value\nSTORE_ONLY=store-only-value\n", { mode: 0o600 });
  const early = path.join(dir, "early.env");
  const late = path.join(dir, "late.env");
  writeFileSync(early, "SHARED=from-early-file\nFILES=early-file-value\n", { mode: 0o600 });
  writeFileSync(late, "FILES=late-file-value\nHTTPS_PROXY=http://127.0.0.1:9999\n", { mode: 0o600 });
  const plan = await resolveCredentials(
    {
      env: ["SHARED=from-the-flag", "INHERITED"],
      envFiles: [early, late],
      proxyEnv: true,
      hostConfig: false,
      hostAuth: false,
    },
    "docker",
    { OPENWORK_ENV_STORE: store, INHERITED: "inherited-value-1", HTTPS_PROXY: "http://127.0.0.1:1111" },
  );
  const byName = Object.fromEntries(plan.env.map((entry) => [entry.name, entry]));
  assert.equal(byName.SHARED?.value, "from-the-flag");
  assert.deepEqual(
    byName.SHARED?.shadowed.map((s) => s.kind),
    ["file", "store"],
  );
  assert.equal(byName.FILES?.value, "late-file-value", "a later file wins");
  assert.equal(byName.INHERITED?.value, "inherited-value-1");
  assert.equal(byName.STORE_ONLY?.value, "store-only-value");
  // The file's proxy wins over the caller's, and is rewritten for the sandbox all the same.
  assert.equal(byName.HTTPS_PROXY?.value, "http://host.docker.internal:9999");
  assert.deepEqual(plan.proxyRewrites, [
    { name: "HTTPS_PROXY", from: "http://127.0.0.1:9999", to: "http://host.docker.internal:9999" },
  ]);
  const described = JSON.stringify(describePlan(plan));
  for (const value of ["from-the-flag", "inherited-value-1", "store-only-value", "late-file-value"]) {
    assert.ok(!described.includes(value), `${value} is masked in the plan`);
    assert.equal(redactText(`x ${value} y`), `x ${REDACTED} y`, `${value} is registered for masking`);
  }
  await usageAsync(
    () =>
      resolveCredentials(
        { env: ["NOT_SET_ANYWHERE"], envFiles: [], proxyEnv: false, hostConfig: false, hostAuth: false },
        "none",
        { OPENWORK_ENV_STORE: store },
      ),
    /--env NOT_SET_ANYWHERE: NOT_SET_ANYWHERE is not set/,
  );
});

test("imports: the host's logins are merged so that a login made inside the runtime survives", () => {
  const dir = tmp();
  const from = path.join(dir, "import");
  const persist = path.join(dir, "persist");
  const configHome = path.join(persist, "home", ".config");
  const dataHome = path.join(persist, "home", ".local", "share");
  const auth = path.join(dataHome, "opencode", "auth.json");
  const put = (file: string, value: unknown) => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(value));
  };
  const read = () => JSON.parse(readFileSync(auth, "utf8")) as Record<string, { key: string }>;
  put(path.join(from, "data", "auth.json"), { anthropic: { type: "api", key: "host-1" } });
  put(path.join(from, "config", "opencode.json"), { username: "m1" });
  put(path.join(from, "config", "agents", "a.md"), "agent");
  installImports({ from, persist, configHome, dataHome });
  assert.deepEqual(read(), { anthropic: { type: "api", key: "host-1" } });
  assert.equal(statSync(auth).mode & 0o777, 0o600);
  assert.equal(readFileSync(path.join(configHome, "opencode", "agents", "a.md"), "utf8"), '"agent"');
  // Inside the runtime: a new login, and a re-login over the imported one.
  put(auth, { anthropic: { type: "api", key: "inside-2" }, openai: { type: "api", key: "inside-3" } });
  // The host changes its own login: the runtime's own re-login is kept, its new login too.
  put(path.join(from, "data", "auth.json"), {
    anthropic: { type: "api", key: "host-4" },
    google: { type: "api", key: "host-5" },
  });
  const notes = installImports({ from, persist, configHome, dataHome });
  assert.deepEqual(read(), {
    anthropic: { type: "api", key: "inside-2" },
    openai: { type: "api", key: "inside-3" },
    google: { type: "api", key: "host-5" },
  });
  assert.ok(
    notes.some((note) => note.includes("kept the runtime's own login for anthropic")),
    notes.join("\n"),
  );
  // Opting out (nothing imported): what the host put there and nobody changed goes; the rest stays.
  put(path.join(configHome, "opencode", "mine.json"), "runtime's own file");
  installImports({ from: undefined, persist, configHome, dataHome });
  assert.deepEqual(read(), {
    anthropic: { type: "api", key: "inside-2" },
    openai: { type: "api", key: "inside-3" },
  });
  assert.throws(() => statSync(path.join(configHome, "opencode", "opencode.json")), /ENOENT/);
  assert.equal(readFileSync(path.join(configHome, "opencode", "mine.json"), "utf8"), '"runtime\'s own file"');
});
