import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { type Browser, chromium } from "playwright-core";

/** Debian's chromium: the tests drive the system browser, nothing is downloaded at test time. */
export const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((file) => existsSync(file));

/**
 * A headless chromium for a test, closed when the test ends; undefined (and
 * the test skipped) when there is none, unless OPENWORK_REQUIRE_BROWSER=1
 * (CI installs it), where a missing browser fails the test instead.
 */
export async function browserOrSkip(t: TestContext): Promise<Browser | undefined> {
  if (!CHROMIUM) {
    if (process.env.OPENWORK_REQUIRE_BROWSER === "1")
      throw new Error("chromium is required (OPENWORK_REQUIRE_BROWSER=1) but /usr/bin/chromium is missing");
    t.skip("no chromium (apt-get install chromium)");
    return undefined;
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Root in CI: chromium's sandbox needs user namespaces it may not have there.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  t.after(() => browser.close());
  return browser;
}
