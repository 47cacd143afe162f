import type { Command } from "commander";
import { checkEnvName } from "../../credentials/names.js";
import { envStorePath } from "../../credentials/store-path.js";
import { UsageError } from "../../errors/errors.js";
import { REDACTED } from "../../logging/redact.js";
import { contextFrom } from "../context.js";
import { renderTable } from "../table.js";

export function registerEnv(program: Command): void {
  const env = program
    .command("env")
    .description(
      "the user's env store: variables every runtime this user starts gets (after --env and --env-file).\n" +
        `A dotenv file, mode 0600, at ${envStorePath()} (OPENWORK_ENV_STORE moves it; docs/credentials.md).`,
    );
  env
    .command("set")
    .argument(
      "<KEY[=VALUE]>",
      "the variable; without =VALUE the value is read from stdin (hidden on a terminal)",
    )
    .description("set a variable in the store (the value never needs to be on a command line)")
    .action(async (assignment: string, _options: unknown, command: Command) => {
      const ctx = await contextFrom(command);
      const { setStoreValue } = await import("../../credentials/store.js");
      const eq = assignment.indexOf("=");
      const name = eq === -1 ? assignment : assignment.slice(0, eq);
      checkEnvName(name, "openwork env set");
      const value = eq === -1 ? await readValue(name) : assignment.slice(eq + 1);
      const file = envStorePath();
      const outcome = await setStoreValue(file, name, value);
      ctx.output({ name, outcome, store: file }, () => `${outcome} ${name} in ${file}`);
    });
  env
    .command("unset")
    .argument("<KEY...>", "the variables to remove")
    .description("remove variables from the store (removing one that is not there is not an error)")
    .action(async (names: string[], _options: unknown, command: Command) => {
      const ctx = await contextFrom(command);
      const { unsetStoreValues } = await import("../../credentials/store.js");
      const file = envStorePath();
      const removed = await unsetStoreValues(file, names);
      const absent = names.filter((name) => !removed.includes(name));
      ctx.output({ removed, absent, store: file }, () =>
        [
          ...(removed.length > 0 ? [`removed ${removed.join(", ")} from ${file}`] : []),
          ...(absent.length > 0 ? [`not set: ${absent.join(", ")}`] : []),
        ].join("\n"),
      );
    });
  env
    .command("list")
    .description("the store's variables, values masked")
    .action(async (_options: unknown, command: Command) => {
      const ctx = await contextFrom(command);
      const { readEnvStore } = await import("../../credentials/store.js");
      const file = envStorePath();
      const values = await readEnvStore(file);
      const variables = [...values].map(([name, { value, line }]) => ({
        name,
        value: REDACTED,
        length: value.length,
        line,
      }));
      ctx.output({ store: file, variables }, () =>
        variables.length === 0
          ? `the env store ${file} is empty`
          : `${renderTable(
              ["NAME", "VALUE", "LINE"],
              variables.map((v) => [v.name, `**** (${v.length} chars)`, String(v.line)]),
            )}\n(${file})`,
      );
    });
}

/** A value from stdin: typed without echo on a terminal, else everything piped in (one trailing newline dropped). */
async function readValue(name: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks)
      .toString("utf8")
      .replace(/\r?\n$/, "");
  }
  process.stderr.write(`value for ${name} (not shown): `);
  stdin.setRawMode(true);
  stdin.resume();
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = "";
      const onData = (data: Buffer) => {
        for (const char of data.toString("utf8")) {
          if (char === "\r" || char === "\n") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            return resolve(value);
          }
          if (char === "\u0003") {
            stdin.off("data", onData);
            process.stderr.write("\n");
            return reject(new UsageError("interrupted: nothing was set"));
          }
          if (char === "\u007f" || char === "\b") value = value.slice(0, -1);
          else value += char;
        }
      };
      stdin.on("data", onData);
    });
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
  }
}
