import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { endpoints, tokenDigest } from "../../src/contract/api.js";
import { hostKeyOf, newHostToken } from "../../src/contract/host-auth.js";
import { openApiDocument } from "../../src/contract/openapi.js";
import { silentLogger } from "../../src/logging/logger.js";
import { createDispatcher } from "../../src/server/dispatch.js";
import { sendOk } from "../../src/server/http.js";
import { TokenStore } from "../../src/server/tokens.js";

/*
 * HTTP basic auth on the engine proxy (opencode's own clients speak only that): the client or an
 * owner token as the password, on /opencode/* only, never the host token. The dispatcher runs for
 * real on a loopback server; the routes answer who they are instead of reaching an engine.
 */

const clientToken = "owc_client-token-0123456789";
const hostToken = newHostToken();

const basic = (password: string, user = "opencode") =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

async function dispatcherServer(t: { after: (fn: () => void) => void }) {
  const tokens = new TokenStore(tokenDigest(clientToken).toString("hex"), hostKeyOf(hostToken) as string);
  const answer = (name: string) => ({
    handle: ({ res, requestId }: { res: http.ServerResponse; requestId: string }) =>
      sendOk(res, requestId, 200, { route: name }),
  });
  const { handler, upgradeHandler } = createDispatcher({
    routes: [
      { endpoint: endpoints.proxy, ...answer("proxy") },
      { endpoint: endpoints.summary, ...answer("summary") },
      { endpoint: endpoints.mintToken, ...answer("mint") },
    ],
    upgrades: [
      {
        endpoint: endpoints.proxy,
        handle: async (_req, socket) => {
          socket.end("HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n");
        },
      },
    ],
    tokens,
    log: silentLogger(),
  });
  const server = http.createServer(handler);
  server.on("upgrade", upgradeHandler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.closeAllConnections());
  t.after(() => server.close());
  return { port: (server.address() as AddressInfo).port, tokens };
}

async function call(
  port: number,
  method: string,
  path: string,
  authorization?: string,
): Promise<{ status: number; challenges: string[]; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: authorization ? { authorization } : {},
  });
  const challenges = response.headers.get("www-authenticate")?.split(/,\s*(?=Basic|Bearer)/) ?? [];
  return { status: response.status, challenges, body: await response.text() };
}

/** A WebSocket upgrade request: its status line's code (101 through, 401 refused) and its challenges. */
function upgrade(port: number, authorization?: string): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      port,
      host: "127.0.0.1",
      path: "/opencode/pty/x/connect",
      headers: {
        connection: "upgrade",
        upgrade: "websocket",
        ...(authorization ? { authorization } : {}),
      },
    });
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, head: JSON.stringify(res.headers) });
    });
    req.on("response", (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, head: JSON.stringify(res.rawHeaders) });
    });
    req.on("error", reject);
    req.end();
  });
}

test("basic auth with the client or an owner token is let through to /opencode/*, any username", async (t) => {
  const { port, tokens } = await dispatcherServer(t);
  const viaClient = await call(port, "GET", "/opencode/session", basic(clientToken));
  assert.equal(viaClient.status, 200, viaClient.body);
  assert.match(viaClient.body, /"route":"proxy"/);
  assert.equal((await call(port, "POST", "/opencode/x", basic(clientToken, "someone"))).status, 200);
  const owner = tokens.mintOwner("sdk");
  assert.equal((await call(port, "GET", "/opencode/session", basic(owner.token, ""))).status, 200);
  // The bearer token still works there.
  assert.equal((await call(port, "GET", "/opencode/session", `Bearer ${clientToken}`)).status, 200);
  // WebSockets (the engine's PTY sessions) take it too.
  assert.equal((await upgrade(port, basic(clientToken))).status, 101);
});

test("a wrong basic password is a 401 offering both schemes; basic is refused where the spec does not say so", async (t) => {
  const { port } = await dispatcherServer(t);
  const wrong = await call(port, "GET", "/opencode/session", basic("owc_wrong-token-0123456789"));
  assert.equal(wrong.status, 401);
  assert.deepEqual(wrong.challenges, ['Bearer realm="openwork"', 'Basic realm="openwork"']);
  assert.match(wrong.body, /"code":"unauthorized"/);
  for (const header of [basic(""), "Basic !!!", `Basic ${Buffer.from(clientToken).toString("base64")}`]) {
    assert.equal((await call(port, "GET", "/opencode/session", header)).status, 401, header);
  }
  const refused = await upgrade(port, basic("owc_wrong-token-0123456789"));
  assert.equal(refused.status, 401);
  assert.match(refused.head, /Basic realm=\\"openwork\\"/);

  // /system/* is bearer only: the right token sent as basic is not a credential there.
  const summary = await call(port, "GET", "/system/runtime/summary", basic(clientToken));
  assert.equal(summary.status, 401);
  assert.deepEqual(summary.challenges, ['Bearer realm="openwork"']);
  assert.equal((await call(port, "GET", "/system/runtime/summary", `Bearer ${clientToken}`)).status, 200);
});

test("the host token through basic auth grants nothing: host scope stays bearer or signature only", async (t) => {
  const { port, tokens } = await dispatcherServer(t);
  const request = (authorization: string, url = "/opencode/session") =>
    ({ method: "GET", url, headers: { authorization } }) as unknown as http.IncomingMessage;
  assert.equal(tokens.authenticate(request(basic(hostToken)), { basic: true }), undefined);
  assert.equal(tokens.authenticate(request(basic(clientToken)), { basic: true }), "client");
  assert.equal(tokens.authenticate(request(basic(clientToken))), undefined, "basic only where asked");
  assert.equal(tokens.authenticate(request(`Bearer ${hostToken}`), { basic: true }), "host");
  assert.equal((await call(port, "GET", "/opencode/session", basic(hostToken))).status, 401);
  assert.equal((await call(port, "POST", "/tokens", basic(hostToken))).status, 401);
});

test("the OpenAPI document shows the basic scheme on the proxy only", () => {
  const doc = openApiDocument(Object.values(endpoints), "0.0.0") as {
    components: { securitySchemes: Record<string, { type: string; scheme?: string }> };
    paths: Record<string, Record<string, { security: Array<Record<string, unknown>> }>>;
  };
  assert.deepEqual(doc.components.securitySchemes.basic?.scheme, "basic");
  const schemes = (path: string, method: string) =>
    (doc.paths[path]?.[method]?.security ?? []).flatMap((entry) => Object.keys(entry));
  assert.ok(schemes("/opencode/{path}", "get").includes("basic"));
  assert.ok(schemes("/opencode/{path}", "post").includes("basic"));
  assert.ok(!schemes("/system/runtime/summary", "get").includes("basic"));
  assert.ok(!schemes("/tokens", "post").includes("basic"));
});
