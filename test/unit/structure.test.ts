import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { packageRoot } from "../../src/config/package-root.js";

// Structural rules of the tree (issue: one contract, a server split along it, a thin CLI),
// checked on the sources so that they stay true.

const SRC = path.join(packageRoot(), "src");

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...filesUnder(file));
    else if (name.endsWith(".ts")) out.push(file);
  }
  return out;
}

/** Relative imports of a source file, resolved to source files (type-only imports included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"/g)) {
    out.push(path.resolve(path.dirname(file), (match[1] as string).replace(/\.js$/, ".ts")));
  }
  return out;
}

function cycles(files: readonly string[]): string[][] {
  const inside = new Set(files);
  const graph = new Map(files.map((file) => [file, importsOf(file).filter((to) => inside.has(to))]));
  const found: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "visiting");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "visiting") found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return found.map((cycle) => cycle.map((file) => path.relative(SRC, file)));
}

test("the server's modules import each other without a cycle", () => {
  assert.deepEqual(cycles(filesUnder(path.join(SRC, "server"))), []);
});

test("the contract depends on nothing of the server, the CLI or the runs", () => {
  for (const file of filesUnder(path.join(SRC, "contract"))) {
    for (const imported of importsOf(file)) {
      const where = path.relative(SRC, imported).split(path.sep)[0];
      assert.ok(
        !["server", "cli", "runs", "sandbox"].includes(where as string),
        `${path.relative(SRC, file)} imports ${path.relative(SRC, imported)}`,
      );
    }
  }
});

test("command modules do not import each other, and no domain module imports the CLI", () => {
  const commands = path.join(SRC, "cli", "commands");
  for (const file of filesUnder(commands)) {
    for (const imported of importsOf(file))
      assert.ok(
        path.dirname(imported) !== commands,
        `${path.relative(SRC, file)} imports ${path.relative(SRC, imported)}`,
      );
  }
  for (const file of filesUnder(SRC).filter((f) => !f.startsWith(path.join(SRC, "cli")))) {
    for (const imported of importsOf(file))
      assert.ok(
        !imported.startsWith(path.join(SRC, "cli") + path.sep),
        `${path.relative(SRC, file)} imports ${path.relative(SRC, imported)}`,
      );
  }
});

test("production code reads no test fault switches from the environment", () => {
  for (const file of filesUnder(SRC)) {
    assert.doesNotMatch(
      readFileSync(file, "utf8"),
      /OPENWORK_FAULT|OPENWORK_TEST_/,
      path.relative(SRC, file),
    );
  }
});
