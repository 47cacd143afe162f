import { parse } from "dotenv";
import { UsageError } from "../errors/errors.js";
import { checkEnvName } from "./names.js";

/** One `NAME=value` of a dotenv file: where it is, so that it can be reported and edited in place. */
export interface DotenvStatement {
  name: string;
  /** 1-based, inclusive: a quoted value may span lines */
  firstLine: number;
  lastLine: number;
}

const ASSIGNMENT = /^\s*(?:export\s+)?([^\s=:#]+)\s*[=:]\s*(.*)$/;

/**
 * The statements of a dotenv text. The `dotenv` library parses values but
 * silently skips a line it does not understand; a credentials file with a
 * typo must fail loudly instead, so every line is accounted for here first:
 * blank, a comment, an assignment, or the continuation of a quoted value.
 */
export function dotenvStatements(text: string, where: string): DotenvStatement[] {
  const lines = text.split(/\r?\n/);
  const out: DotenvStatement[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (/^\s*(#.*)?$/.test(line)) continue;
    const match = ASSIGNMENT.exec(line);
    if (!match)
      throw new UsageError(
        `${where}:${i + 1}: not a NAME=value line`,
        "fix or remove the line (dotenv syntax)",
      );
    const name = match[1] as string;
    const value = (match[2] as string).trimStart();
    const first = i;
    const quote = value[0];
    if (quote === '"' || quote === "'" || quote === "`") {
      // A quoted value ends at the next unescaped quote of its kind, possibly lines below.
      let rest = value.slice(1);
      while (!closes(rest, quote)) {
        i++;
        if (i >= lines.length)
          throw new UsageError(
            `${where}:${first + 1}: the value of ${name} opens a ${quote} that never closes`,
          );
        rest = lines[i] as string;
      }
    }
    out.push({ name, firstLine: first + 1, lastLine: i + 1 });
  }
  return out;
}

function closes(text: string, quote: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\" && quote === '"') i++;
    else if (text[i] === quote) return true;
  }
  return false;
}

/** Values of a dotenv text by name (later wins, as in dotenv), every name checked. */
export function parseDotenv(text: string, where: string): Map<string, { value: string; line: number }> {
  const statements = dotenvStatements(text, where);
  const values = parse(text);
  const out = new Map<string, { value: string; line: number }>();
  for (const statement of statements) {
    checkEnvName(statement.name, `${where}:${statement.firstLine}`);
    const value = values[statement.name];
    if (value === undefined)
      throw new UsageError(
        `${where}:${statement.firstLine}: the value of ${statement.name} cannot be parsed`,
      );
    out.set(statement.name, { value, line: statement.firstLine });
  }
  return out;
}

/**
 * `NAME=value` in a quoting that dotenv reads back as exactly `value`, or a
 * usage error when no quoting can hold it (a value with every kind of quote).
 */
export function formatDotenvLine(name: string, value: string): string {
  const candidates = [
    /^[A-Za-z0-9_./:@%+,=-]+$/.test(value) ? value : undefined,
    `'${value}'`,
    `"${value}"`,
    `\`${value}\``,
  ];
  for (const candidate of candidates) {
    if (candidate === undefined) continue;
    const line = `${name}=${candidate}`;
    if (parse(line)[name] === value) return line;
  }
  throw new UsageError(
    `the value of ${name} cannot be written in dotenv syntax (it holds ', " and \` together)`,
  );
}
