/* eslint-disable @typescript-eslint/no-explicit-any -- attack harness: peer messages are untyped JSON */
// Properties 11, 17 and 21 (§6, §8, §9): across a server restart (new in-memory replay epoch) a
// createAuthFetch call runs exactly once (verified proof_stale, one re-send of a request that never
// ran); across a ticket-key change the call is handed back (unauthenticated session_invalid), never
// re-sent, and the next call works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { makeEnv } from './env.js';
import { createAuthFetchFromConfig } from '../../../src/mcp/client.js';

test('property 11/17/21: restarts and ticket-key changes never run a call twice', async () => {
  const env = await makeEnv({ auth: `  ticket_key: "${crypto.randomBytes(32).toString('base64url')}"\n` });
  try {
    await env.start();
    const cy = path.join(env.dir, 'client.yml');
    const sent: string[] = [];
    const mcpFetch = ((u: any, init: any) => { sent.push(String(init?.headers && new Headers(init.headers).get('mcp-pki-proof'))); return fetch(u, init); }) as typeof fetch;
    const af = await createAuthFetchFromConfig(cy, `${env.url}/mcp`, { interactive: false, mcpFetch } as any);
    let id = 0;
    const call = () => af(`${env.url}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: ++id, method: 'tools/call', params: { name: 'pay', arguments: { id } } }) });
    assert.equal((await call()).status, 200);
    assert.equal(env.calls.n, 1);
    // restart: same ticket key, new replay epoch → verified proof_stale → exactly one re-send
    await env.stop(); await env.start();
    sent.length = 0;
    assert.equal((await call()).status, 200);
    assert.equal(env.calls.n, 2, 'ran once');
    // new ticket key: the session cannot open → bare session_invalid → handed back, not re-sent
    const sy = path.join(env.dir, 'server.yml');
    fs.writeFileSync(sy, fs.readFileSync(sy, 'utf8').replace(/ticket_key: "[^"]+"/, `ticket_key: "${crypto.randomBytes(32).toString('base64url')}"`));
    await env.stop(); await env.start();
    sent.length = 0;
    const r = await call();
    assert.equal(r.status, 401);
    assert.equal(env.calls.n, 2, 'the refused call did not run');
    const proofsAfter = sent.filter((p) => p !== 'null').length;
    assert.equal(proofsAfter, 1, 'not re-sent');
    assert.equal((await call()).status, 200, 'next call handshakes afresh');
    assert.equal(env.calls.n, 3);
  } finally { await env.close(); }
});
