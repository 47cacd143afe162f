import { packageVersion } from "../config/package-root.js";

declare const __OPENWORK_SERVER_VERSION__: string | undefined;

/**
 * The server's version: stamped into the bundle at build time (the bundle
 * runs with no package.json beside it), read from package.json when run from dist/.
 */
export const SERVER_VERSION: string =
  typeof __OPENWORK_SERVER_VERSION__ === "string" ? __OPENWORK_SERVER_VERSION__ : packageVersion();

/** openwork-server's command line. */
export async function serverMain(args: string[]): Promise<number> {
  if (args[0] === "--version" || args[0] === "-V") {
    process.stdout.write(`${SERVER_VERSION}\n`);
    return 0;
  }
  process.stderr.write("openwork-server: usage: openwork-server --version\n");
  return 2;
}
