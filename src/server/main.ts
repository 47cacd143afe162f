import { errorMessage, isOpenworkError, oneLine } from "../errors/errors.js";
import { redactText } from "../logging/redact.js";
import { SERVER_VERSION } from "./version.js";

export { SERVER_VERSION } from "./version.js";

const USAGE = [
  'usage: openwork-server serve                       (environment: docs/architecture.md, "Entrypoint environment")',
  "       openwork-server probe --url URL [--timeout-ms N] [--wait-ms N [--pid P]] [--basic-auth-env VAR] [--user-env VAR]",
  "       openwork-server install-imports            (run by the entrypoint: OPENWORK_IMPORT, OPENWORK_PERSIST, XDG_*_HOME)",
  "       openwork-server --version",
].join("\n");

/** openwork-server's command line. */
export async function serverMain(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "--version":
      case "-V":
        process.stdout.write(`${SERVER_VERSION}\n`);
        return 0;
      case "--help":
      case "-h":
        process.stdout.write(`${USAGE}\n`);
        return 0;
      case "serve":
        if (rest.length > 0) {
          process.stderr.write(
            `openwork-server: serve takes no arguments (got "${rest.join(" ")}"); it reads its environment\n`,
          );
          return 2;
        }
        // Each command loads only what it uses: the entrypoint runs the short ones on every start.
        return await (await import("./serve.js")).serveMain();
      case "probe":
        return await (await import("./probe.js")).probeMain(rest);
      case "install-imports":
        return (await import("../credentials/install.js")).installImportsMain();
      default:
        process.stderr.write(
          `openwork-server: ${command === undefined ? "no command" : `unknown command "${command}"`}\n${USAGE}\n`,
        );
        return 2;
    }
  } catch (error) {
    if (isOpenworkError(error)) {
      process.stderr.write(`openwork-server: ${redactText(oneLine(error))}\n`);
      return error.exitCode;
    }
    process.stderr.write(`openwork-server: ${redactText(errorMessage(error))}\n`);
    return 1;
  }
}
