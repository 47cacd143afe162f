/** A 1-based line and column (in UTF-16 code units, as editors count them) of an offset into text. */
export interface TextPosition {
  line: number;
  column: number;
}

/** Where `offset` falls in `text`: for error messages that point into a file the user edits. */
export function positionAt(text: string, offset: number): TextPosition {
  const before = text.slice(0, Math.max(0, offset));
  const lastNewline = before.lastIndexOf("\n");
  let line = 1;
  for (let index = before.indexOf("\n"); index !== -1; index = before.indexOf("\n", index + 1)) line += 1;
  return { line, column: before.length - lastNewline };
}
