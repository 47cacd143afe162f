import type http from "node:http";
import type { Duplex } from "node:stream";

/**
 * The handoff between two generations of the runtime server inside one
 * process (docs/architecture.md, "Replacing the server"): the running server
 * imports the new bundle with HANDOFF_FLAG set, so that the bundle does not
 * run its command line, and calls its `takeOver`. Both sides are compiled from
 * this one declaration; the module's shape is checked at run time, since the
 * bundle may come from another release.
 */

/** Set on globalThis while a running server imports a new bundle. */
export const HANDOFF_FLAG = Symbol.for("openwork.server.handoff-import");

/** The handoff protocol a bundle speaks (exported as OPENWORK_SERVER_HANDOFF). */
export const HANDOFF_PROTOCOL = 1;

export interface HandoffInput {
  /** the serve environment as text (the new generation validates it itself) */
  env: Record<string, string>;
  /** the listening server whose request listener is swapped */
  server: http.Server;
  operationId: string;
}

/** A generation built by the new bundle, adopting the running components; it answers once activated. */
export interface NextGeneration {
  version: string;
  handler: http.RequestListener;
  upgradeHandler: (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** start supervising and become the current generation */
  activate(): void;
  /** never activated: stop whatever it started watching */
  abandon(): void;
}

export interface HandoffModule {
  OPENWORK_SERVER_HANDOFF: number;
  takeOver(input: HandoffInput): Promise<NextGeneration>;
}

/** Check an imported module against the protocol; the reason says what is missing. */
export function asHandoffModule(mod: unknown): HandoffModule | { problem: string } {
  const candidate = mod as Partial<HandoffModule> | undefined;
  if (candidate?.OPENWORK_SERVER_HANDOFF !== HANDOFF_PROTOCOL)
    return {
      problem: `it speaks handoff protocol ${String(candidate?.OPENWORK_SERVER_HANDOFF)}, this server ${HANDOFF_PROTOCOL}`,
    };
  if (typeof candidate.takeOver !== "function") return { problem: "it exports no takeOver function" };
  return candidate as HandoffModule;
}

/** Check what takeOver returned before anything uses it. */
export function checkNextGeneration(next: unknown): string | undefined {
  const generation = next as Partial<NextGeneration> | undefined;
  for (const key of ["handler", "upgradeHandler", "activate", "abandon"] as const) {
    if (typeof generation?.[key] !== "function") return `its generation has no ${key} function`;
  }
  if (typeof generation?.version !== "string") return "its generation reports no version";
  return undefined;
}
