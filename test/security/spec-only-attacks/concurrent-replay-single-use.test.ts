/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Properties 4 and 11 (§9): a proof presented many times at once runs exactly once, with the
// in-memory replay memory and with Redis; the same message 3 presented many times at once gives
// exactly one session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeEnv, handshake, send, b64u, ts, type Env } from './env.js';

/**
 * Room for 20 simultaneous connections from one address on top of the client's kept-alive ones:
 * the default per-address cap (25 of transport.max_connections 100) would otherwise reset some of
 * them, which is the cap doing its work, not the property under test.
 */
function roomForTheRace(env: Env): void {
  const file = path.join(env.dir, 'server.yml');
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('transport:\n', 'transport:\n  max_connections: 400\n'));
}

async function race(env: Env) {
  const s = await handshake(env);
  const t = String(Date.now() + s.offset);
  const rs = await Promise.all(Array.from({ length: 20 }, () => send(env, s, { t, seq: '1' })));
  assert.equal(rs.filter((r) => r.status === 200).length, 1, 'one proof ran ' + rs.filter((r) => r.status === 200).length + ' times');
  for (const r of rs) if (r.status !== 200) assert.equal(r.code, 'replay_detected');
  assert.equal(env.calls.n, 1);
  // concurrent distinct sequence numbers all run once
  const before = env.calls.n;
  const rs2 = await Promise.all(Array.from({ length: 15 }, (_, i) => send(env, s, { seq: String(2 + i) })));
  assert.ok(rs2.every((r) => r.status === 200));
  assert.equal(env.calls.n - before, 15);
}

test('property 4: a proof raced 20 times runs once (in-memory replay memory)', async () => {
  const env = await makeEnv();
  try { roomForTheRace(env); await env.start(); await race(env); } finally { await env.close(); }
});

test('property 4/11: a proof raced 20 times runs once (Redis replay memory)', async () => {
  const prefix = `atk-${crypto.randomBytes(6).toString('hex')}:`;
  const env = await makeEnv({ auth: `  nonce_store: { type: redis, url: "redis://127.0.0.1:6379", key_prefix: "${prefix}" }\n` });
  try { roomForTheRace(env); await env.start(); await race(env); } finally {
    await env.close();
    try { execSync(`redis-cli -h 127.0.0.1 -p 6379 --scan --pattern '${prefix}*' | xargs -r redis-cli -h 127.0.0.1 -p 6379 del`, { stdio: 'ignore' }); } catch { /* best effort */ }
  }
});

test('property 4: one message 3 raced 20 times gives one session', async () => {
  const env = await makeEnv({ gateway: false });
  try {
    await env.start();
    const url = env.url + '/auth';
    // run a handshake but capture M3 instead of sending it once
    const realFetch = globalThis.fetch;
    let m3: string | undefined;
    globalThis.fetch = (async (u: any, init: any) => {
      if (init?.body && JSON.parse(init.body).type === 'auth_response') { m3 = init.body; throw new Error('captured'); }
      return realFetch(u, init);
    }) as typeof fetch;
    try { await handshake(env); } catch { /* captured */ } finally { globalThis.fetch = realFetch; }
    assert.ok(m3);
    const rs = await Promise.all(Array.from({ length: 20 }, () => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: m3 }).then(async (r) => ({ status: r.status, body: await r.json() as any }))));
    assert.equal(rs.filter((r) => r.status === 200).length, 1);
    for (const r of rs) if (r.status !== 200) assert.ok(['replay_detected', 'rate_limited'].includes(r.body.error.code), JSON.stringify(r.body));
    void b64u; void ts;
  } finally { await env.close(); }
});
