import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { parseServeEnv } from "../../src/contract/env.js";
import { redactText } from "../../src/logging/redact.js";
import { opener } from "../../src/runs/open.js";
import { createUpstream, proxyRequest } from "../../src/server/proxy.js";
import { allowedHost, isOwnPath } from "../../src/server/routes/web.js";
import {
  cookieValue,
  isSessionCookie,
  sessionCookieName,
  type WebLoginState,
  WebLogins,
  withoutCookie,
} from "../../src/server/web-sessions.js";

function store(start = 1_000_000) {
  let now = start;
  const state: WebLoginState = { codes: new Map(), sessions: new Map() };
  const logins = new WebLogins({ now: () => now, state, codeTtlMs: 60_000, sessionTtlMs: 3_600_000 });
  return { logins, state, advance: (ms: number) => (now += ms) };
}

test("a login code is exchanged once, for a session; a second exchange fails", () => {
  const { logins, state } = store();
  const { code, expiresAt } = logins.mintCode();
  assert.ok(Buffer.from(code, "base64url").length >= 16, "at least 128 random bits");
  assert.equal(expiresAt, 1_000_000 + 60_000);
  assert.ok(![...state.codes.keys()].includes(code), "kept as a digest only");
  const first = logins.exchange(code);
  assert.ok(first);
  assert.equal(first.expiresAt, 1_000_000 + 3_600_000);
  assert.ok(logins.valid(first.session));
  assert.ok(![...state.sessions.keys()].includes(first.session), "kept as a digest only");
  assert.equal(logins.exchange(code), undefined, "single use");
  assert.equal(state.codes.size, 0);
});

test("codes and sessions expire by the injected clock; unknown ones are refused", () => {
  const { logins, advance } = store();
  const late = logins.mintCode().code;
  advance(60_000);
  assert.equal(logins.exchange(late), undefined, "expired at its TTL");
  const fresh = logins.mintCode().code;
  advance(59_999);
  const session = logins.exchange(fresh)?.session;
  assert.ok(session);
  advance(3_599_999);
  assert.ok(logins.valid(session));
  advance(1);
  assert.equal(logins.valid(session), false, "expired at its lifetime");
  assert.equal(logins.valid(undefined), false);
  assert.equal(logins.valid(""), false);
  assert.equal(logins.exchange("made-up-code"), undefined);
  assert.equal(logins.valid(fresh), false, "a code is not a session");
});

test("codes and sessions are registered as secrets: the logs mask them", () => {
  const { logins } = store();
  const { code } = logins.mintCode();
  const { session } = logins.exchange(code) ?? { session: "" };
  assert.equal(redactText(`code ${code} session ${session}`).includes(code), false);
  assert.equal(redactText(`session ${session}`).includes(session), false);
});

test("the session cookie is read from, and removed from, a Cookie header", () => {
  assert.equal(cookieValue("a=1; ow_session=xyz; b=2", "ow_session"), "xyz");
  assert.equal(cookieValue("ow_sessionx=1", "ow_session"), undefined);
  assert.equal(cookieValue(undefined, "ow_session"), undefined);
  assert.equal(withoutCookie("a=1; ow_session=xyz; b=2", "ow_session"), "a=1; b=2");
  assert.equal(withoutCookie("ow_session=xyz", "ow_session"), undefined);
  // Every port's session cookie is ours (a fleet's runtimes share 127.0.0.1); look-alikes are not.
  assert.equal(sessionCookieName("127.0.0.1:8801"), "ow_session_8801");
  assert.equal(
    withoutCookie("ow_session_8801=a; ow_session_8802=b; ow_sessions=c; x=1", isSessionCookie),
    "ow_sessions=c; x=1",
  );
  assert.equal(withoutCookie("oc_locale=en", "ow_session"), "oc_locale=en");
});

const baseEnv = {
  OPENWORK_PERSIST: "/persist",
  OPENWORK_RUNTIME_ID: "0123456789abcdef",
  OPENWORK_WORKSPACE: "/workspace",
  OPENWORK_SERVER_PORT: "8787",
  OPENWORK_ENGINE_PID: "1234",
  OPENWORK_ENGINE_PORT: "4096",
  OPENWORK_ENGINE_LOG: "/persist/logs/engine.log",
  OPENWORK_TOKEN_SHA256: "a".repeat(64),
  OPENWORK_HOST_KEY: "b".repeat(64),
  OPENCODE_SERVER_PASSWORD: "engine-password-123",
};

test("Host check: loopback names and the listening address at the server's (or published) port; no other name", () => {
  const host = parseServeEnv(baseEnv);
  assert.ok(allowedHost("127.0.0.1:8787", host));
  assert.ok(allowedHost("localhost:8787", host));
  assert.ok(allowedHost("[::1]:8787", host));
  assert.equal(allowedHost("127.0.0.1:8788", host), false);
  assert.equal(allowedHost("evil.example:8787", host), false);
  assert.equal(allowedHost("127.0.0.1", host), false, "the port is part of it");
  assert.equal(allowedHost(undefined, host), false);
  assert.equal(allowedHost("192.168.1.5:8787", host), false, "only loopback when it listens there");
  const sandbox = parseServeEnv({
    ...baseEnv,
    OPENWORK_SERVER_HOST: "0.0.0.0",
    OPENWORK_SERVER_PORT: "4097",
    OPENWORK_PUBLISHED_PORT: "43210",
  });
  assert.ok(allowedHost("127.0.0.1:43210", sandbox), "the published port");
  assert.ok(allowedHost("127.0.0.1:4097", sandbox));
  assert.ok(allowedHost("192.168.1.5:43210", sandbox), "an address on all interfaces (never rebound)");
  assert.equal(allowedHost("evil.example:43210", sandbox), false);
  assert.equal(allowedHost("localhost.evil.example:43210", sandbox), false);
});

test("our own paths never go to the web UI", () => {
  for (const own of ["/system", "/system/runtime/summary", "/tokens", "/opencode/session", "/login"])
    assert.ok(isOwnPath(own), own);
  for (const ui of ["/", "/session", "/assets/x.js", "/systemx", "/loginx", "/global/event"])
    assert.equal(isOwnPath(ui), false, ui);
});

test("the platform's opener: xdg-open or open when on PATH, start on Windows, else none", () => {
  const empty = mkdtempSync(path.join(os.tmpdir(), "openwork-opener-"));
  assert.equal(opener("linux", empty), undefined);
  assert.equal(opener("darwin", empty), undefined);
  assert.deepEqual(opener("win32", empty), { command: "cmd", args: ["/c", "start", ""] });
  writeFileSync(path.join(empty, "xdg-open"), "#!/bin/sh\n", { mode: 0o755 });
  assert.deepEqual(opener("linux", empty), { command: "xdg-open", args: [] });
});

test("the proxy never hands the session cookie to the engine; the engine's own cookies pass", async (t) => {
  const seen: http.IncomingHttpHeaders[] = [];
  const engine = http.createServer((req, res) => {
    seen.push(req.headers);
    res.end("ok");
  });
  await new Promise<void>((resolve) => engine.listen(0, "127.0.0.1", resolve));
  t.after(() => engine.close());
  const upstream = createUpstream("test", (engine.address() as AddressInfo).port, "Basic ZW5naW5l");
  const front = http.createServer((req, res) =>
    proxyRequest(req, res, {
      upstream,
      target: req.url ?? "/",
      workspace: "/workspace",
      requestId: "r1",
      onError: (status) => {
        res.writeHead(status);
        res.end();
      },
    }),
  );
  await new Promise<void>((resolve) => front.listen(0, "127.0.0.1", resolve));
  t.after(() => front.close());
  const base = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  for (const cookie of ["oc_locale=en; ow_session=secret-session-value", "ow_session=secret-session-value"]) {
    const response = await fetch(`${base}/session`, { headers: { cookie } });
    assert.equal(await response.text(), "ok");
  }
  assert.equal(seen[0]?.cookie, "oc_locale=en");
  assert.equal(seen[1]?.cookie, undefined);
  assert.equal(seen[0]?.authorization, "Basic ZW5naW5l", "the engine's credentials instead");
});
