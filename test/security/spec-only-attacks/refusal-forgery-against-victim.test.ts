/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-misused-promises -- attack harness: peer messages are untyped JSON */
// Properties 17 and 21 (§6, §8): a man in the middle on plain HTTP between a createAuthFetch client
// and the gateway lets a tool call run, then answers the client a 401 of its own making: no header,
// a forged MCP-PKI-Refusal, a genuine refusal of another code or another request, duplicated
// headers, a forged MCP-PKI-Epoch. The client must never send the call again (the upstream runs it
// exactly once). Positive control: a request the MITM holds past the session's expiry never ran,
// the server attests session_expired, and the client re-sends it once through a new session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import path from 'node:path';
import fs from 'node:fs';
import type net from 'node:net';
import { makeEnv, b64u } from './env.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

type Captured = { method: string; url: string; headers: Record<string, string>; body: Buffer };
type Answer = { status: number; headers: Record<string, string | string[]>; body: string };

async function forward(port: number, c: Captured): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${c.url}`, { method: c.method, headers: c.headers, body: c.body });
  const h: Record<string, string> = {}; r.headers.forEach((v, k) => (h[k] = v));
  return { status: r.status, headers: h, body: await r.text() };
}

test('property 21/17: no MITM-made 401 makes a createAuthFetch client run a tool call twice', async () => {
  const env = await makeEnv({ auth: '  session_ttl: 6\n  audience: "mcp-atk"\n' });
  let mode: (c: Captured, n: number) => Promise<Answer | null> = async () => null;
  let seen = 0;
  const mitm = http.createServer((req, res) => {
    const chunks: Buffer[] = []; req.on('data', (d) => chunks.push(d)); req.on('end', async () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (k !== 'host' && k !== 'connection' && k !== 'content-length' && typeof v === 'string') headers[k] = v;
      const c = { method: req.method!, url: req.url!, headers, body: Buffer.concat(chunks) };
      if (!c.url.startsWith('/mcp')) { const f = await forward(env.port, c); res.writeHead(f.status, { 'content-type': 'application/json' }); res.end(f.body); return; }
      seen++;
      let a = await mode(c, seen);
      if (!a) { const f = await forward(env.port, c); a = { status: f.status, headers: { 'content-type': String(f.headers['content-type'] ?? 'application/json'), ...(f.headers['mcp-pki-refusal'] ? { 'mcp-pki-refusal': String(f.headers['mcp-pki-refusal']) } : {}), ...(f.headers['mcp-pki-epoch'] ? { 'mcp-pki-epoch': String(f.headers['mcp-pki-epoch']) } : {}) }, body: f.body }; }
      res.writeHead(a.status, a.headers); res.end(a.body);
    });
  });
  const mport = await new Promise<number>((r) => mitm.listen(0, '127.0.0.1', () => r((mitm.address() as net.AddressInfo).port)));
  try {
    await env.start();
    // the MITM sits on the whole path (as on a network): the handshake goes through it unchanged
    const cy = path.join(env.dir, 'client.yml');
    fs.writeFileSync(cy, fs.readFileSync(cy, 'utf8').replace(/url: "[^"]*"/, `url: "http://127.0.0.1:${mport}/auth"\n    audience: "mcp-atk"`));
    const authFetch = await createAuthFetchFromConfig(cy, `http://127.0.0.1:${mport}/mcp`, { interactive: false } as any);
    let id = 0;
    const call = () => authFetch(`http://127.0.0.1:${mport}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'pay', arguments: { id } } }) });
    const unauth = (code: string, extra: Record<string, string | string[]> = {}): Answer => ({ status: 401, headers: { 'content-type': 'application/json', 'www-authenticate': `Bearer error="${code}"`, ...extra }, body: JSON.stringify({ error: code }) });
    // genuine refusal for a request: replay its exact bytes to the gateway (it ran): replay_detected under the session key
    const genuineReplay = async (c: Captured) => { const f = await forward(env.port, c); assert.equal(f.status, 401); return String(f.headers['mcp-pki-refusal']); };
    let otherGenuine = '';
    const attacks: Array<[string, (c: Captured) => Promise<Answer>]> = [
      ['bare session_expired', async (c) => { await forward(env.port, c); return unauth('session_expired'); }],
      ['bare session_invalid', async (c) => { await forward(env.port, c); return unauth('session_invalid'); }],
      ['random refusal MAC', async (c) => { await forward(env.port, c); return unauth('session_expired', { 'mcp-pki-refusal': `c=session_expired, m=${b64u(crypto.randomBytes(32))}` }); }],
      ['genuine replay_detected relabelled session_expired', async (c) => { await forward(env.port, c); const g = await genuineReplay(c); otherGenuine = g; return unauth('session_expired', { 'mcp-pki-refusal': g.replace(/c=[a-z_]+/, 'c=session_expired') }); }],
      ['genuine refusal of another request', async (c) => { await forward(env.port, c); return unauth('session_expired', { 'mcp-pki-refusal': otherGenuine.replace(/c=[a-z_]+/, 'c=session_expired') }); }],
      ['genuine replay_detected as is', async (c) => { await forward(env.port, c); const g = await genuineReplay(c); return unauth('replay_detected', { 'mcp-pki-refusal': g }); }],
      ['duplicated headers: genuine + forged', async (c) => { await forward(env.port, c); const g = await genuineReplay(c); return unauth('session_expired', { 'mcp-pki-refusal': [g, g.replace(/c=[a-z_]+/, 'c=session_expired')] }); }],
      ['forged proof_stale epoch', async (c) => { await forward(env.port, c); return unauth('proof_stale', { 'mcp-pki-epoch': `e=${b64u(crypto.randomBytes(8))}, m=${b64u(crypto.randomBytes(32))}` }); }],
      ['stale epoch built from refusal MAC', async (c) => { await forward(env.port, c); const g = await genuineReplay(c); return unauth('proof_stale', { 'mcp-pki-epoch': `e=${b64u(crypto.randomBytes(8))}, ${g.split(/, ?/)[1]}` }); }],
      ['both Epoch and Refusal forged', async (c) => { await forward(env.port, c); return unauth('session_expired', { 'mcp-pki-epoch': `e=AAAAAAAAAAA, m=${b64u(crypto.randomBytes(32))}`, 'mcp-pki-refusal': `c=session_expired, m=${b64u(crypto.randomBytes(32))}` }); }],
    ];
    for (const [name, attack] of attacks) {
      const before = env.calls.n; seen = 0;
      let fired = false;
      mode = async (c) => { if (fired) return null; fired = true; return attack(c); };
      const r = await call();
      assert.equal(r.status, 401, name);
      assert.equal(seen, 1, `${name}: the client sent the call again`);
      assert.equal(env.calls.n - before, 1, `${name}: the tool ran ${env.calls.n - before} times`);
      mode = async () => null;
      const ok = await call(); // the next call works (the session was dropped or kept)
      assert.equal(ok.status, 200, name + ' next call');
    }
    // positive control: held past expiry, never ran → verified session_expired → one re-send
    {
      const before = env.calls.n; seen = 0;
      mode = async (_c, n) => { if (n === 1) await new Promise((r) => setTimeout(r, 6500)); return null; };
      const r = await call();
      assert.equal(r.status, 200);
      assert.equal(seen, 2, 'the client re-sent once on the authenticated session_expired');
      assert.equal(env.calls.n - before, 1);
    }
  } finally { mitm.close(); mitm.closeAllConnections(); await env.close(); }
});
