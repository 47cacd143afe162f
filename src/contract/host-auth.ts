import { createPrivateKey, createPublicKey, randomBytes, sign, timingSafeEqual, verify } from "node:crypto";
import { OpenworkError } from "../errors/errors.js";

/*
 * The host token never enters a runtime (DESIGN.md §4a). It is the seed of an
 * Ed25519 key: the runtime is given only the public key, and the CLI proves
 * that it holds the token by signing each host-scope request (method, path,
 * time and a single-use nonce) instead of sending it. Nothing an agent can read
 * in its sandbox — the environment, the server's memory, a captured request —
 * grants host scope: a signature is bound to one request and is used up by the
 * server when it arrives. A client that sends the token itself (curl with
 * X-OpenWork-Host-Token) still works; the server derives the public key from it.
 */

export const HOST_TOKEN_PREFIX = "owh_";
export const HOST_SIGNATURE_HEADER = "x-openwork-host-signature";
/** How far a signature's time may be from the server's clock. */
export const HOST_SIGNATURE_WINDOW_MS = 60_000;

// PKCS#8 wrapping of a raw 32-byte Ed25519 seed (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SEED_BYTES = 32;

export function newHostToken(): string {
  return `${HOST_TOKEN_PREFIX}${randomBytes(SEED_BYTES).toString("base64url")}`;
}

function seedOf(token: string): Buffer | undefined {
  if (!token.startsWith(HOST_TOKEN_PREFIX)) return undefined;
  const seed = Buffer.from(token.slice(HOST_TOKEN_PREFIX.length), "base64url");
  return seed.length === SEED_BYTES && seed.toString("base64url") === token.slice(HOST_TOKEN_PREFIX.length)
    ? seed
    : undefined;
}

function privateKeyOf(token: string) {
  const seed = seedOf(token);
  if (!seed) return undefined;
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
}

/** The public key (hex, 64 digits) a host token is the seed of; undefined when the text is no host token. */
export function hostKeyOf(token: string): string | undefined {
  const key = privateKeyOf(token);
  if (!key) return undefined;
  const spki = createPublicKey(key).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32).toString("hex");
}

function message(method: string, path: string, time: number, nonce: string): Buffer {
  return Buffer.from(`openwork-host\n${method.toUpperCase()}\n${path}\n${time}\n${nonce}`);
}

/** The X-OpenWork-Host-Signature value for one request (`path` with its query, as sent). */
export function signHostRequest(token: string, method: string, path: string, now = Date.now()): string {
  const key = privateKeyOf(token);
  if (!key)
    throw new OpenworkError(
      "this run's host token cannot sign requests: the run was started by an older openwork",
      {
        code: "host_token_unsupported",
        hint: "start it again with `openwork start --replace` (its sessions stay in the persisted directory)",
      },
    );
  const nonce = randomBytes(16).toString("base64url");
  const signature = sign(null, message(method, path, now, nonce), key).toString("base64url");
  return `t=${now};n=${nonce};s=${signature}`;
}

export interface HostSignature {
  time: number;
  nonce: string;
  signature: Buffer;
}

export function parseHostSignature(value: string): HostSignature | undefined {
  const match = /^t=(\d{1,16});n=([A-Za-z0-9_-]{16,64});s=([A-Za-z0-9_-]{86})$/.exec(value.trim());
  if (!match?.[1] || !match[2] || !match[3]) return undefined;
  return { time: Number(match[1]), nonce: match[2], signature: Buffer.from(match[3], "base64url") };
}

/** Does `signature` sign this request with the key `hostKey` (hex)? Time and nonce are the caller's to check. */
export function verifyHostSignature(
  hostKey: string,
  method: string,
  path: string,
  signature: HostSignature,
): boolean {
  const raw = Buffer.from(hostKey, "hex");
  if (raw.length !== 32) return false;
  const publicKey = createPublicKey({
    key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]),
    format: "der",
    type: "spki",
  });
  try {
    return verify(
      null,
      message(method, path, signature.time, signature.nonce),
      publicKey,
      signature.signature,
    );
  } catch {
    return false;
  }
}

/** Constant-time equality of two host keys (hex). */
export function sameHostKey(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}
