/**
 * A request proof belongs to exactly one session token, one audience (authority) and one
 * Mcp-Session-Id (issue 9, finding 2; docs/PROTOCOL.md §6). On mcp-pki/1 the MAC covered method,
 * target, body and time only, and the replay key was per session id: a second token over the same
 * session key, a twin service sharing the ticket key, or another MCP session took the proof.
 * It also covers exactly one method, target and body, and the handler is handed exactly those.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { b64u } from '../../src/internal/bytes.js'
import { decodeSessionTicket, createRequestProof, encodeSessionTicket } from '../../src/session/session-token.js'
import { createSessionVerifier } from '../../src/session/session-verifier.js'
import { ticketKeyFrom } from '../../src/session/ticket.js'
import { TestNonceStore } from '../helpers/fixtures.js'
import { AUDIENCE, expectCode, makeHarness } from '../helpers/handshake-harness.js'
import { MCP_BODY, send } from './helpers/loopback-http.js'
import { expectRefused, sessionSetup } from './helpers/mcp-session.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/call"}'

test('a proof is valid for exactly one session token: a second token over the same session key does not take it', async () => {
  const h = makeHarness()
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  // A second token sealing the same session key (what a replayed message 3 produced on mcp-pki/1).
  const opened = decodeSessionTicket(h.server.ticketKeys, run.session.token)!
  const twin = b64u(encodeSessionTicket(h.server.ticketKeys[0]!, { ...opened, sessionId: Buffer.alloc(16, 1) }, (n) => Buffer.alloc(n, 2), h.serverClock.ms))
  const req = { proof, method: 'POST', target: '/mcp', body: BODY }
  await expectCode(() => h.verifier.verify({ ...req, authorization: `Bearer ${twin}` }), 'proof_invalid', 'the proof under the twin token')
  // Under its own token it is accepted once.
  assert.equal((await h.verifier.verify({ ...req, authorization: `Bearer ${run.session.token}` })).sessionId, run.result.sessionId)
})

test('a proof is valid for one audience: a twin service with the same ticket key and allowlist but another audience refuses the session', async () => {
  const ticketKeys = [ticketKeyFrom(Buffer.alloc(32, 5))]
  const h = makeHarness({ server: { ticketKeys, audience: AUDIENCE } })
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  const twinServer = createServerHandshake({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: new TestNonceStore(), ticketKeys, audience: 'https://twin.example/mcp', clock: h.serverClock.now })
  const twin = createSessionVerifier({ ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: new TestNonceStore(), clock: h.serverClock.now, acceptsAudience: twinServer.acceptsAudience })
  const req = { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
  const err = await expectCode(() => twin.verify(req), 'session_invalid', 'held-back request at the twin')
  assert.match(err.message, /another audience/)
  // The service it was made for accepts it.
  const own = createSessionVerifier({ ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now, acceptsAudience: h.server.acceptsAudience })
  assert.equal((await own.verify(req)).audience, AUDIENCE)
})

test('the default audience (no auth.audience) is checked against the socket on every request: another port or address refuses the session', async () => {
  const audience = 'http://127.0.0.1:8443'
  const h = makeHarness()
  const run = await h.run(h.newClient({ audience }))
  const verifier = createSessionVerifier({ ticketKeys: h.server.ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now, acceptsAudience: h.server.acceptsAudience })
  const req = () => ({
    authorization: `Bearer ${run.session.token}`,
    proof: createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now }),
    method: 'POST',
    target: '/mcp',
    body: BODY,
  })
  await expectCode(() => verifier.verify({ ...req(), context: { localPort: 9443, localAddress: '127.0.0.1' } }), 'session_invalid', 'another port')
  await expectCode(() => verifier.verify({ ...req(), context: { localPort: 8443, localAddress: '127.0.0.2' } }), 'session_invalid', 'another address')
  await expectCode(() => verifier.verify({ ...req(), context: { localPort: 0 } }), 'session_invalid', 'no usable socket (fails closed)')
  assert.equal((await verifier.verify({ ...req(), context: { localPort: 8443, localAddress: '127.0.0.1' } })).clientFingerprint, h.p.client.fingerprint)
})

test('a proof is valid for one Mcp-Session-Id: it cannot be moved to another MCP session, or to none', async () => {
  const h = makeHarness()
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, mcpSessionId: 'session-a', clock: h.clientClock.now })
  const req = { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
  await expectCode(() => h.verifier.verify({ ...req, mcpSessionId: 'session-b' }), 'proof_invalid', 'moved to another MCP session')
  await expectCode(() => h.verifier.verify(req), 'proof_invalid', 'moved out of its MCP session')
  await expectCode(() => h.verifier.verify({ ...req, mcpSessionId: 'SESSION-A' }), 'proof_invalid', 'another spelling')
  assert.equal((await h.verifier.verify({ ...req, mcpSessionId: 'session-a' })).sessionId, run.result.sessionId)
})

// From the red-team round 2 (held).
test('a proof replayed with another method, target or body is proof_invalid and reaches nothing', async () => {
  const s = await sessionSetup()
  const proof = s.proof()
  const variants: Array<{ label: string; method?: string; path?: string; body?: string }> = [
    { label: 'GET', method: 'GET', body: '' },
    { label: 'DELETE', method: 'DELETE', body: '' },
    { label: 'HEAD', method: 'HEAD', body: '' },
    { label: 'PUT same body', method: 'PUT' },
    { label: 'query added', path: '/mcp?x=1' },
    { label: 'empty query', path: '/mcp?' },
    { label: 'body + space', body: MCP_BODY + ' ' },
    { label: 'body, duplicated key', body: MCP_BODY.replace('"method"', '"method":"tools/call","method"') },
    { label: 'empty body', body: '' },
  ]
  for (const v of variants) {
    const r = await send(s.to, { method: v.method ?? 'POST', path: v.path ?? '/mcp', body: v.body ?? MCP_BODY, headers: s.headers(proof) })
    if (v.method === 'HEAD') {
      assert.equal(r.status, 401, v.label)
      continue
    }
    await expectRefused(s, r, 401, 'proof_invalid', v.label)
  }
  assert.deepEqual(s.seen, [])
  // The untouched request still goes through once (the failures consumed no nonce) and only once.
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(proof) })).status, 200)
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(proof) }), 401, 'replay_detected', 'replay')
  assert.equal(s.seen.length, 1)
})

// From the red-team round 2 (held).
test('protectFetch hands the handler exactly the verified bytes, method and target (chunked bodies included)', async () => {
  const s = await sessionSetup()
  const bodies = [MCP_BODY, '{"a":"\u00e9\u20ac\ud83d\ude00"}', '{"x":1}\n', '{"id":1,"id":2}']
  for (const body of bodies) {
    for (const chunked of [false, true]) {
      const r = await send(s.to, { body, chunked, headers: s.headers(s.proof({ body })) })
      assert.equal(r.status, 200, r.text)
      assert.equal(s.seen.at(-1)?.body, body)
      assert.equal(s.seen.at(-1)?.method, 'POST')
    }
  }
  // A GET with a body: the body was covered by the proof; the handler sees none (never other bytes).
  const r = await send(s.to, { method: 'GET', path: '/mcp?q=1', body: MCP_BODY, headers: s.headers(s.proof({ method: 'GET', target: '/mcp?q=1' })) })
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(s.seen.at(-1), { method: 'GET', url: '/mcp?q=1', body: '', sid: null })
})
