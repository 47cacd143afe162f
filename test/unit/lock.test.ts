import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { LockLostError, withLock } from "../../src/locks/lock.js";

test("a lock lost while held aborts the work in hand and is reported as such, not as a crash", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "openwork-lock-"));
  const file = path.join(dir, "workspace");
  let undone = false;
  const error = await withLock(
    file,
    async (signal) => {
      // Another process takes the lock over (as after this one was paused past the stale time).
      rmSync(`${file}.lock`, { recursive: true, force: true });
      // (work in progress keeps the process busy; the lock's own refresh timer does not)
      const busy = setInterval(() => undefined, 100);
      await new Promise<void>((_, reject) =>
        signal.addEventListener(
          "abort",
          () => {
            clearInterval(busy);
            undone = true;
            reject(new Error("start interrupted; what it made was removed"));
          },
          { once: true },
        ),
      );
    },
    { staleMs: 2000 },
  ).then(
    () => assert.fail("the work must not be reported done"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof LockLostError, String(error));
  assert.match(error.message, /lost the lock .*workspace\.lock while holding it/);
  assert.ok(undone, "the work saw the abort and undid itself");
  // The lock can be taken again at once.
  assert.equal(await withLock(file, async () => "again", { staleMs: 2000 }), "again");
});
