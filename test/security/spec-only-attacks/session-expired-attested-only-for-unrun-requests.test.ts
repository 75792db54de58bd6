// Property 21 (§8, §6 step 3): the server attests `session_expired` (MCP-PKI-Refusal) only for a
// request that never ran. A man in the middle who lets a request run and presents it again after
// the session expired — also after an in-memory replay memory restarted in between — must not get
// a verified `session_expired` (which a createAuthFetch client would renew and re-send on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEnv, handshake, send, refusalMac, b64u } from './env.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function refusalCode(r: { headers: Headers }, s: Parameters<typeof refusalMac>[0], mac: Buffer): string | undefined {
  const v = r.headers.get('mcp-pki-refusal');
  if (!v) return undefined;
  const m = /^c=([a-z_]{1,32}), ?m=([A-Za-z0-9_-]{43})$/.exec(v.trim());
  assert.ok(m, 'refusal header well formed: ' + v);
  assert.equal(m[2], b64u(refusalMac(s, m[1]!, mac)), 'refusal MAC verifies');
  return m[1];
}

test('property 21: a request that ran and is replayed after expiry gets replay_detected, never session_expired', async () => {
  const env = await makeEnv({ auth: '  session_ttl: 4\n' });
  try {
    await env.start();
    const s = await handshake(env);
    const exp = Date.parse(s.expiresAt);
    const t = String(Date.now() + s.offset);
    const r1 = await send(env, s, { t, seq: '1' });
    assert.equal(r1.status, 200);
    await sleep(Math.max(0, exp - Date.now()) + 300);
    const r2 = await send(env, s, { t, seq: '1' });
    assert.equal(r2.status, 401);
    const c = refusalCode(r2, s, r2.mac);
    assert.notEqual(c, 'session_expired');
    assert.equal(env.calls.n, 1);
    // a fresh, never-run request after expiry is attested session_expired (the positive control)
    const r3 = await send(env, s, { seq: '2' });
    assert.equal(r3.status, 401);
    assert.equal(refusalCode(r3, s, r3.mac), 'session_expired');
    // and that same proof presented again is replay_detected, not a second session_expired
    const r4 = await send(env, s, { t: r3.header.match(/t=(\d+)/)![1], seq: '2' });
    assert.notEqual(refusalCode(r4, s, r4.mac), 'session_expired');
    assert.equal(env.calls.n, 1);
  } finally { await env.close(); }
});

test('property 21 + 11: a request that ran, replayed after a restart of the in-memory replay memory and after expiry, is not attested session_expired', async () => {
  const env = await makeEnv({ auth: '  session_ttl: 4\n' });
  try {
    await env.start();
    const s = await handshake(env);
    const exp = Date.parse(s.expiresAt);
    const t = String(Date.now() + s.offset);
    const r1 = await send(env, s, { t, seq: '1' });
    assert.equal(r1.status, 200);
    await env.stop();
    await env.start(); // new process: replay memory begins empty under a new epoch
    await sleep(Math.max(0, exp - Date.now()) + 300);
    const r2 = await send(env, s, { t, seq: '1' });
    assert.equal(r2.status, 401);
    assert.notEqual(refusalCode(r2, s, r2.mac), 'session_expired', 'a request that ran must never be attested as unrun');
    assert.equal(r2.headers.get('mcp-pki-epoch'), null, 'no stale answer for an expired session');
    assert.equal(env.calls.n, 1);
  } finally { await env.close(); }
});
