import type { ServerApp } from "./app.js";

/**
 * The generation currently answering requests. Kept on globalThis because a
 * server upgrade loads a second copy of this code (the new bundle) into the
 * same process: signal handlers installed by the first copy must reach the
 * generation that is current now.
 */
const CURRENT = Symbol.for("openwork.server.current-generation");

interface GenerationSlot {
  app: ServerApp;
  shutdown(reason: string): Promise<void>;
}

export function currentGeneration(): GenerationSlot | undefined {
  return (globalThis as Record<symbol, GenerationSlot | undefined>)[CURRENT];
}

export function setCurrentGeneration(slot: GenerationSlot): void {
  (globalThis as Record<symbol, GenerationSlot | undefined>)[CURRENT] = slot;
}
