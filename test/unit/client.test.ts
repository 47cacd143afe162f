import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import {
  hostKeyOf,
  newHostToken,
  parseHostSignature,
  verifyHostSignature,
} from "../../src/contract/host-auth.js";
import { ApiCallError, RuntimeClient } from "../../src/runs/client.js";
import { upgradeRefusal } from "../../src/runs/upgrade.js";

// A stand-in for the runtime server that answers whatever the test says: the client is checked
// against the contract's envelopes and schemas, not against one server's behaviour.
let answer: { status: number; body: unknown } = { status: 200, body: {} };
const seen: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders }> = [];
const server = http.createServer((req, res) => {
  seen.push({ method: req.method, url: req.url, headers: req.headers });
  req.resume();
  res.writeHead(answer.status, { "content-type": "application/json" });
  res.end(JSON.stringify(answer.body));
});
const HOST_TOKEN = newHostToken();
let client: RuntimeClient;

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  client = new RuntimeClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    client: "client-token-123456",
    host: HOST_TOKEN,
  });
});
after(() => server.close());

const ok = (data: unknown) => ({ ok: true, data, meta: { requestId: "r1" } });
const failure = (code: string, message: string, extra: Record<string, unknown> = {}) => ({
  ok: false,
  error: { code, message, requestId: "r1", ...extra },
});

test("each call sends the token its endpoint's auth level needs and returns contract types", async () => {
  answer = { status: 200, body: ok({ status: "ok", version: "0.1.0" }) };
  assert.deepEqual(await client.health(), { status: "ok", version: "0.1.0" });
  assert.equal(seen.at(-1)?.headers.authorization, undefined, "health needs no token");
  answer = {
    status: 200,
    body: ok({
      active: { opencode: "1.18.34", "opencode-router": null, "openwork-server": "0.1.0", node: "24.21.0" },
      pinned: { runtimeId: "0123456789abcdef", versions: { opencode: "1.18.34" } },
      target: null,
    }),
  };
  const versions = await client.versions();
  assert.equal(versions.pinned.versions.opencode, "1.18.34");
  assert.equal(seen.at(-1)?.headers.authorization, "Bearer client-token-123456");
  answer = { status: 404, body: failure("operation_not_found", "no upgrade operation x") };
  await assert.rejects(client.operation("a/b"), (error: unknown) => {
    assert.ok(error instanceof ApiCallError);
    assert.equal(error.apiCode, "operation_not_found");
    return true;
  });
  assert.equal(seen.at(-1)?.url, "/system/runtime/upgrade/a%2Fb", "path parameters are encoded");
});

test("an answer that does not match the contract is reported as such, never guessed at", async () => {
  answer = { status: 200, body: ok({ active: { opencode: { version: "1.18.34" } }, pinned: {} }) };
  await assert.rejects(client.versions(), /answered data this openwork does not understand \(active\./);
  answer = { status: 500, body: "<html>" };
  await assert.rejects(client.summary(), /answered HTTP 500/);
  answer = { status: 418, body: failure("brand_new_code", "from a newer server") };
  await assert.rejects(client.summary(), (error: unknown) => {
    assert.ok(error instanceof ApiCallError);
    assert.equal(error.apiCode, "unknown");
    assert.match(error.message, /brand_new_code: from a newer server/);
    return true;
  });
});

test("the CLI words each 409 of an upgrade after its code", async () => {
  const refusal = async (body: unknown) => {
    answer = { status: 409, body };
    const error = await client.upgrade({ runtimeId: "0123456789abcdef" }).then(
      () => assert.fail("expected a refusal"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ApiCallError);
    const headers = seen.at(-1)?.headers ?? {};
    assert.equal(headers["x-openwork-host-token"], undefined, "the host token itself is never sent");
    assert.ok(!JSON.stringify(headers).includes(HOST_TOKEN.slice(4)), "nor any part of it");
    const signature = parseHostSignature(String(headers["x-openwork-host-signature"]));
    assert.ok(signature, "upgrade is signed with the host token");
    assert.ok(
      verifyHostSignature(hostKeyOf(HOST_TOKEN) as string, "POST", "/system/runtime/upgrade", signature),
      "the signature covers the method and path, checkable with the public key alone",
    );
    assert.ok(!verifyHostSignature(hostKeyOf(HOST_TOKEN) as string, "POST", "/tokens", signature));
    return upgradeRefusal(error);
  };
  const busy = await refusal(
    failure("upgrade_in_progress", "upgrade upg_1 is running", { operationId: "upg_1" }),
  );
  assert.equal(busy.code, "upgrade_in_progress");
  assert.match(busy.message, /another upgrade \(upg_1\) is running/);
  const unhealthy = await refusal(
    failure("runtime_unhealthy", "the engine is restarting: upgrade a healthy runtime"),
  );
  assert.equal(unhealthy.code, "runtime_unhealthy");
  assert.match(unhealthy.message, /the runtime is not healthy/);
  assert.doesNotMatch(unhealthy.message, /another upgrade/);
  assert.match(unhealthy.hint ?? "", /openwork status/);
});

test("one bounded exchange over node:http: the body and its length go out; too large, too slow and refused are errors", async () => {
  const { httpRequest, httpGet, isTimeoutError } = await import("../../src/net/http.js");
  const bodies: string[] = [];
  const lengths: Array<string | undefined> = [];
  const local = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    req.on("end", () => {
      bodies.push(body);
      lengths.push(req.headers["content-length"]);
      if (req.url === "/slow") return; // never answers
      res.writeHead(200);
      res.end(req.url === "/big" ? "x".repeat(100_000) : `got ${body.length}`);
    });
  });
  await new Promise<void>((resolve) => local.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(local.address() as AddressInfo).port}`;
  try {
    const posted = await httpRequest(`${base}/echo`, { method: "POST", body: '{"é":1}', timeoutMs: 3000 });
    assert.deepEqual(posted, { status: 200, text: "got 7" });
    assert.equal(lengths.at(-1), "8", "content-length counts bytes, not characters");

    await assert.rejects(
      httpRequest(`${base}/big`, { timeoutMs: 3000, maxBytes: 1000 }),
      /larger than 1000 bytes/,
    );
    const cut = await httpGet(`${base}/big`, {}, 3000);
    assert.equal(cut.text.length, 64 * 1024, "a probe keeps the first 64 KiB and is not an error");

    const slow = await httpRequest(`${base}/slow`, { timeoutMs: 200 }).catch((error: unknown) => error);
    assert.ok(isTimeoutError(slow), "no answer in time is a timeout");
  } finally {
    local.closeAllConnections();
    await new Promise((resolve) => local.close(resolve));
  }
  const refused = await httpRequest(base, { timeoutMs: 1000 }).catch((error: unknown) => error);
  assert.equal((refused as { code?: string }).code, "ECONNREFUSED");
});
