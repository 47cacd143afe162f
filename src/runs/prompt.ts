import { request } from "undici";
import { z } from "zod";
import { ExitCode, errorMessage, OpenworkError, UsageError } from "../errors/errors.js";
import type { Logger } from "../logging/logger.js";
import { RuntimeClient } from "./client.js";
import type { RunRecord, RunSecrets } from "./record.js";

/*
 * One prompt (or one shell command) through the runtime, its answer streamed:
 * `openwork run`. It talks to the engine's API through our proxy with the
 * client token. Not `opencode run --attach <url>`: measured with opencode
 * 1.18.34, that exits 0 and prints nothing of the answer, although the engine
 * stored it.
 *
 * The flow: a session (new, given, or the latest), the engine's event stream
 * subscribed BEFORE the prompt is sent (nothing of the answer can be missed),
 * `prompt_async` (or `shell`), then the events of that session until it is
 * idle again. Only the assistant messages answering this prompt are printed:
 * their text parts (deltas as they stream), and for a shell command the
 * command's output.
 */

export interface PromptRequest {
  /** the prompt's text; or */
  text?: string | undefined;
  /** a shell command run in the session (needs no model) */
  shell?: string | undefined;
  /** an existing session; or */
  session?: string | undefined;
  /** the latest top-level session */
  continue?: boolean | undefined;
  model?: { providerID: string; modelID: string } | undefined;
  agent?: string | undefined;
}

export interface PromptResult {
  sessionId: string;
  /** everything printed of the answer */
  text: string;
  outcome: "idle" | "aborted";
}

/** An engine event as it arrives (GET /event): its type and properties; the rest is the engine's. */
export type EngineEvent = z.output<typeof eventSchema>;

const eventSchema = z.looseObject({ type: z.string(), properties: z.record(z.string(), z.unknown()) });
const messageSchema = z.object({ id: z.string(), role: z.string(), parentID: z.string().optional() });
const partSchema = z.object({
  id: z.string(),
  messageID: z.string(),
  type: z.string(),
  text: z.string().optional(),
  state: z
    .object({
      output: z.string().optional(),
      metadata: z.object({ output: z.string().optional() }).optional(),
    })
    .optional(),
});
const deltaSchema = z.object({
  messageID: z.string(),
  partID: z.string(),
  field: z.string(),
  delta: z.string(),
});
const errorSchema = z.object({
  name: z.string().optional(),
  data: z.object({ message: z.string().optional() }).optional(),
});
const sessionSchema = z.object({
  id: z.string(),
  parentID: z.string().optional(),
  time: z.object({ updated: z.number() }),
});

/** "provider/model" → the engine's model reference (the model id may itself hold slashes). */
export function parseModel(value: string): { providerID: string; modelID: string } {
  const slash = value.indexOf("/");
  if (slash <= 0 || slash === value.length - 1)
    throw new UsageError(`--model must be PROVIDER/MODEL (e.g. anthropic/claude-sonnet-4), not "${value}"`);
  return { providerID: value.slice(0, slash), modelID: value.slice(slash + 1) };
}

export async function sendPrompt(options: {
  record: RunRecord & { url: string };
  secrets: RunSecrets;
  request: PromptRequest;
  /** Ctrl-C: the session's work is aborted and the result says so */
  signal: AbortSignal;
  /** each new piece of the answer */
  onText?: ((text: string) => void) | undefined;
  /** every event of the session, as the engine sent it */
  onEvent?: ((event: EngineEvent) => void) | undefined;
  log: Logger;
}): Promise<PromptResult> {
  const { record, secrets, request: ask, log } = options;
  const client = new RuntimeClient(record.url, { client: secrets.clientToken });
  const engine = async (method: "GET" | "POST", path: string, body?: unknown, timeoutMs = 30_000) =>
    expectOk(method, path, await client.engine(method, path, { body, timeoutMs }));

  const sessionId = await chooseSession(engine, ask, record.runId);
  const session = `/session/${encodeURIComponent(sessionId)}`;
  const agent = ask.shell !== undefined ? (ask.agent ?? (await defaultAgent(engine))) : ask.agent;
  const answer = new AnswerFilter(sessionId, ask.shell !== undefined, options);

  // Ends the event stream: on Ctrl-C, when sending failed, and when this is over.
  const stream = new AbortController();
  const abortStream = () => stream.abort();
  options.signal.addEventListener("abort", abortStream, { once: true });
  if (options.signal.aborted) stream.abort();
  let sent: Promise<unknown> | undefined;
  let sendError: unknown;
  try {
    const events = await subscribe(record.url, secrets.clientToken, stream.signal);
    sent =
      ask.shell !== undefined
        ? // answered when the command is done; its output streams meanwhile
          engine("POST", `${session}/shell`, { agent, command: ask.shell, model: ask.model }, 86_400_000)
        : engine("POST", `${session}/prompt_async`, {
            parts: [{ type: "text", text: ask.text ?? "" }],
            ...(ask.model ? { model: ask.model } : {}),
            ...(agent ? { agent } : {}),
          });
    sent.catch((error: unknown) => {
      sendError = error;
      stream.abort();
    });
    for await (const event of events) {
      if (answer.take(event) === "idle") {
        await sent;
        return { sessionId, text: answer.text, outcome: "idle" };
      }
    }
  } catch (error) {
    // an aborted stream is Ctrl-C or a failed send, both answered below; a session.error is not
    if (!stream.signal.aborted) throw error;
  } finally {
    options.signal.removeEventListener("abort", abortStream);
    stream.abort();
  }
  if (sendError) throw sendError;
  if (options.signal.aborted) {
    if (sent)
      await engine("POST", `${session}/abort`, undefined, 5_000).catch((error: unknown) =>
        log.warn({ err: error }, `could not abort session ${sessionId}: ${errorMessage(error)}`),
      );
    return { sessionId, text: answer.text, outcome: "aborted" };
  }
  throw new OpenworkError("the engine's event stream ended before the session was idle again", {
    code: "engine_unavailable",
    hint: `the engine may have restarted; the session is ${sessionId}`,
  });
}

/**
 * The engine's event stream (GET /opencode/event), once it is live: its first
 * event (server.connected) has arrived, so a prompt sent now cannot be missed.
 */
async function subscribe(
  url: string,
  token: string,
  signal: AbortSignal,
): Promise<AsyncGenerator<EngineEvent>> {
  const response = await request(new URL("/opencode/event", url), {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal,
    headersTimeout: 30_000,
    // an event stream is quiet while the model thinks: no timeout between chunks
    bodyTimeout: 0,
  });
  if (response.statusCode !== 200)
    expectOk("GET", "/event", { status: response.statusCode, body: await response.body.text() });
  const events = serverSentEvents(response.body);
  await events.next();
  return events;
}

/**
 * What of the event stream is this prompt's answer. Only events of the
 * session count; of those, the assistant messages answering a user message
 * that arrived after the prompt was sent (the events are subscribed to just
 * before): their text parts — deltas as they come, and whatever a part's full
 * text has beyond them — and, for a shell command, its tool part's output.
 */
class AnswerFilter {
  text = "";
  private readonly users = new Set<string>();
  private readonly assistants = new Set<string>();
  private readonly parts = new Map<string, { type: string; printed: number }>();
  private busy = false;

  constructor(
    private readonly sessionId: string,
    private readonly shell: boolean,
    private readonly out: Pick<Parameters<typeof sendPrompt>[0], "onText" | "onEvent">,
  ) {}

  /** One event; "idle" when the session is done with this prompt. Throws on a session.error. */
  take(event: EngineEvent): "idle" | undefined {
    const props = event.properties;
    if (props.sessionID !== this.sessionId) return undefined;
    this.out.onEvent?.(event);
    if (event.type === "message.updated") {
      const info = messageSchema.safeParse(props.info);
      if (!info.success) return undefined;
      if (info.data.role === "user") this.users.add(info.data.id);
      else if (info.data.role === "assistant" && this.users.has(info.data.parentID ?? ""))
        this.assistants.add(info.data.id);
    } else if (event.type === "message.part.updated") {
      const part = partSchema.safeParse(props.part);
      if (!part.success || !this.assistants.has(part.data.messageID)) return undefined;
      const { id, type, text, state } = part.data;
      const known = this.parts.get(id) ?? { type, printed: 0 };
      this.parts.set(id, known);
      const full =
        type === "text"
          ? text
          : type === "tool" && this.shell
            ? (state?.output ?? state?.metadata?.output)
            : undefined;
      if (full !== undefined && full.length > known.printed) this.print(known, full.slice(known.printed));
    } else if (event.type === "message.part.delta") {
      const delta = deltaSchema.safeParse(props);
      if (!delta.success || delta.data.field !== "text" || !this.assistants.has(delta.data.messageID))
        return undefined;
      const part = this.parts.get(delta.data.partID);
      if (part?.type === "text") this.print(part, delta.data.delta);
    } else if (event.type === "session.error") {
      const error = errorSchema.safeParse(props.error);
      const message = error.success ? (error.data.data?.message ?? error.data.name) : undefined;
      throw new OpenworkError(`the session failed: ${(message ?? "unknown error").split("\n")[0]}`, {
        code: "session_error",
        exitCode: ExitCode.failure,
      });
    } else if (event.type === "session.status" || event.type === "session.idle") {
      const status = event.type === "session.idle" ? "idle" : (props.status as { type?: string })?.type;
      if (status === "busy") this.busy = true;
      // An idle before this prompt was taken up (nothing of it seen yet) is not its end.
      else if (status === "idle" && (this.busy || this.assistants.size > 0)) return "idle";
    }
    return undefined;
  }

  private print(part: { printed: number }, piece: string): void {
    part.printed += piece.length;
    this.text += piece;
    this.out.onText?.(piece);
  }
}

type EngineCall = (method: "GET" | "POST", path: string, body?: unknown) => Promise<unknown>;

/** The session a prompt goes to: the one given (it must exist), the latest top-level one, or a new one. */
async function chooseSession(engine: EngineCall, ask: PromptRequest, runId: string): Promise<string> {
  if (ask.session !== undefined) {
    try {
      await engine("GET", `/session/${encodeURIComponent(ask.session)}`);
    } catch (error) {
      if (error instanceof EngineAnswerError && error.status === 404)
        throw new UsageError(`run ${runId} has no session ${ask.session}`, "--continue takes the latest");
      throw error;
    }
    return ask.session;
  }
  if (ask.continue) {
    const listed = z.array(sessionSchema).safeParse(await engine("GET", "/session"));
    const latest = (listed.success ? listed.data : [])
      .filter((session) => session.parentID === undefined)
      .sort((a, b) => b.time.updated - a.time.updated)[0];
    if (!latest) throw new UsageError(`run ${runId} has no session to continue`);
    return latest.id;
  }
  const created = z.object({ id: z.string() }).safeParse(await engine("POST", "/session", {}));
  if (!created.success)
    throw new OpenworkError("POST /opencode/session answered no session id", { code: "protocol_mismatch" });
  return created.data.id;
}

/** The agent a shell command runs as (the engine requires one): the configured default, else "build". */
async function defaultAgent(engine: EngineCall): Promise<string> {
  const config = z.object({ default_agent: z.string().optional() }).safeParse(await engine("GET", "/config"));
  return (config.success ? config.data.default_agent : undefined) ?? "build";
}

/** The engine (or the proxy in front of it) answered a request with an error status. */
class EngineAnswerError extends OpenworkError {
  constructor(
    method: string,
    path: string,
    readonly status: number,
    body: unknown,
  ) {
    const text = typeof body === "string" ? body : JSON.stringify(body ?? null);
    super(`${method} /opencode${path} answered HTTP ${status}: ${text.slice(0, 300)}`, {
      code: status === 401 ? "unauthorized" : "engine_error",
      hint: status === 401 ? "the runtime refused the run's client token" : undefined,
    });
    this.name = "EngineAnswerError";
  }
}

/** An engine answer's body when its status is 2xx; else an EngineAnswerError. */
function expectOk(method: string, path: string, answer: { status: number; body: unknown }): unknown {
  if (answer.status >= 200 && answer.status < 300) return answer.body;
  throw new EngineAnswerError(method, path, answer.status, answer.body);
}

/** The `data:` payloads of a server-sent event stream, parsed as engine events (anything else is skipped). */
async function* serverSentEvents(body: AsyncIterable<Buffer | string>): AsyncGenerator<EngineEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += (typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true })).replace(
      /\r/g,
      "",
    );
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data.length === 0) continue;
      try {
        // The engine's object as sent (key order and all, for --format json), once it has an event's shape.
        const raw: unknown = JSON.parse(data);
        if (eventSchema.safeParse(raw).success) yield raw as EngineEvent;
      } catch {
        // not JSON: not an event of the engine's
      }
    }
  }
}
