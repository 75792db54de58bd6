// Properties 4 and 11 (§9): a proof is single use for as long as its timestamp is inside the window.
// A proof dated ahead of the server clock (inside the window) stays valid until t + proof_window;
// the session's sequence window must not be dropped before then, or the proof runs twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEnv, handshake, send } from './env.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('property 4: a future-dated proof cannot be replayed after its session window would have idled out', async () => {
  const W = 4;
  const env = await makeEnv({ auth: `  proof_window: ${W}\n` });
  try {
    await env.start();
    const s = await handshake(env);
    const t = String(Date.now() + s.offset + W * 1000 - 400);
    const r1 = await send(env, s, { t, seq: '1' });
    assert.equal(r1.status, 200, r1.text);
    const t0 = Date.now();
    for (const at of [W * 1000 + 200, W * 1000 + 1200, 2 * W * 1000 - 700]) {
      await sleep(Math.max(0, t0 + at - Date.now()));
      const r = await send(env, s, { t, seq: '1' });
      assert.notEqual(r.status, 200, `replayed at +${at} ms ran again`);
    }
    assert.equal(env.calls.n, 1);
  } finally { await env.close(); }
});

test('property 4: a later, older-dated proof does not shorten the life of a future-dated one', async () => {
  const W = 4;
  const env = await makeEnv({ auth: `  proof_window: ${W}\n` });
  try {
    await env.start();
    const s = await handshake(env);
    const tf = String(Date.now() + s.offset + W * 1000 - 400);
    assert.equal((await send(env, s, { t: tf, seq: '1' })).status, 200);
    const tp = String(Date.now() + s.offset - W * 1000 + 600);
    assert.equal((await send(env, s, { t: tp, seq: '2' })).status, 200);
    const t0 = Date.now();
    for (const at of [900, 2500, W * 1000 + 300, 2 * W * 1000 - 900]) {
      await sleep(Math.max(0, t0 + at - Date.now()));
      const r = await send(env, s, { t: tf, seq: '1' });
      assert.notEqual(r.status, 200, `future-dated proof replayed at +${at} ms ran again`);
    }
    // the highest sequence number as well, dated in the past, then a new higher one moves the window
    const tq = String(Date.now() + s.offset + W * 1000 - 300);
    assert.equal((await send(env, s, { t: tq, seq: '1500' })).status, 200);
    const again = await send(env, s, { t: tf, seq: '1' });
    assert.notEqual(again.status, 200, 'below-window replay ran');
    assert.equal(env.calls.n, 3);
  } finally { await env.close(); }
});
