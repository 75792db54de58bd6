/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Properties 8 and 19 (§8, §12): handshake limits at their boundaries (body size, audience bytes,
// token and timestamp lengths) and mutated messages 3 never give a 5xx, never a session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { makeEnv, b64u, ts } from './env.js';

test('property 19/8: handshake limits at the boundaries; mutated messages never 5xx', async () => {
  const env = await makeEnv({ gateway: false, auth: '  rate_limit:\n    per_address: 100000\n' });
  try {
    await env.start();
    const url = env.url + '/auth';
    const post = async (b: string) => { const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b }); const t = await r.text(); let c; try { c = JSON.parse(t)?.error?.code; } catch { /* */ } return { status: r.status, code: c as string | undefined, text: t }; };
    const eph = crypto.generateKeyPairSync('x25519');
    const m1 = (audience: string) => ({ type: 'auth_request', version: 'mcp-pki/2', client_public_key: b64u(env.clientPub), client_nonce: b64u(crypto.randomBytes(32)),
      client_ephemeral: eph.publicKey.export({ format: 'jwk' }).x, timestamp: ts(), audience });
    // audience: 512 bytes of UTF-8 pass, 513 are refused, also when the 513th byte is half a character
    const base = url + '/';
    const a512 = base + 'a'.repeat(512 - Buffer.byteLength(base));
    assert.equal(Buffer.byteLength(a512), 512);
    const ok512 = await post(JSON.stringify(m1(a512)));
    assert.equal(ok512.status, 200, 'audience 512 bytes: ' + ok512.text);
    const r513 = await post(JSON.stringify(m1(a512 + 'a')));
    assert.equal(r513.status, 400); assert.equal(r513.code, 'invalid_message');
    const r513u = await post(JSON.stringify(m1(a512.slice(0, -1) + 'é')));
    assert.equal(r513u.status, 400); assert.equal(r513u.code, 'invalid_message');
    // body: exactly 65,536 bytes is parsed, 65,537 is 413 payload_too_large
    const j = JSON.stringify(m1(url));
    const pad = (n: number) => j.slice(0, -1) + ' '.repeat(n - Buffer.byteLength(j)) + '}';
    const b64k = await post(pad(65536));
    assert.notEqual(b64k.status, 413, '65,536 bytes must pass the size cap');
    assert.equal(b64k.status, 200, b64k.text);
    const b64k1 = await post(pad(65537));
    assert.equal(b64k1.status, 413); assert.equal(b64k1.code, 'payload_too_large');
    // a real M2, then mutated M3s
    const M1 = m1(url);
    const M2 = JSON.parse((await post(JSON.stringify(M1))).text);
    const M3 = { type: 'auth_response', version: 'mcp-pki/2', request: M1, challenge: M2, timestamp: ts(), signature: b64u(crypto.randomBytes(64)) };
    const values: unknown[] = [null, 0, -1, 1e308, true, [], {}, [1], '', 'A', 'A'.repeat(1025), 'A'.repeat(10924), '\u0000', '\ud800', { __proto__: null }, JSON.parse('{"__proto__": 1}')];
    const paths: string[][] = [['type'], ['version'], ['timestamp'], ['signature'], ['certificate'], ['request'], ['challenge'], ['request', 'audience'], ['request', 'timestamp'], ['request', 'client_public_key'],
      ['challenge', 'challenge_token'], ['challenge', 'certificate'], ['challenge', 'expires_at'], ['challenge', 'server_public_key'], ['__proto__'], ['constructor'], ['challenge', '__proto__']];
    let n = 0;
    for (const p of paths) for (const v of values) {
      const m: any = structuredClone(M3);
      let o = m; for (const k of p.slice(0, -1)) o = o[k];
      Object.defineProperty(o, p[p.length - 1]!, { value: v, enumerable: true, writable: true, configurable: true });
      const r = await post(JSON.stringify(m));
      n++;
      assert.ok(r.status >= 400 && r.status < 500, `${p.join('.')}=${JSON.stringify(v)?.slice(0, 30)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    // tokens and timestamps one over / one under
    for (const [k, v] of [['challenge_token', M2.challenge_token + 'A'], ['challenge_token', M2.challenge_token.slice(0, -1)], ['timestamp', M2.timestamp + '0'], ['timestamp', M2.timestamp.slice(0, -2) + 'Z'], ['expires_at', M2.expires_at.replace('Z', '+00:00')]] as const) {
      const m: any = structuredClone(M3); m.challenge[k] = v;
      const r = await post(JSON.stringify(m));
      assert.ok(r.status === 400 || r.status === 401, `${k}: ${r.status} ${r.text}`);
      assert.ok(['invalid_message', 'authentication_failed'].includes(r.code!), `${k}: ${r.text}`);
    }
    // deeply nested and huge-number JSON never 5xx
    for (const b of ['['.repeat(20000) + ']'.repeat(20000), '{"type":"auth_request","a":' + '1'.repeat(60000) + '}', '"\\ud800"', 'null', '{"type":"auth_response"}', '\ufeff' + j]) {
      const r = await post(b);
      assert.ok(r.status >= 400 && r.status < 500, `${b.slice(0, 20)}: ${r.status} ${r.text}`);
    }
    assert.ok(n > 100);
  } finally { await env.close(); }
});
