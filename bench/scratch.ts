import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * Imported first by a benchmark: every temporary file and directory it makes —
 * and the CLIs and runtimes it starts, which inherit TMPDIR — goes under one
 * directory, removed when it exits. (Homes with staged runtimes are ~300 MB
 * each; a benchmark left them behind before.)
 */
const scratch = mkdtempSync(path.join(os.tmpdir(), "openwork-bench-"));
process.env.TMPDIR = scratch;
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
