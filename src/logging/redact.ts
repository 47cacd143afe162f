import { printable } from "./terminal.js";

/**
 * Secret redaction for everything we print: log records, relayed child output,
 * error messages. Two layers: known secret values registered at run time (the
 * tokens we mint are random and cannot be recognised by shape), and patterns
 * for secrets by shape (Authorization headers, NAME_TOKEN=value pairs, …).
 */
export const REDACTED = "[REDACTED]";

const knownSecrets = new Set<string>();

/** Register a secret value so it is masked wherever it appears. Short values are ignored: masking "a" would mangle output. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 8) knownSecrets.add(value);
}

export function forgetSecrets(): void {
  knownSecrets.clear();
}

const SECRET_NAME = "[A-Za-z0-9_]*(?:TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|APIKEY|PRIVATE_KEY|CREDENTIALS?)";

type Replacement = string | ((...groups: string[]) => string);

const patterns: Array<[RegExp, Replacement]> = [
  // Authorization: Bearer xyz / Basic xyz, header form (any case)
  [
    /\b(authorization|proxy-authorization)(["']?\s*[:=]\s*["']?)(?:(bearer|basic|token)\s+)?[^\s"',}]+/gi,
    (_match, name, sep, scheme) => `${name}${sep}${scheme ? `${scheme} ` : ""}${REDACTED}`,
  ],
  [/\b(x-openwork-host-(?:token|signature))(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, `$1$2${REDACTED}`],
  // Bearer tokens wherever they appear
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{6,}/g, `$1 ${REDACTED}`],
  // NAME_TOKEN=value, NAME_PASSWORD="value", also in env dumps and command lines
  [new RegExp(String.raw`\b(${SECRET_NAME})=("[^"]*"|'[^']*'|[^\s"']+)`, "gi"), `$1=${REDACTED}`],
  // JSON-ish "token": "value", "password": "value"
  [/("(?:[a-z_]*token|password|secret|apiKey|api_key)"\s*:\s*)"[^"]*"/gi, `$1"${REDACTED}"`],
  // credentials in URLs: http://user:pass@host
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:)[^@\s/]+@/gi, `$1${REDACTED}@`],
];

/**
 * Text made fit to print: known secrets and secret-looking values masked, and
 * control characters shown as escapes (src/logging/terminal.ts) — what passes
 * through here may have been written by a sandbox.
 */
export function redactText(text: string): string {
  let out = text;
  for (const secret of knownSecrets) {
    if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  }
  for (const [pattern, replacement] of patterns) {
    out =
      typeof replacement === "string"
        ? out.replace(pattern, replacement)
        : out.replace(pattern, replacement as (substring: string, ...args: string[]) => string);
  }
  return printable(out);
}

const SECRET_KEY = /(token|password|passwd|secret|authorization|api_?key|credential|cookie)/i;

/** Deep copy with secret-named keys masked and every string passed through redactText. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (depth > 8) return value;
  if (typeof value === "string") return redactText(value);
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  if (value instanceof Error) {
    return {
      type: value.name,
      message: redactText(value.message),
      stack: value.stack && redactText(value.stack),
    };
  }
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] =
        SECRET_KEY.test(key) && item !== undefined && item !== null ? REDACTED : redactValue(item, depth + 1);
    }
    return out;
  }
  return value;
}
