// Property 17 (§6 steps 7–8, §9): the authenticated proof_stale answer (on which a client re-sends)
// is given only to a proof inside the proof window. A request held back by a man in the middle and
// presented after a restart of the replay memory, once outside the window, gets proof_invalid with
// no MCP-PKI-Epoch; inside the window, a proof dated before the restart gets none either (§9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEnv, handshake, send, staleMac, b64u, unb64u } from './env.js';

test('property 17: no stale answer outside the proof window; inside it the answer verifies for that proof only', async () => {
  const W = 4;
  const env = await makeEnv({ auth: `  proof_window: ${W}\n` });
  try {
    await env.start();
    const s = await handshake(env);
    const t = String(Date.now() + s.offset);
    assert.equal((await send(env, s, { t, seq: '1' })).status, 200);
    const tIn = String(Date.now() + s.offset);
    await env.stop(); await env.start();
    // inside the window, a proof dated before the restart (its request may have run) gets
    // proof_stale with no answer to follow (§9, "Which stale proofs are answered")
    const before = await send(env, s, { t: tIn, seq: '2' });
    assert.equal(before.status, 401); assert.equal(before.code, 'proof_stale');
    assert.equal(before.headers.get('mcp-pki-epoch'), null, 'no stale answer for a proof dated before the memory began');
    // a proof dated after the restart, never presented, gets the genuine stale answer
    const inside = await send(env, s, { t: String(Date.now() + s.offset), seq: '4' });
    assert.equal(inside.status, 401); assert.equal(inside.code, 'proof_stale');
    const v = /^e=([A-Za-z0-9_-]{11}), ?m=([A-Za-z0-9_-]{43})$/.exec(inside.headers.get('mcp-pki-epoch')!.trim())!;
    assert.equal(v[2], b64u(staleMac(s, inside.mac, unb64u(v[1]!))));
    assert.notEqual(b64u(staleMac(s, Buffer.alloc(32), unb64u(v[1]!))), v[2]);
    // outside the window, the held-back request that ran gets no stale answer
    await new Promise((r) => setTimeout(r, W * 1000 + 800));
    const late = await send(env, s, { t, seq: '1' });
    assert.equal(late.status, 401);
    assert.equal(late.headers.get('mcp-pki-epoch'), null, 'stale answer outside the window');
    assert.equal(late.code, 'proof_invalid');
    // and the new epoch works for a fresh proof
    s.epoch = unb64u(v[1]!);
    assert.equal((await send(env, s, { seq: '3' })).status, 200);
    assert.equal(env.calls.n, 2);
  } finally { await env.close(); }
});
