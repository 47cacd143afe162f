import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The dashboard's one-time login codes and the sessions they open, in the
 * supervisor's memory only: a code is kept as its hash, works once, and not
 * after `codeTtlMs`; a session (the cookie's value) lives as long as the
 * supervisor, or `sessionTtlMs`. A restarted supervisor forgets them all.
 */
export class DashboardAuth {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, number>();

  constructor(
    private readonly options: { codeTtlMs?: number; sessionTtlMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  /** A new code: 32 random bytes, base64url. */
  issueCode(): { code: string; expiresAt: string } {
    this.sweep();
    const code = randomBytes(32).toString("base64url");
    const expires = this.now() + (this.options.codeTtlMs ?? 60_000);
    this.codes.set(sha256(code), expires);
    return { code, expiresAt: new Date(expires).toISOString() };
  }

  /** Trade a code for a session token: once, before it expires; undefined otherwise. */
  redeem(code: string): string | undefined {
    const key = sha256(code);
    const expires = this.codes.get(key);
    this.codes.delete(key);
    if (expires === undefined || expires <= this.now()) return undefined;
    const session = randomBytes(32).toString("base64url");
    this.sessions.set(sha256(session), this.now() + (this.options.sessionTtlMs ?? 12 * 3600_000));
    return session;
  }

  hasSession(session: string | undefined): boolean {
    if (!session) return false;
    const expires = this.sessions.get(sha256(session));
    return expires !== undefined && expires > this.now();
  }

  private sweep(): void {
    const now = this.now();
    for (const [key, expires] of this.codes) if (expires <= now) this.codes.delete(key);
    for (const [key, expires] of this.sessions) if (expires <= now) this.sessions.delete(key);
  }
}

/** Compare a presented secret with the expected one in constant time. */
export function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(sha256(presented));
  const b = Buffer.from(sha256(expected));
  return timingSafeEqual(a, b);
}
