// Property 19 (§6, §12): one spelling per proof; the limits of §12 at their boundaries; no 5xx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeEnv, handshake, send, b64u, unb64u } from './env.js';

/** Flip the unused low bits of the last base64url character: same bytes, non-canonical text. */
function nonCanonical(s: string): string {
  const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const i = A.indexOf(s.slice(-1));
  const alt = s.slice(0, -1) + A[i | 1];
  assert.deepEqual(unb64u(alt), unb64u(s));
  assert.notEqual(alt, s);
  return alt;
}

test('property 19: proof fields accepted only in their canonical spelling and within §12 limits', async () => {
  const env = await makeEnv();
  try {
    await env.start();
    const s = await handshake(env);
    const now = () => String(Date.now() + s.offset);
    const hdr = (t: string, seq: string, e: string, m: string) => `t=${t}, s=${seq}, e=${e}, m=${m}`;
    const expectInvalid = async (label: string, o: Parameters<typeof send>[2]) => {
      const r = await send(env, s, o);
      assert.equal(r.status, 401, label + ': ' + r.text);
      assert.equal(r.code, 'proof_invalid', label + ': ' + r.text);
    };
    // baseline
    assert.equal((await send(env, s, { seq: '1' })).status, 200);
    // s = 0, s = 2^53, leading zero / plus sign with a MAC over the same text
    await expectInvalid('s=0', { seq: '0' });
    await expectInvalid('s=2^53', { seq: '9007199254740992' });
    await expectInvalid('s=02', { seq: '02' });
    await expectInvalid('s=+2', { seq: '+2' });
    await expectInvalid('s 17 digits', { seq: '10000000000000000' });
    // t spellings
    const t0 = now();
    await expectInvalid('t leading zero', { t: '0' + t0, seq: '3' });
    await expectInvalid('t=2^53', { t: '9007199254740992', seq: '3' });
    await expectInvalid('t=-1', { t: '-1', seq: '3' });
    // a proof whose MAC is right over canonical text but whose header spells e or m non-canonically
    {
      const r0 = await send(env, s, { seq: '4', header: 'x' }); // learn nothing; consumes no seq
      assert.equal(r0.status, 401);
    }
    for (const field of ['e', 'm'] as const) {
      const t = now();
      const seq = field === 'e' ? '5' : '6';
      const { proofMac } = await import('./env.js');
      const mac = proofMac(s, { method: 'POST', target: '/mcp', body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }), t, seq });
      const e = b64u(s.epoch), m = b64u(mac);
      const header = field === 'e' ? hdr(t, seq, nonCanonical(e), m) : hdr(t, seq, e, nonCanonical(m));
      await expectInvalid('non-canonical ' + field, { t, seq, header });
    }
    // case, separators, duplicates
    {
      const t = now();
      const r = await send(env, s, { t, seq: '7' });
      assert.equal(r.status, 200);
      await expectInvalid('uppercase T', { t, seq: '8', header: r.header.replace('t=', 'T=') });
      await expectInvalid('two spaces', { t, seq: '8', header: r.header.replace(', s=', ',  s=') });
      await expectInvalid('semicolon', { t, seq: '8', header: r.header.replace(', s=', '; s=') });
      await expectInvalid('field order', { t, seq: '8', header: r.header.split(', ').reverse().join(', ') });
    }
    // s = 2^53 - 1 is the top of the range and accepted once; below-window numbers are then replays
    {
      const r = await send(env, s, { seq: '9007199254740991' });
      assert.equal(r.status, 200, r.text);
      const again = await send(env, s, { t: r.header.match(/t=(\d+)/)![1], seq: '9007199254740991' });
      assert.equal(again.code, 'replay_detected');
      const low = await send(env, s, { seq: '8' });
      assert.equal(low.code, 'replay_detected');
    }
    // Authorization: 1024 characters reach the token check, 1025 are session_invalid; never 5xx
    for (const n of [15, 16, 1024, 1025, 5000]) {
      const r = await send(env, s, { token: 'A'.repeat(n), seq: '10' });
      assert.equal(r.status, 401, `bearer ${n}: ${r.text}`);
      assert.equal(r.code, 'session_invalid', `bearer ${n}`);
    }
    // header of 161+ characters (padding inside the value) and garbage never give 5xx
    for (const header of ['t=1, s=1, e=' + 'A'.repeat(200), '\u00ff'.repeat(50), 't='.repeat(80), ',,,,']) {
      const r = await send(env, s, { header: header, seq: '11' }).catch((e) => ({ status: 0, text: String(e), code: undefined }));
      if (r.status !== 0) { assert.equal(r.status, 401, r.text); assert.equal(r.code, 'proof_invalid'); }
    }
    assert.equal(env.calls.n, 3);
  } finally { await env.close(); }
});
