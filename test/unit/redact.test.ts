import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { createLogger, lineRelay } from "../../src/logging/logger.js";
import { REDACTED, redactText, redactValue, registerSecret } from "../../src/logging/redact.js";

test("secrets are masked by shape", () => {
  const cases: Array<[string, string]> = [
    ["Authorization: Bearer abcdef123456", `Authorization: Bearer ${REDACTED}`],
    ["authorization=Basic dXNlcjpwYXNz", `authorization=Basic ${REDACTED}`],
    ["X-OpenWork-Host-Token: s3cr3t-value", `X-OpenWork-Host-Token: ${REDACTED}`],
    ["OPENWORK_TOKEN=abc123 next", `OPENWORK_TOKEN=${REDACTED} next`],
    ['OPENCODE_SERVER_PASSWORD="p a s s"', `OPENCODE_SERVER_PASSWORD=${REDACTED}`],
    ["export GITHUB_TOKEN='ghp_x'", `export GITHUB_TOKEN=${REDACTED}`],
    ['{"token":"abc","x":1}', `{"token":"${REDACTED}","x":1}`],
    ["http://opencode:hunter22@127.0.0.1:4096/x", `http://opencode:${REDACTED}@127.0.0.1:4096/x`],
  ];
  for (const [input, expected] of cases) assert.equal(redactText(input), expected, input);
});

test("ordinary text is left alone", () => {
  for (const text of [
    "listening on http://127.0.0.1:4096",
    "TOKENS=3 were counted",
    "my.envdir",
    "tokenizer ready",
  ]) {
    assert.equal(redactText(text), text);
  }
});

test("registered secret values are masked wherever they appear", () => {
  const secret = "owk_7b1c0e5c4f2a9d88";
  registerSecret(secret);
  assert.equal(redactText(`started with ${secret} in the middle`), `started with ${REDACTED} in the middle`);
  assert.deepEqual(redactValue({ env: [`X=${secret}`], password: "anything", nested: { token: 1 } }), {
    env: [`X=${REDACTED}`],
    password: REDACTED,
    nested: { token: REDACTED },
  });
});

test("the logger redacts messages and fields, and writes JSON lines to its destination", () => {
  const sink = new PassThrough();
  const chunks: string[] = [];
  sink.on("data", (chunk: Buffer) => chunks.push(chunk.toString()));
  const log = createLogger({ format: "json", destination: sink });
  log.info(
    { headers: { authorization: "Bearer abcdefghijkl" }, env: "OPENWORK_HOST_TOKEN=zzz" },
    "got Bearer qwertyuiop",
  );
  const record = JSON.parse(chunks.join("").trim()) as Record<string, unknown>;
  assert.equal(record.msg, `got Bearer ${REDACTED}`);
  assert.deepEqual(record.headers, { authorization: REDACTED });
  assert.equal(record.env, `OPENWORK_HOST_TOKEN=${REDACTED}`);
});

test("relayed child output is split into lines and redacted", async () => {
  const lines: string[] = [];
  const relay = lineRelay((line) => lines.push(line));
  relay.write("first line\nOPENCODE_SERVER_PASSWORD=abc par");
  relay.write("tial\nlast without newline");
  await new Promise<void>((resolve) => relay.end(resolve));
  assert.deepEqual(lines, [
    "first line",
    `OPENCODE_SERVER_PASSWORD=${REDACTED} partial`,
    "last without newline",
  ]);
});
