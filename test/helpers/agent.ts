import { request } from "undici";

/**
 * Run a shell command as the agent does: through the proxy, in an engine
 * session (opencode's POST /session/{id}/shell, the same tool the model
 * uses). Only the client token is needed, as an attacker inside the run has.
 */
export class AgentShell {
  private session: string | undefined;

  constructor(
    private readonly url: string,
    private readonly clientToken: string,
  ) {}

  private async post(path: string, body: unknown): Promise<unknown> {
    const response = await request(`${this.url}/opencode${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${this.clientToken}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`POST ${path}: HTTP ${response.statusCode}: ${text}`);
    return JSON.parse(text);
  }

  /** The command's combined output (the engine's bash tool runs it with sh -c in the sandbox). */
  async run(command: string): Promise<string> {
    this.session ??= ((await this.post("/session", {})) as { id: string }).id;
    const answer = (await this.post(`/session/${this.session}/shell`, { agent: "build", command })) as {
      parts: Array<{ type: string; state?: { output?: string } }>;
    };
    const part = answer.parts.find((p) => p.type === "tool");
    if (part?.state?.output === undefined) throw new Error(`no tool output in ${JSON.stringify(answer)}`);
    return part.state.output;
  }
}
