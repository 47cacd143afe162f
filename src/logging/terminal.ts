/*
 * Text from a sandbox is the agent's: printed raw, its control sequences would
 * drive the user's terminal (OSC 52 clipboard writes, title changes, cursor
 * moves that overwrite real lines, hyperlinks). Everything we print that may
 * carry such text goes through `printable`, which shows each control
 * character as a visible escape (ESC as \x1b) and keeps tabs and line breaks.
 */

// C0 controls but tab and line feed, DEL, C1 controls, and the Unicode line/paragraph separators and
// bidirectional overrides (which reorder what a line appears to say).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function printable(text: string): string {
  return text.replace(/\r\n/g, "\n").replace(CONTROL, (c) => {
    const code = c.codePointAt(0) ?? 0;
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}
