import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { StatCache } from "../../src/store/stat-cache.js";

test("the stat cache vouches for an unchanged file and re-hashes a changed one, even with its mtime restored", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-statcache-"));
  const cache = new StatCache(path.join(dir, "cache"));
  const file = path.join(dir, "blob");
  writeFileSync(file, "original bytes");
  const first = await cache.hash(file);
  assert.equal(first.cached, false);
  assert.equal(first.sha256, createHash("sha256").update("original bytes").digest("hex"));
  assert.equal((await cache.hash(file)).cached, true);

  const before = statSync(file, { bigint: true });
  // same size, different bytes, mtime put back: only ctime (which utimes cannot set) changed
  await new Promise((resolve) => setTimeout(resolve, 20));
  writeFileSync(file, "ORIGINAL bytes");
  // to the nanosecond, as `touch -d @s.ns` can
  const ns = before.mtimeNs;
  execFileSync("touch", [
    "-m",
    "-d",
    `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, "0")}`,
    file,
  ]);
  assert.equal(statSync(file, { bigint: true }).mtimeNs, before.mtimeNs);
  assert.notEqual(statSync(file, { bigint: true }).ctimeNs, before.ctimeNs);
  const after = await cache.hash(file);
  assert.equal(after.cached, false);
  assert.equal(after.sha256, createHash("sha256").update("ORIGINAL bytes").digest("hex"));
});
