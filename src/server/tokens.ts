import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import { type Auth, healthProof, type MintedToken, tokenDigest } from "../contract/api.js";
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

/** Client, host and owner tokens, known by their sha256 digests only. */
export class TokenStore {
  private readonly client: Buffer;
  private readonly host: Buffer;

  constructor(clientTokenSha256: string, hostTokenSha256: string) {
    this.client = Buffer.from(clientTokenSha256, "hex");
    this.host = Buffer.from(hostTokenSha256, "hex");
  }

  /** The scope a request's credentials grant, or undefined (none or wrong). Every candidate is compared. */
  authenticate(req: http.IncomingMessage): Scope | undefined {
    const candidates: string[] = [];
    const hostHeader = req.headers["x-openwork-host-token"];
    if (typeof hostHeader === "string" && hostHeader.length > 0) candidates.push(hostHeader);
    const auth = req.headers.authorization;
    if (typeof auth === "string") {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (match?.[1]) candidates.push(match[1]);
    }
    let scope: Scope | undefined;
    const minted = owners();
    for (const candidate of candidates) {
      const isHost = sameSecret(this.host, candidate);
      const isClient = sameSecret(this.client, candidate);
      let isOwner = false;
      for (const owner of minted) if (sameSecret(Buffer.from(owner.sha256, "hex"), candidate)) isOwner = true;
      if (isHost) scope = "host";
      else if (isOwner && scope !== "host") scope = "owner";
      else if (isClient && scope === undefined) scope = "client";
    }
    return scope;
  }

  /** The answer to a health challenge (src/contract/api.ts, healthProof). */
  proof(challenge: string): string {
    return healthProof(this.host, challenge);
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

/** Whether a scope may call an endpoint of this auth level. */
export function allows(scope: Scope | undefined, needed: Auth): boolean {
  if (needed === "none") return true;
  if (scope === undefined) return false;
  return needed === "client" ? true : scope === "host";
}
