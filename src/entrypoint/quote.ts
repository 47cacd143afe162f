/**
 * Quote a value for POSIX sh: single quotes, with each embedded single quote
 * closed, escaped and reopened. Nothing inside single quotes is expanded, so
 * `$()`, backticks, newlines and quotes arrive as written.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell value cannot contain a NUL byte");
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A name sh accepts as a variable name. */
export function isShellName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name);
}
