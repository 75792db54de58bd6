// Properties 8, 12 and 19 (§6, §12): duplicated or oversized Authorization / MCP-PKI-Proof /
// Mcp-Session-Id headers on the MCP endpoint never run a request twice, never give a 5xx, and a
// proof made without an MCP session is not accepted with one added (or the reverse).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makeEnv, handshake, send, proofMac, b64u } from './env.js';

function rawRequest(port: number, head: string, body: string): Promise<string> {
  return new Promise((res) => {
    const c = net.connect(port, '127.0.0.1', () => c.write(head + `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n` + body));
    let out = ''; c.setTimeout(8000, () => c.destroy()); c.on('data', (d) => (out += d)); c.on('close', () => res(out)); c.on('error', () => res(out));
  });
}

test('property 12/19: duplicated and oversized request headers', async () => {
  const env = await makeEnv();
  try {
    await env.start();
    const s = await handshake(env);
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    const mk = (seq: string, sid = '') => { const t = String(Date.now() + s.offset); const m = proofMac(s, { method: 'POST', target: '/mcp', mcpSessionId: sid, body, t, seq }); return `t=${t}, s=${seq}, e=${b64u(s.epoch)}, m=${b64u(m)}`; };
    const base = (extra: string) => `POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:${env.port}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\n${extra}`;
    const status = (r: string) => { if (process.env.DBG) console.log(r.split('\r\n')[0], r.slice(r.indexOf('\r\n\r\n') + 4, r.indexOf('\r\n\r\n') + 150)); return Number(r.split(' ')[1]); };
    // two proof headers, both valid for their own sequence numbers
    let r = await rawRequest(env.port, base(`authorization: Bearer ${s.token}\r\nmcp-pki-proof: ${mk('1')}\r\nmcp-pki-proof: ${mk('2')}\r\n`), body);
    assert.ok(status(r) === 401 || status(r) === 400, r.slice(0, 200));
    // two Authorization headers: a garbage one first, then the real one (and the reverse)
    r = await rawRequest(env.port, base(`authorization: Bearer AAAAAAAAAAAAAAAAAAAA\r\nauthorization: Bearer ${s.token}\r\nmcp-pki-proof: ${mk('3')}\r\n`), body);
    assert.ok(status(r) < 500, r.slice(0, 200));
    r = await rawRequest(env.port, base(`authorization: Bearer ${s.token}\r\nauthorization: Bearer AAAAAAAAAAAAAAAAAAAA\r\nmcp-pki-proof: ${mk('4')}\r\n`), body);
    assert.ok(status(r) < 500, r.slice(0, 200));
    // proof made with no MCP session; an empty or real-looking Mcp-Session-Id added
    r = await rawRequest(env.port, base(`authorization: Bearer ${s.token}\r\nmcp-session-id: x\r\nmcp-pki-proof: ${mk('5')}\r\n`), body);
    assert.ok(status(r) >= 400 && status(r) < 500, r.slice(0, 200));
    // proof made for session id 'x', sent with none
    r = await rawRequest(env.port, base(`authorization: Bearer ${s.token}\r\nmcp-pki-proof: ${mk('6', 'x')}\r\n`), body);
    assert.equal(status(r), 401, r.slice(0, 200));
    // oversized headers
    for (const h of [`authorization: Bearer ${'A'.repeat(20000)}\r\n`, `authorization: Bearer ${s.token}\r\nmcp-pki-proof: ${'t=1, '.repeat(4000)}\r\n`, `authorization: Bearer ${s.token}\r\nmcp-session-id: ${'g1.'.repeat(5000)}\r\nmcp-pki-proof: ${mk('7')}\r\n`]) {
      r = await rawRequest(env.port, base(h), body);
      assert.ok(r === '' || (status(r) >= 400 && status(r) < 500), r.slice(0, 200));
    }
    // every upstream call corresponds to one distinct sequence number; the session still works
    const before = env.calls.n;
    assert.ok(before <= 3, 'ran ' + before);
    assert.equal((await send(env, s, { seq: '100' })).status, 200);
  } finally { await env.close(); }
});
