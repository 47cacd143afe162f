import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { persistLayout } from "../contract/layout.js";
import { writeFileAtomicSync } from "../files/atomic.js";
import { AUTH_FILES } from "./host-opencode.js";
import { IMPORT_NAMES } from "./import-dir.js";

/** What the last start imported: config files by digest, auth entries as imported. */
interface Imported {
  config: Record<string, string>;
  auth: Record<string, Record<string, unknown>>;
}

/** Where the system keeps its CA bundle (Debian, Fedora, Alpine, …): the user's CA is added to it. */
const SYSTEM_BUNDLES = [
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  "/etc/ssl/cert.pem",
];

export interface InstallPaths {
  /** the import directory of this start (may be absent: nothing imported) */
  from: string | undefined;
  persist: string;
  configHome: string;
  dataHome: string;
}

/**
 * Install a start's imports inside the runtime, before the engine starts:
 * the user's config files over the runtime's, the user's logins merged into
 * the runtime's auth files, and the CA bundle. Runs as the runtime's user on
 * the runtime's own files. A login made inside the runtime outlives restarts:
 * an entry is replaced by the host's only while it is still what the last
 * import put there; what the host no longer has is removed only on the same
 * condition. Returns one line per change, for the entrypoint's log.
 */
export function installImports(paths: InstallPaths): string[] {
  const layout = persistLayout(paths.persist);
  const notes: string[] = [];
  const previous = readImported(layout.importedFile);
  const next: Imported = { config: {}, auth: {} };

  const configDir = path.join(paths.configHome, "opencode");
  const incoming = paths.from ? listFiles(path.join(paths.from, IMPORT_NAMES.config)) : [];
  for (const relative of incoming) {
    const content = readFileSync(path.join(paths.from as string, IMPORT_NAMES.config, relative));
    writeFileAtomicSync(path.join(configDir, relative), content, { mode: 0o600 });
    next.config[relative] = digest(content);
  }
  for (const [relative, hash] of Object.entries(previous.config)) {
    if (relative in next.config) continue;
    const target = path.join(configDir, relative);
    if (existsSync(target) && digest(readFileSync(target)) === hash) rmSync(target, { force: true });
  }
  if (incoming.length > 0) notes.push(`imported ${incoming.length} config file(s) into ${configDir}`);

  const dataDir = path.join(paths.dataHome, "opencode");
  for (const name of AUTH_FILES) {
    const source = paths.from ? path.join(paths.from, IMPORT_NAMES.data, name) : undefined;
    const host = source && existsSync(source) ? (readJson(source) ?? {}) : {};
    const target = path.join(dataDir, name);
    const exists = existsSync(target);
    const current = exists ? readJson(target) : {};
    const before = previous.auth[name] ?? {};
    const merged: Record<string, unknown> = { ...(current ?? {}) };
    const kept: string[] = [];
    for (const [id, entry] of Object.entries(host)) {
      const mine = merged[id];
      if (mine === undefined || same(mine, before[id])) merged[id] = entry;
      else if (!same(mine, entry)) kept.push(id);
    }
    for (const id of Object.keys(before)) {
      if (id in host) continue;
      if (same(merged[id], before[id])) delete merged[id];
    }
    if (Object.keys(host).length > 0 || exists) {
      writeFileAtomicSync(target, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
    }
    next.auth[name] = host;
    if (Object.keys(host).length > 0)
      notes.push(
        `imported ${Object.keys(host).length} login(s) into ${target}` +
          (kept.length > 0 ? `; kept the runtime's own login for ${kept.join(", ")}` : ""),
      );
  }

  const ca = paths.from ? path.join(paths.from, IMPORT_NAMES.ca) : undefined;
  if (ca && existsSync(ca)) {
    const extra = readFileSync(ca, "utf8");
    const system = SYSTEM_BUNDLES.find((file) => existsSync(file));
    writeFileAtomicSync(layout.caExtraFile, extra, { mode: 0o644 });
    writeFileAtomicSync(
      layout.caBundleFile,
      `${system ? readFileSync(system, "utf8").replace(/\n?$/, "\n") : ""}${extra}`,
      { mode: 0o644 },
    );
    notes.push(
      `installed the CA bundle (${layout.caExtraFile}${system ? `, and after ${system} in ${layout.caBundleFile}` : ""})`,
    );
  } else {
    rmSync(path.dirname(layout.caExtraFile), { recursive: true, force: true });
  }
  writeFileAtomicSync(layout.importedFile, `${JSON.stringify(next)}\n`, { mode: 0o600 });
  return notes;
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push(path.relative(root, full));
    }
  };
  if (existsSync(root) && statSync(root).isDirectory()) walk(root);
  return out.sort();
}

function readImported(file: string): Imported {
  const value = existsSync(file) ? readJson(file) : undefined;
  const config = value?.config;
  const auth = value?.auth;
  return {
    config: config && typeof config === "object" ? (config as Record<string, string>) : {},
    auth: auth && typeof auth === "object" ? (auth as Imported["auth"]) : {},
  };
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(file, "utf8"));
    return value && typeof value === "object" && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function same(a: unknown, b: unknown): boolean {
  return a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b);
}

function digest(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

/** `openwork-server install-imports`: run by the entrypoint with its environment. */
export function installImportsMain(env: NodeJS.ProcessEnv = process.env): number {
  const persist = env.OPENWORK_PERSIST;
  const configHome = env.XDG_CONFIG_HOME;
  const dataHome = env.XDG_DATA_HOME;
  if (!persist || !configHome || !dataHome) {
    process.stderr.write(
      "install-imports: OPENWORK_PERSIST, XDG_CONFIG_HOME and XDG_DATA_HOME must be set\n",
    );
    return 2;
  }
  mkdirSync(configHome, { recursive: true });
  const from = env.OPENWORK_IMPORT || undefined;
  for (const note of installImports({ from, persist, configHome, dataHome }))
    process.stderr.write(`openwork-entrypoint: ${note}\n`);
  return 0;
}
