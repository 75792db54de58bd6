/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-misused-promises -- attack harness: peer messages are untyped JSON */
// Property 21 (§8): several calls of a createAuthFetch client in flight, held by a man in the middle
// past the session's expiry, each get an authenticated session_expired; each is re-sent once and
// each tool call runs exactly once. Replaying the held originals afterwards runs nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import type net from 'node:net';
import { makeEnv } from './env.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

test('property 21: concurrent calls held past expiry each run exactly once', async () => {
  const env = await makeEnv({ auth: '  audience: "mcp-atk"\n  session_ttl: 6\n' });
  let hold = false;
  const held: Array<{ url: string; headers: Record<string, string>; body: Buffer }> = [];
  const mitm = http.createServer((req, res) => {
    const chunks: Buffer[] = []; req.on('data', (d) => chunks.push(d)); req.on('end', async () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (!['host', 'connection', 'content-length'].includes(k) && typeof v === 'string') headers[k] = v;
      const body = Buffer.concat(chunks);
      if (hold && req.url!.startsWith('/mcp') && headers['mcp-pki-proof']) { held.push({ url: req.url!, headers, body }); await new Promise((r) => setTimeout(r, 7000)); }
      const f = await fetch(`http://127.0.0.1:${env.port}${req.url}`, { method: req.method, headers, body });
      const h: Record<string, string> = { 'content-type': f.headers.get('content-type') ?? 'application/json' };
      for (const k of ['mcp-pki-refusal', 'mcp-pki-epoch']) { const v = f.headers.get(k); if (v) h[k] = v; }
      res.writeHead(f.status, h); res.end(await f.text());
    });
  });
  const mport = await new Promise<number>((r) => mitm.listen(0, '127.0.0.1', () => r((mitm.address() as net.AddressInfo).port)));
  try {
    await env.start();
    const cy = path.join(env.dir, 'client.yml');
    fs.writeFileSync(cy, fs.readFileSync(cy, 'utf8').replace(/url: "[^"]*"/, `url: "http://127.0.0.1:${mport}/auth"\n    audience: "mcp-atk"`));
    const af = await createAuthFetchFromConfig(cy, `http://127.0.0.1:${mport}/mcp`, { interactive: false } as any);
    let id = 0;
    const call = (i: number) => af(`http://127.0.0.1:${mport}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'pay', arguments: { i } } }) });
    assert.equal((await call(0)).status, 200);
    hold = true;
    const p = [1, 2, 3].map((i) => call(i));
    await new Promise((r) => setTimeout(r, 300));
    hold = false;
    const rs = await Promise.all(p);
    for (const r of rs) assert.equal(r.status, 200);
    const ran = (i: number) => env.calls.bodies.filter((b) => b.includes(`"i":${i}}`)).length;
    for (const i of [1, 2, 3]) assert.equal(ran(i), 1, `call ${i} ran ${ran(i)} times`);
    // the held originals replayed now: nothing runs
    for (const h of held) await fetch(`http://127.0.0.1:${env.port}${h.url}`, { method: 'POST', headers: h.headers, body: h.body });
    for (const i of [1, 2, 3]) assert.equal(ran(i), 1, `call ${i} replayed`);
  } finally { mitm.close(); mitm.closeAllConnections(); await env.close(); }
});
