/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-misused-promises -- attack harness: peer messages are untyped JSON */
// Property 21 (§8): "a request is sent again only on the server's word". A man in the middle lets a
// tool call run, then answers the createAuthFetch client with something that is not an authenticated
// refusal: a 503 server_busy with Retry-After, a 429, a 502/504, a reset connection, a timeout. The
// client must not send the call again (the config has retry_attempts 3: those are for handshakes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import type net from 'node:net';
import { makeEnv } from './env.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

test('property 21: a call that ran is never re-sent on a transport failure or an unauthenticated 5xx/429', async () => {
  const env = await makeEnv({ auth: '  audience: "mcp-atk"\n' });
  let mode = 'pass';
  let seen = 0;
  const mitm = http.createServer((req, res) => {
    const chunks: Buffer[] = []; req.on('data', (d) => chunks.push(d)); req.on('end', async () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (!['host', 'connection', 'content-length'].includes(k) && typeof v === 'string') headers[k] = v;
      const f = await fetch(`http://127.0.0.1:${env.port}${req.url}`, { method: req.method, headers, body: Buffer.concat(chunks) });
      const body = await f.text();
      if (!req.url!.startsWith('/mcp') || mode === 'pass') { res.writeHead(f.status, { 'content-type': f.headers.get('content-type') ?? 'application/json' }); res.end(body); return; }
      seen++;
      if (seen > 1) { res.writeHead(f.status, { 'content-type': 'application/json' }); res.end(body); return; }
      switch (mode) {
        case 'busy': res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }); res.end(JSON.stringify({ error: 'server_busy', retry_after: 1 })); break;
        case 'rate': res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' }); res.end(JSON.stringify({ error: 'rate_limited', retry_after: 1 })); break;
        case '502': res.writeHead(502); res.end(); break;
        case '504': res.writeHead(504); res.end(); break;
        case 'reset': req.socket.destroy(); break;
        case 'half': res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }); res.write('{"jsonrpc"'); setTimeout(() => req.socket.destroy(), 50); break;
      }
    });
  });
  const mport = await new Promise<number>((r) => mitm.listen(0, '127.0.0.1', () => r((mitm.address() as net.AddressInfo).port)));
  try {
    await env.start();
    const cy = path.join(env.dir, 'client.yml');
    fs.writeFileSync(cy, fs.readFileSync(cy, 'utf8').replace(/url: "[^"]*"/, `url: "http://127.0.0.1:${mport}/auth"\n    audience: "mcp-atk"`));
    const af = await createAuthFetchFromConfig(cy, `http://127.0.0.1:${mport}/mcp`, { interactive: false } as any);
    let id = 0;
    const call = () => af(`http://127.0.0.1:${mport}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'pay', arguments: { id } } }) });
    assert.equal((await call()).status, 200);
    for (const m of ['busy', 'rate', '502', '504', 'reset', 'half']) {
      mode = m; seen = 0;
      const before = env.calls.n;
      try { const r = await call(); await r.text().catch(() => undefined); } catch { /* transport error handed back */ }
      await new Promise((r) => setTimeout(r, 2500)); // room for any delayed retry
      assert.equal(seen, 1, `${m}: the client sent the call again`);
      assert.equal(env.calls.n - before, 1, `${m}: the tool ran ${env.calls.n - before} times`);
      mode = 'pass';
      assert.equal((await call()).status, 200, m + ': next call');
    }
  } finally { mitm.close(); mitm.closeAllConnections(); await env.close(); }
});
