import { randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import { z } from "zod";
import { type Auth, healthProof, type MintedToken, tokenDigest } from "../contract/api.js";
import { writeFileAtomicSync } from "../files/atomic.js";
import { readJsonFile } from "../files/json.js";
import { registerSecret } from "../logging/redact.js";

export type Scope = "host" | "owner" | "client";

const ownersSchema = z.object({
  owners: z.array(
    z.object({
      id: z.string(),
      label: z.string().optional(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      createdAt: z.string(),
    }),
  ),
});
type OwnerToken = z.output<typeof ownersSchema>["owners"][number];

/** Compare through fixed-length digests: constant time whatever the lengths. */
function sameSecret(a: Buffer, b: string): boolean {
  return timingSafeEqual(a, tokenDigest(b));
}

/**
 * Client, host and owner tokens. Owner tokens are minted by the host and kept
 * (hashed only) in the tokens file so that they survive a server replacement.
 */
export class TokenStore {
  private readonly client: Buffer;
  private readonly host: Buffer;

  constructor(
    clientToken: string,
    hostToken: string,
    private readonly file: string,
  ) {
    this.client = tokenDigest(clientToken);
    this.host = tokenDigest(hostToken);
    registerSecret(clientToken);
    registerSecret(hostToken);
  }

  private owners(): OwnerToken[] {
    return readJsonFile(this.file, ownersSchema)?.owners ?? [];
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
    const owners = this.owners();
    for (const candidate of candidates) {
      const isHost = sameSecret(this.host, candidate);
      const isClient = sameSecret(this.client, candidate);
      let isOwner = false;
      for (const owner of owners) if (sameSecret(Buffer.from(owner.sha256, "hex"), candidate)) isOwner = true;
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
    writeFileAtomicSync(this.file, `${JSON.stringify({ owners: [...this.owners(), record] }, null, 2)}\n`, {
      mode: 0o600,
    });
    return { id: record.id, token, scope: "owner", label: label ?? null, createdAt: record.createdAt };
  }
}

/** Whether a scope may call an endpoint of this auth level. */
export function allows(scope: Scope | undefined, needed: Auth): boolean {
  if (needed === "none") return true;
  if (scope === undefined) return false;
  return needed === "client" ? true : scope === "host";
}
