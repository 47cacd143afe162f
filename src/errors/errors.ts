/**
 * Errors that reach the user. Each carries what the user needs to act: a
 * message that names the thing (path, component, value), an optional hint with
 * the next step, and the exit code the CLI must use. What a caller needs to
 * print specially (a failed start's last output, a tampered file's hashes)
 * lives in typed fields of a subclass, never in a loose bag.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notRunning: 3,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface OpenworkErrorOptions {
  code: string;
  hint?: string | undefined;
  exitCode?: ExitCodeValue | undefined;
  cause?: unknown;
}

/**
 * The brand every OpenworkError carries. A server upgrade loads a second copy
 * of this module (the new bundle) into a running process, so `instanceof`
 * cannot tell our errors from others across that line; a registered symbol can
 * (execa recognises its errors the same way).
 */
const BRAND = Symbol.for("openwork.error");

/** What any copy of OpenworkError looks like from outside: enough to report it faithfully. */
export interface OpenworkErrorLike {
  readonly message: string;
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCodeValue;
}

export class OpenworkError extends Error implements OpenworkErrorLike {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCodeValue;
  readonly [BRAND] = true;

  constructor(message: string, options: OpenworkErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OpenworkError";
    this.code = options.code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failure;
  }

  /** One line for the terminal: message, then the next step if there is one. */
  oneLine(): string {
    return oneLine(this);
  }
}

/** An OpenworkError from any copy of this module (see BRAND). */
export function isOpenworkError(value: unknown): value is OpenworkErrorLike {
  return (
    value instanceof Error &&
    (value as unknown as Record<symbol, unknown>)[BRAND] === true &&
    typeof (value as { code?: unknown }).code === "string"
  );
}

/** The terminal line of any OpenworkError, whichever copy of the class made it. */
export function oneLine(error: OpenworkErrorLike): string {
  const text = error.hint ? `${error.message} (${error.hint})` : error.message;
  return text.replace(/\s*\n\s*/g, " ");
}

/** Bad input from the user: exit 2, one actionable line. */
export class UsageError extends OpenworkError {
  constructor(message: string, hint?: string) {
    super(message, { code: "usage", hint, exitCode: ExitCode.usage });
    this.name = "UsageError";
  }
}

/**
 * A component failed to start: the CLI prints the message, then the last
 * lines the component wrote (already redacted by whoever collected them).
 */
export class StartFailedError extends OpenworkError {
  constructor(
    message: string,
    /** engine, router, server, or "the runtime" when nothing more precise is known */
    readonly component: string,
    readonly lastOutput: readonly string[],
    options: { code?: string; hint?: string | undefined } = {},
  ) {
    super(message, { code: options.code ?? "start_failed", hint: options.hint });
    this.name = "StartFailedError";
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Node system errors (ENOENT, EACCES, …) carry a code; read it without casts everywhere. */
export function systemErrorCode(error: unknown): string | undefined {
  if (error && typeof error === "object" && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
