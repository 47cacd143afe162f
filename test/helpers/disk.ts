import { execFileSync } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";

/**
 * A small file system of its own (tmpfs) for tests that fill a disk or make it
 * read-only. Mounting needs root: without it the test is skipped, saying so
 * (CI runs as root).
 */
export function smallDisk(t: TestContext, sizeMb: number): string | undefined {
  if (process.getuid?.() !== 0) {
    t.skip("needs root to mount a tmpfs of its own (CI runs as root)");
    return undefined;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-disk-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMb}m`, "tmpfs", dir]);
  t.after(() => {
    try {
      execFileSync("umount", ["-l", dir]);
    } catch {
      // already unmounted
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Write a file until the disk is full; returns its path (remove it to give the space back). */
export function fillDisk(dir: string): string {
  const file = path.join(dir, "filler");
  const fd = openSync(file, "w");
  const block = Buffer.alloc(1024 * 1024, 0x61);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as { code?: string }).code !== "ENOSPC") throw error;
    // the last partial block: fill to the byte
    try {
      for (;;) writeSync(fd, block.subarray(0, 512));
    } catch {
      // full
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

/**
 * A read-only view of `dir` (a read-only bind mount): what a process sees of
 * a read-only disk, while the runtimes that write under `dir` go on.
 */
export function readOnlyView(t: TestContext, dir: string): string {
  const view = mkdtempSync(path.join(os.tmpdir(), "openwork-ro-"));
  execFileSync("mount", ["--bind", dir, view]);
  execFileSync("mount", ["-o", "remount,bind,ro", view]);
  t.after(() => {
    try {
      execFileSync("umount", ["-l", view]);
    } catch {
      // already unmounted
    }
    rmSync(view, { recursive: true, force: true });
  });
  return view;
}
