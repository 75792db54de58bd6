/**
 * No allowlist oracle for strangers (issue 9, finding 6), well-formed protocol strings (finding 5,
 * the protocol half), clients whose clock is off (issue 10, item 3), a restarted server's epoch
 * taken by createAuthFetch without a new handshake, and sealing keys that roll per minute
 * (finding 8).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch } from '../../src/mcp/client.js'
import { createMcpAuth } from '../../src/mcp/server.js'
import { InMemoryNonceStore } from '../../src/nonce/memory-nonce-store.js'
import { InMemoryRevocationList } from '../../src/revocation/revocation-list.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { sealKeyFor, sealPeriod, sealTicket, openTicket, TICKET_KIND, ticketKeyFrom } from '../../src/session/ticket.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestClock, TestNonceStore } from '../helpers/fixtures.js'
import { expectCode, makeHarness, wire } from '../helpers/handshake-harness.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

/** The shape of an answer: status, field names, and each field's length (values are random). */
function shape(reply: { status: number; body: unknown }): string {
  const body = reply.body as Record<string, unknown>
  return `${reply.status} ` + Object.keys(body).sort().map((k) => `${k}:${typeof body[k] === 'string' ? (body[k] as string).length : typeof body[k]}`).join(',')
}

test('probing: a well-formed message 1 gets the same answer (status, fields, sizes) for a listed, unknown, expired or revoked key; message 3 decides', async () => {
  const p = makeParties()
  const clock = new TestClock()
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0 })
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(100, clock.now), clock: clock.now, revocation })
  const expired = generateKeyPair()
  p.serverAllowlist.add(expired.publicKeyRaw, { role: 'x' }, clock.ms - 1)
  const revoked = generateKeyPair()
  p.serverAllowlist.add(revoked.publicKeyRaw, { role: 'y' })
  await revocation.revoke(revoked.fingerprint)
  const h = makeHarness({ parties: p, serverClock: clock })
  const keys = { listed: p.client, unknown: generateKeyPair(), expired, revoked }
  const shapes = new Map<string, string>()
  for (const [label, keyPair] of Object.entries(keys)) {
    const c = h.newClient({ keyPair })
    const m2 = await service.handleMessage(JSON.stringify(c.start()))
    shapes.set(label, shape(m2))
    const m4 = await service.handleMessage(JSON.stringify(await c.handleChallenge(m2.body)))
    assert.equal(m4.status, label === 'listed' ? 200 : 401, label)
    if (label !== 'listed') assert.equal((m4.body as { error: { code: string } }).error.code, 'authentication_failed', label)
  }
  assert.equal(new Set(shapes.values()).size, 1, JSON.stringify(Object.fromEntries(shapes)))
  revocation.close()
})

test('strings: an echoed audience with another lone surrogate, or with C1 controls, is refused — never accepted as the signed one', async () => {
  const h = makeHarness()
  const c = h.newClient({ audience: 'https://a.example/\ud800' })
  await assert.rejects(async () => h.server.handleRequest(wire(c.start())), { code: 'invalid_message' })
  // The client signed a well-formed audience; the attacker swaps in lone surrogates in the echo.
  const good = h.newClient()
  const m3 = wire(await good.handleChallenge(wire(h.server.handleRequest(wire(good.start())))))
  for (const audience of ['\ud800', '\udc00', 'x\u009b31m', 'x\u0085', 'a'.repeat(400) + '\u00e9'.repeat(60)]) {
    await expectCode(() => h.server.handleResponse({ ...m3, request: { ...m3.request, audience } }), 'invalid_message', JSON.stringify(audience.slice(0, 8)))
  }
  assert.equal((await h.server.handleResponse(m3)).clientFingerprint, h.p.client.fingerprint)
})

test('clock skew: a client 120 s ahead or behind passes the handshake and makes requests (proofs stamped in the server clock); a replay is still refused', async () => {
  for (const offset of [120_000, -120_000]) {
    const serverClock = new TestClock()
    const clientClock = new TestClock(serverClock.ms + offset)
    const h = makeHarness({ serverClock, clientClock })
    const run = await h.run()
    assert.ok(Math.abs(run.session.clockOffsetMs + offset) < 1000, `offset measured ${run.session.clockOffsetMs}`)
    for (let i = 0; i < 3; i++) {
      clientClock.advance(5)
      serverClock.advance(5)
      const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: clientClock.now })
      const req = { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
      assert.equal((await h.verifier.verify(req)).clientFingerprint, h.p.client.fingerprint)
      await expectCode(() => h.verifier.verify(req), 'replay_detected', `replay at offset ${offset}`)
    }
  }
})

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

test('over HTTP with createAuthFetch: a client 120 s off calls the MCP endpoint; after the server restarts its replay memory the same session goes on (MCP-PKI-Epoch), with no new handshake', async (t) => {
  const p = makeParties()
  let store = new InMemoryNonceStore({ maxEntries: 1000 })
  let mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: store }))
  let reached = 0
  const server = createServer((req, res) => {
    if (req.url === '/auth') return void mcpAuth.authHandler(req, res)
    mcpAuth.protect((_r, s) => {
      reached++
      s.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
    })(req, res)
  })
  const origin = await listen(server)
  t.after(() => {
    server.closeAllConnections()
    server.close()
    store.close()
  })
  const authFetch = createAuthFetch({ url: `${origin}/mcp`, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: () => Date.now() + 120_000 })
  for (let i = 0; i < 3; i++) assert.equal((await authFetch(`${origin}/mcp`, { method: 'POST', body: BODY })).status, 200)
  assert.equal(authFetch.handshakes, 1)
  // "Restart": same server key, a new replay memory (new epoch).
  store.close()
  store = new InMemoryNonceStore({ maxEntries: 1000 })
  mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: store }))
  // A restart takes longer than the client's clock estimate is off (a handshake round trip): a
  // proof dated before the new memory began is answered without a re-sendable stale answer.
  await new Promise((r) => setTimeout(r, 1000))
  assert.equal((await authFetch(`${origin}/mcp`, { method: 'POST', body: BODY })).status, 200)
  assert.equal(authFetch.handshakes, 1, 'the session survived the restart')
  assert.equal(authFetch.current?.replayEpoch, store.epoch())
  assert.equal(reached, 4)
})

test('ticket sealing: each minute seals under its own key derived from the ticket key; a ticket opens only under its own period', () => {
  const key = ticketKeyFrom(Buffer.alloc(32, 7))
  const t0 = Date.UTC(2026, 11, 4, 12, 0, 30)
  const a = sealPeriod(t0)
  assert.notDeepEqual(sealKeyFor(key, a), sealKeyFor(key, a + 1))
  const token = sealTicket(key, TICKET_KIND.session, Buffer.from('plaintext'), (n) => Buffer.alloc(n, 1), t0)
  assert.equal(token.readUInt32BE(6), a)
  assert.equal(openTicket([key], TICKET_KIND.session, token)?.toString(), 'plaintext')
  const moved = Buffer.from(token)
  moved.writeUInt32BE(a + 1, 6) // the same ciphertext claimed for the next minute
  assert.equal(openTicket([key], TICKET_KIND.session, moved), undefined)
})
