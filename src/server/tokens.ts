import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import { type Auth, healthProof, type MintedToken, tokenDigest } from "../contract/api.js";
import {
  HOST_SIGNATURE_HEADER,
  HOST_SIGNATURE_WINDOW_MS,
  HOST_TOKEN_PREFIX,
  hostKeyOf,
  parseHostSignature,
  sameHostKey,
  verifyHostSignature,
} from "../contract/host-auth.js";
import { registerSecret } from "../logging/redact.js";

export type Scope = "host" | "owner" | "client";

interface OwnerToken {
  id: string;
  label?: string | undefined;
  /** sha256 of the token, hex */
  sha256: string;
  createdAt: string;
}

/*
 * Owner tokens live in this process only, shared by every server generation
 * it runs (an upgrade of the server imports the new bundle into this same
 * process, so its generation finds them here). Never on disk: a file the
 * sandbox can write would let the agent plant a token, and tokens of a
 * stopped run must not open the next one — they die with the process.
 */
const OWNERS = Symbol.for("openwork.server.owner-tokens");
function owners(): OwnerToken[] {
  const slot = globalThis as Record<symbol, OwnerToken[] | undefined>;
  slot[OWNERS] ??= [];
  return slot[OWNERS];
}

/** Compare through fixed-length digests: constant time whatever the lengths. */
function sameSecret(a: Buffer, b: string): boolean {
  return timingSafeEqual(a, tokenDigest(b));
}

/*
 * Nonces of host signatures already used, until their time window has passed:
 * a signature read from this process's memory (or a captured request) cannot
 * be used twice. Shared by the generations of this process, like the owners.
 */
const NONCES = Symbol.for("openwork.server.host-nonces");
function usedNonces(): Map<string, number> {
  const slot = globalThis as Record<symbol, Map<string, number> | undefined>;
  slot[NONCES] ??= new Map();
  return slot[NONCES];
}

/** Client and owner tokens known by their sha256 digests, the host token by its public key. */
export class TokenStore {
  private readonly client: Buffer;

  constructor(
    clientTokenSha256: string,
    private readonly hostKey: string,
  ) {
    this.client = Buffer.from(clientTokenSha256, "hex");
  }

  /** A signed host request (src/contract/host-auth.ts): the right key, in its time window, a nonce not seen before. */
  private signedByHost(req: http.IncomingMessage): boolean {
    const header = req.headers[HOST_SIGNATURE_HEADER];
    if (typeof header !== "string") return false;
    const signature = parseHostSignature(header);
    if (!signature) return false;
    const now = Date.now();
    if (Math.abs(now - signature.time) > HOST_SIGNATURE_WINDOW_MS) return false;
    const nonces = usedNonces();
    for (const [nonce, expires] of nonces) if (expires < now) nonces.delete(nonce);
    if (nonces.has(signature.nonce)) return false;
    if (!verifyHostSignature(this.hostKey, req.method ?? "GET", req.url ?? "/", signature)) return false;
    nonces.set(signature.nonce, signature.time + 2 * HOST_SIGNATURE_WINDOW_MS);
    return true;
  }

  /**
   * The scope a request's credentials grant, or undefined (none or wrong). Every candidate is compared.
   * With `basic` (an endpoint whose spec has basicAuth), the password of `Authorization: Basic` is a
   * candidate too, for the client and owner tokens only: the host token never travels that way.
   */
  authenticate(req: http.IncomingMessage, options: { basic?: boolean } = {}): Scope | undefined {
    const candidates: Array<{ token: string; hostAllowed: boolean }> = [];
    const hostHeader = req.headers["x-openwork-host-token"];
    if (typeof hostHeader === "string" && hostHeader.length > 0)
      candidates.push({ token: hostHeader, hostAllowed: true });
    const auth = req.headers.authorization;
    if (typeof auth === "string") {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (match?.[1]) candidates.push({ token: match[1], hostAllowed: true });
      const password = options.basic ? basicPassword(auth) : undefined;
      if (password) candidates.push({ token: password, hostAllowed: false });
    }
    if (this.signedByHost(req)) return "host";
    let scope: Scope | undefined;
    const minted = owners();
    for (const { token, hostAllowed } of candidates) {
      const candidateKey = hostAllowed && token.startsWith(HOST_TOKEN_PREFIX) ? hostKeyOf(token) : undefined;
      const isHost = candidateKey !== undefined && sameHostKey(candidateKey, this.hostKey);
      const isClient = sameSecret(this.client, token);
      let isOwner = false;
      for (const owner of minted) if (sameSecret(Buffer.from(owner.sha256, "hex"), token)) isOwner = true;
      if (isHost) scope = "host";
      else if (isOwner && scope !== "host") scope = "owner";
      else if (isClient && scope === undefined) scope = "client";
    }
    return scope;
  }

  /** The answer to a health challenge (src/contract/api.ts, healthProof). */
  proof(challenge: string): string {
    return healthProof(Buffer.from(this.hostKey, "hex"), challenge);
  }

  mintOwner(label: string | undefined): MintedToken {
    const token = `owt_${randomBytes(24).toString("base64url")}`;
    registerSecret(token);
    const record: OwnerToken = {
      id: randomUUID(),
      label,
      sha256: tokenDigest(token).toString("hex"),
      createdAt: new Date().toISOString(),
    };
    owners().push(record);
    return { id: record.id, token, scope: "owner", label: label ?? null, createdAt: record.createdAt };
  }
}

/** The password of `Authorization: Basic base64(user:password)` (any user), or undefined. */
function basicPassword(header: string): string | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : undefined;
}

/** Whether a scope may call an endpoint of this auth level. */
export function allows(scope: Scope | undefined, needed: Auth): boolean {
  if (needed === "none") return true;
  if (scope === undefined) return false;
  return needed === "client" ? true : scope === "host";
}
