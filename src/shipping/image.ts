import type Docker from "dockerode";
import { followProgress } from "../docker/client.js";
import { createProgress } from "../download/progress.js";
import { errorMessage, OpenworkError } from "../errors/errors.js";
import { splitImageRef } from "../image/registry-ref.js";
import type { Logger } from "../logging/logger.js";
import { counting } from "./runtime.js";

export interface ImageOnEngine {
  ref: string;
  /** how it got there: it was there, tagged from the same image there, pulled from its registry by the engine, or streamed from this machine's engine */
  how: "present" | "tagged" | "pulled" | "streamed";
  bytes: number;
}

/**
 * Make an image available on an engine: present (by name) → nothing; a
 * reference that names a registry (`host[:port]/repo…`, e.g. `--image
 * 10.0.0.1:5000/sandbox@sha256:…`) → pulled by that engine from it, with
 * progress; else, without a registry: the same image id present under another
 * name → tagged; else streamed from the local engine (`docker save | docker
 * load` through the image API), with progress, and checked to have arrived as
 * the same id.
 */
export async function imageToEngine(options: {
  local: Docker;
  remote: Docker;
  ref: string;
  log: Logger;
}): Promise<ImageOnEngine> {
  const { local, remote, ref, log } = options;
  const there = await remote
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  const here = await local
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (there && (!here || there.Id === here.Id)) return { ref, how: "present", bytes: 0 };
  if (!there && namesRegistry(ref)) return pullOnEngine(remote, ref, log);
  if (!here)
    throw new OpenworkError(`the image ${ref} is neither on the engine nor on this machine's Docker engine`, {
      code: "image_missing",
      hint: "build it here (`openwork image build`), or pass --image with an image that engine has",
    });
  const sameId = await remote
    .getImage(here.Id)
    .inspect()
    .catch(() => undefined);
  const [repo, tag] = splitImageRef(ref);
  if (sameId) {
    await remote.getImage(here.Id).tag({ repo, tag });
    return { ref, how: "tagged", bytes: 0 };
  }
  log.info(
    { image: ref, bytes: here.Size },
    "the engine lacks the sandbox image: streaming it from this machine",
  );
  const progress = createProgress({ label: `sending image ${ref}`, total: here.Size, log });
  let bytes = 0;
  try {
    const saved = (await local.getImage(ref).get()) as NodeJS.ReadableStream;
    const counted = saved.pipe(
      counting((n) => {
        bytes += n;
        progress.advance(n);
      }),
    );
    const answer = (await remote.loadImage(counted, { quiet: true })) as NodeJS.ReadableStream;
    const text = await readAll(answer);
    const failure = /"error(?:Detail)?":\s*(?:\{"message":)?"([^"]+)"/.exec(text);
    if (failure) throw new Error(failure[1]);
  } catch (error) {
    throw new OpenworkError(`streaming the image ${ref} to the engine failed: ${errorMessage(error)}`, {
      code: "image_missing",
      cause: error,
    });
  } finally {
    progress.stop();
  }
  const arrived = await remote
    .getImage(ref)
    .inspect()
    .catch(() => undefined);
  if (arrived?.Id !== here.Id)
    throw new OpenworkError(
      `the image ${ref} arrived on the engine as ${arrived?.Id ?? "nothing"}, not ${here.Id}`,
      { code: "image_missing" },
    );
  log.info({ image: ref, bytes }, "sandbox image streamed to the engine");
  return { ref, how: "streamed", bytes };
}

/** A reference whose first path component is a registry host (has a dot or a port, or is localhost). */
export function namesRegistry(ref: string): boolean {
  const slash = ref.indexOf("/");
  if (slash < 0) return false;
  const first = ref.slice(0, slash);
  return first.includes(".") || first.includes(":") || first === "localhost";
}

/** The engine pulls the image from the registry its reference names, as `docker pull` there would. */
async function pullOnEngine(remote: Docker, ref: string, log: Logger): Promise<ImageOnEngine> {
  log.info({ image: ref }, "the engine pulls the sandbox image from its registry");
  let last = 0;
  try {
    const stream = (await remote.pull(ref)) as NodeJS.ReadableStream;
    await followProgress(remote, stream, (event) => {
      const now = Date.now();
      if (event.status && now - last > 2000) {
        last = now;
        log.info({ image: ref, status: event.status, progress: event.progress }, `pulling ${ref}`);
      }
    });
  } catch (error) {
    throw new OpenworkError(`the engine could not pull ${ref}: ${errorMessage(error)}`, {
      code: "image_missing",
      hint: "the engine must reach and trust that registry (an insecure one must be listed in its daemon.json)",
      cause: error,
    });
  }
  return { ref, how: "pulled", bytes: 0 };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString("utf8");
}
