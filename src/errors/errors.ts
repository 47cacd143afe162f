/**
 * Errors that reach the user. Each carries what the user needs to act: a
 * message that names the thing (path, component, value), an optional hint with
 * the next step, and the exit code the CLI must use.
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
  details?: Record<string, unknown> | undefined;
}

export class OpenworkError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: ExitCodeValue;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, options: OpenworkErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "OpenworkError";
    this.code = options.code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCode.failure;
    this.details = options.details;
  }

  /** One line for the terminal: message, then the next step if there is one. */
  oneLine(): string {
    const text = this.hint ? `${this.message} (${this.hint})` : this.message;
    return text.replace(/\s*\n\s*/g, " ");
  }
}

/** Bad input from the user: exit 2, one actionable line. */
export class UsageError extends OpenworkError {
  constructor(message: string, hint?: string, details?: Record<string, unknown>) {
    super(message, { code: "usage", hint, exitCode: ExitCode.usage, details });
    this.name = "UsageError";
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
