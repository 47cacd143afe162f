import { createHash, randomBytes } from "node:crypto";
import { registerSecret } from "../logging/redact.js";

/** The cookie of a web UI session (src/server/routes/web.ts). */
export const SESSION_COOKIE = "ow_session";

/**
 * The session cookie's name at the address a request came to. Cookies are not
 * scoped by port, and a fleet runs several runtimes on 127.0.0.1: each port
 * gets its own name, so logging in to one never logs another out.
 */
export function sessionCookieName(host: string | undefined): string {
  const port = /:([0-9]{1,5})$/.exec(host ?? "")?.[1];
  return port ? `${SESSION_COOKIE}_${port}` : SESSION_COOKIE;
}

/** Is this one of our session cookies (any port's)? They never reach the engine. */
export function isSessionCookie(name: string): boolean {
  return name === SESSION_COOKIE || new RegExp(`^${SESSION_COOKIE}_[0-9]{1,5}$`).test(name);
}
/** How long a login code may wait for its exchange. */
export const LOGIN_CODE_TTL_MS = 60_000;
/** How long a web UI session lasts after the exchange. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** What the stores keep: digests and expiry times, never a code or a session itself. */
export interface WebLoginState {
  codes: Map<string, number>;
  sessions: Map<string, number>;
}

/*
 * Shared by the server generations of this process, like the owner tokens
 * (src/server/tokens.ts): a server upgrade keeps the browser's session. Never
 * on disk: a session must not outlive the run, nor be plantable by the sandbox.
 */
const STATE = Symbol.for("openwork.server.web-logins");
function processState(): WebLoginState {
  const slot = globalThis as Record<symbol, WebLoginState | undefined>;
  slot[STATE] ??= { codes: new Map(), sessions: new Map() };
  return slot[STATE];
}

function digest(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/**
 * The digest of a secret when the map has it unexpired. Looked up by its sha256: what a lookup's
 * timing could reveal is about digests of the guess, not about the secret.
 */
function present(map: Map<string, number>, secret: string, now: number): string | undefined {
  const key = digest(secret);
  const expires = map.get(key);
  if (expires === undefined) return undefined;
  if (expires <= now) {
    map.delete(key);
    return undefined;
  }
  return key;
}

/**
 * One-time login codes and the browser sessions they are exchanged for: codes
 * are 256-bit random, single use, short-lived; sessions are 256-bit random with
 * a lifetime. Both are kept as sha256 digests and registered as secrets, so the
 * logs never show one.
 */
export class WebLogins {
  private readonly now: () => number;
  private readonly state: WebLoginState;
  readonly codeTtlMs: number;
  readonly sessionTtlMs: number;

  constructor(
    options: {
      now?: () => number;
      state?: WebLoginState;
      codeTtlMs?: number;
      sessionTtlMs?: number;
    } = {},
  ) {
    this.now = options.now ?? Date.now;
    this.state = options.state ?? processState();
    this.codeTtlMs = options.codeTtlMs ?? LOGIN_CODE_TTL_MS;
    this.sessionTtlMs = options.sessionTtlMs ?? SESSION_TTL_MS;
  }

  private sweep(now: number): void {
    for (const map of [this.state.codes, this.state.sessions])
      for (const [key, expires] of map) if (expires <= now) map.delete(key);
  }

  /** A new login code and when it expires. */
  mintCode(): { code: string; expiresAt: number } {
    const now = this.now();
    this.sweep(now);
    const code = randomBytes(32).toString("base64url");
    registerSecret(code);
    const expiresAt = now + this.codeTtlMs;
    this.state.codes.set(digest(code), expiresAt);
    return { code, expiresAt };
  }

  /** Exchange a code (once, before it expires) for a new session; undefined for a bad, used or expired code. */
  exchange(code: string): { session: string; expiresAt: number } | undefined {
    const now = this.now();
    const key = present(this.state.codes, code, now);
    if (key === undefined) return undefined;
    this.state.codes.delete(key);
    const session = randomBytes(32).toString("base64url");
    registerSecret(session);
    const expiresAt = now + this.sessionTtlMs;
    this.state.sessions.set(digest(session), expiresAt);
    return { session, expiresAt };
  }

  /** Whether a session is known and unexpired. */
  valid(session: string | undefined): boolean {
    if (!session) return false;
    return present(this.state.sessions, session, this.now()) !== undefined;
  }
}

/** The value of one cookie in a Cookie header (the first of that name), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A Cookie header without one cookie (undefined when nothing is left). */
export function withoutCookie(
  header: string | undefined,
  name: string | ((name: string) => boolean),
): string | undefined {
  if (!header) return undefined;
  const drop = typeof name === "string" ? (candidate: string) => candidate === name : name;
  const kept = header
    .split(";")
    .map((part) => part.trim())
    .filter((part) => part.length > 0 && !drop(part.slice(0, part.indexOf("=")).trim()));
  return kept.length > 0 ? kept.join("; ") : undefined;
}
