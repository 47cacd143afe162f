import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { writeFileAtomic, writeFileAtomicSync } from "../../src/files/atomic.js";

test("atomic writes replace the file with the exact mode, and leave no temporary file", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-atomic-"));
  const file = path.join(dir, "nested", "secrets.json");
  await writeFileAtomic(file, "one", { mode: 0o600, fsync: true });
  await writeFileAtomic(file, "two", { mode: 0o600 });
  assert.equal(readFileSync(file, "utf8"), "two");
  assert.equal(statSync(file).mode & 0o777, 0o600);
  writeFileAtomicSync(path.join(dir, "sync"), "three", { mode: 0o755 });
  assert.equal(statSync(path.join(dir, "sync")).mode & 0o777, 0o755);
  assert.deepEqual(readdirSync(path.join(dir, "nested")), ["secrets.json"]);
});

test("a failed atomic write removes its temporary file and leaves the old content", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-atomic-"));
  const target = path.join(dir, "target");
  mkdirSync(target); // renaming a file over a directory fails
  await assert.rejects(writeFileAtomic(target, "x"));
  assert.throws(() => writeFileAtomicSync(target, "x"));
  assert.deepEqual(readdirSync(dir), ["target"]);
});
