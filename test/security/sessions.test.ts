/**
 * Sessions after the handshake: forged/expired/foreign tokens, sender-constrained proofs,
 * revocation by allowlist removal, and a full nonce store that fails closed without evicting
 * (and that a client's own requests never fill).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { toWireError } from '../../src/errors.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import { InMemoryNonceStore } from '../../src/nonce/memory-nonce-store.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createSessionVerifier } from '../../src/session/session-verifier.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { TestClock } from '../helpers/fixtures.js'
import { codeOf, expectCode, makeHarness, wire, type Harness, type Run } from '../helpers/handshake-harness.js'
import { createClientHandshake } from '../../src/handshake/client-handshake.js'
import { honestHandshake, postAuth } from './helpers/auth-endpoint.js'
import { startServer } from './helpers/sandbox-servers.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function request(h: Harness, run: Run, over: { method?: string; target?: string; body?: string; key?: Buffer; at?: number } = {}) {
  const proof = createRequestProof({
    session: over.key === undefined ? run.session : { ...run.session, sessionKey: over.key },
    method: 'POST',
    target: '/mcp',
    body: BODY,
    clock: () => over.at ?? h.clientClock.ms,
  })
  return { authorization: `Bearer ${run.session.token}`, proof, method: over.method ?? 'POST', target: over.target ?? '/mcp', body: over.body ?? BODY }
}

test('forged, altered, foreign-kind and other-server session tokens: session_invalid', async () => {
  const h = makeHarness()
  const run = await h.run()
  const forged = b64u(randomBytes(130))
  await expectCode(() => h.verifier.verify({ ...request(h, run), authorization: `Bearer ${forged}` }), 'session_invalid', 'random bytes')
  const raw = fromB64u(run.session.token)!
  for (const i of [0, 1, 2, 10, 40, raw.length - 1]) {
    const t = Buffer.from(raw)
    t[i] = t[i]! ^ 0x01
    await expectCode(() => h.verifier.verify({ ...request(h, run), authorization: `Bearer ${b64u(t)}` }), 'session_invalid', `byte ${i} flipped`)
  }
  // The challenge token is sealed with the same key but is another kind: refused.
  await expectCode(() => h.verifier.verify({ ...request(h, run), authorization: `Bearer ${run.m2.challenge_token}` }), 'session_invalid', 'challenge token')
  // A token from another server (another key, hence another ticket key).
  // A token from another server (another key, hence another ticket key).
  const o2 = makeHarness({ serverClock: h.serverClock })
  const foreign = await o2.run()
  await expectCode(() => h.verifier.verify(request(h, foreign)), 'session_invalid', 'other server')
  await expectCode(() => h.verifier.verify({ ...request(h, run), authorization: undefined }), 'session_invalid', 'no Authorization')
  await expectCode(() => h.verifier.verify({ ...request(h, run), authorization: `Basic ${run.session.token}` }), 'session_invalid', 'not Bearer')
  // None of those consumed a nonce; the genuine request still works.
  assert.equal(await h.nonces.size(), 1)
  assert.equal((await h.verifier.verify(request(h, run))).clientFingerprint, h.p.client.fingerprint)
})

test('session expiry: expires_at - 1 ms passes, expires_at is session_expired', async () => {
  const h = makeHarness({ server: { sessionTtl: 900 } })
  const run = await h.run()
  assert.equal(run.result.expiresAt, h.serverClock.ms + 900_000)
  h.serverClock.ms = run.result.expiresAt - 1
  h.clientClock.ms = h.serverClock.ms
  assert.equal((await h.verifier.verify(request(h, run))).sessionId, run.result.sessionId)
  h.serverClock.ms = run.result.expiresAt
  const err = await expectCode(() => h.verifier.verify(request(h, run)), 'session_expired')
  assert.equal(toWireError(err).code, 'session_expired')
  await expectCode(() => Promise.resolve(h.verifier.verifyToken(run.session.token)), 'session_expired', 'verifyToken')
})

test('a valid token without the session key: proof_missing, or proof_invalid with a wrong key', async () => {
  const h = makeHarness()
  const run = await h.run()
  await expectCode(() => h.verifier.verify({ ...request(h, run), proof: undefined }), 'proof_missing')
  await expectCode(() => h.verifier.verify({ ...request(h, run), proof: '' }), 'proof_missing', 'empty header')
  await expectCode(() => h.verifier.verify(request(h, run, { key: randomBytes(32) })), 'proof_invalid', 'wrong key')
  await expectCode(() => h.verifier.verify({ ...request(h, run), proof: 't=1, n=x, m=y' }), 'proof_invalid', 'malformed header')
  assert.equal(await h.nonces.size(), 1, 'no proof nonce recorded')
})

test('proof for another method, target or body: proof_invalid', async () => {
  const h = makeHarness()
  const run = await h.run()
  const good = request(h, run)
  await expectCode(() => h.verifier.verify({ ...good, method: 'PUT' }), 'proof_invalid', 'method')
  await expectCode(() => h.verifier.verify({ ...good, target: '/mcp?x=1' }), 'proof_invalid', 'target')
  await expectCode(() => h.verifier.verify({ ...good, body: BODY.replace('list', 'call') }), 'proof_invalid', 'body')
  await expectCode(() => h.verifier.verify({ ...good, body: '' }), 'proof_invalid', 'empty body')
  assert.equal((await h.verifier.verify(good)).clientFingerprint, h.p.client.fingerprint)
})

test('replayed proof: replay_detected; stale or future proof beyond the window: proof_invalid', async () => {
  const h = makeHarness()
  const run = await h.run()
  const good = request(h, run)
  await h.verifier.verify(good)
  const err = await expectCode(() => h.verifier.verify(good), 'replay_detected')
  assert.equal(toWireError(err).code, 'replay_detected')
  // Window ±30 s: exactly 30 s is accepted, 30 s + 1 ms is not, both directions.
  const now = h.serverClock.ms
  assert.equal(await codeOf(() => h.verifier.verify(request(h, run, { at: now - 30_000 }))), 'ok')
  assert.equal(await codeOf(() => h.verifier.verify(request(h, run, { at: now + 30_000 }))), 'ok')
  await expectCode(() => h.verifier.verify(request(h, run, { at: now - 30_001 })), 'proof_invalid', 'stale')
  await expectCode(() => h.verifier.verify(request(h, run, { at: now + 30_001 })), 'proof_invalid', 'future')
  // A proof replayed after its window is refused by the window, not forgotten.
  h.serverClock.ms = now + 30_001
  await expectCode(() => h.verifier.verify(good), 'proof_invalid', 'replay after the window')
})

test('bearer mode accepts the token alone but still checks a proof when one is sent', async () => {
  const h = makeHarness({ verifier: { binding: 'bearer' } })
  const run = await h.run()
  assert.equal((await h.verifier.verify({ ...request(h, run), proof: undefined })).clientFingerprint, h.p.client.fingerprint)
  await expectCode(() => h.verifier.verify(request(h, run, { key: randomBytes(32) })), 'proof_invalid')
})

test('a key removed (or revoked) while its session is live: session_revoked at once', async () => {
  const h = makeHarness()
  const run = await h.run()
  assert.equal((await h.verifier.verify(request(h, run))).clientFingerprint, h.p.client.fingerprint)
  assert.equal(h.verifier.verifyToken(run.session.token).clientFingerprint, h.p.client.fingerprint)
  h.p.serverAllowlist.remove(h.p.client.fingerprint)
  const err = await expectCode(() => h.verifier.verify(request(h, run)), 'session_revoked')
  assert.equal(toWireError(err).code, 'session_revoked')
  await expectCode(() => Promise.resolve(h.verifier.verifyToken(run.session.token)), 'session_revoked', 'verifyToken')
  // Expired entry: same.
  h.p.serverAllowlist.add(h.p.client.publicKeyRaw, {}, h.serverClock.ms)
  await expectCode(() => h.verifier.verify(request(h, run)), 'session_revoked', 'expired entry')
  // A revocation list: key revoked, or this one session revoked.
  h.p.serverAllowlist.add(h.p.client.publicKeyRaw)
  const revoked = new Set<string>()
  const v = createSessionVerifier({
    ticketKeys: h.server.ticketKeys,
    allowlist: h.p.serverAllowlist,
    nonceStore: h.nonces,
    clock: h.serverClock.now,
    revocation: { isRevoked: (fp) => revoked.has(fp), isSessionRevoked: (id) => revoked.has(id) },
  })
  assert.equal((await v.verify(request(h, run))).sessionId, run.result.sessionId)
  revoked.add(run.result.sessionId)
  await expectCode(() => v.verify(request(h, run)), 'session_revoked', 'session revoked')
  revoked.clear()
  revoked.add(h.p.client.fingerprint)
  await expectCode(() => v.verify(request(h, run)), 'session_revoked', 'key revoked')
})

test('a full nonce store: server_busy (503 + Retry-After), nothing evicted, recovers after expiry', async () => {
  const clock = new TestClock()
  const store = new InMemoryNonceStore({ maxEntries: 2, clock: clock.now, sweepIntervalMs: 0 })
  const h = makeHarness({ serverClock: clock, nonceStore: store, server: { challengeTtl: 60 } })
  const first = await h.run()
  await h.run()
  assert.equal(store.size(), 2)
  const client = h.newClient()
  const m3 = wire(await client.handleChallenge(wire(h.server.handleRequest(wire(client.start())))))
  const err = await expectCode(() => h.server.handleResponse(m3), 'server_busy')
  assert.equal(err.retryAfter, 60)
  assert.equal(toWireError(err).code, 'server_busy')
  // Through the service: 503 with Retry-After.
  const service = createAuthService({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: store, clock: clock.now, challengeTtl: 60 })
  const reply = await service.handleMessage(JSON.stringify(m3))
  assert.equal(reply.status, 503)
  assert.equal(reply.headers['retry-after'], '60')
  assert.equal(reply.body.type === 'auth_error' && reply.body.error.code, 'server_busy')
  assert.equal(reply.body.type === 'auth_error' && reply.body.retry_after, 60)
  // Not evicting: the first run's message 3 is still a replay, the store still holds 2.
  await expectCode(() => h.server.handleResponse(first.m3), 'replay_detected', 'earlier nonce still remembered')
  assert.equal(store.size(), 2)
  // Request proofs use their own per-session windows (mcp-pki/2): a full handshake-nonce store does not stop them.
  assert.equal((await h.verifier.verify(request(h, first))).sessionId, first.result.sessionId)
  // Once the challenges expire, handshakes work again.
  clock.advance(61)
  h.clientClock.ms = clock.ms
  assert.equal((await h.run()).session.serverFingerprint, h.p.server.fingerprint)
})

// From the red-team, handshake server (held).
test(
  'one authenticated client sending more requests than the nonce store holds makes nothing server_busy',
  async () => {
    const { sb, running: server, port } = await startServer({ auth: { nonce_cache_size: 20 } })
    const c = createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}/auth`, serverTrust: () => ({}) })
    const r2 = await postAuth(port, c.start())
    const session = c.handleComplete((await postAuth(port, await c.handleChallenge(r2.body))).body)
    // The client's own requests: 25 legitimate, distinct proofs (bounded).
    let busy = 0
    for (let i = 0; i < 25; i++) {
      const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: '' })
      try {
        await server.configured.service.verifyRequest({ authorization: `Bearer ${session.token}`, proof, method: 'POST', target: '/mcp', body: '' })
      } catch (err) {
        if ((err as { code?: string }).code === 'server_busy') busy++
        else throw err
      }
    }
    // mcp-pki/2: requests are remembered in a per-session window, not in the handshake nonce store
    // (20 entries here): 25 requests fill nothing, and handshakes keep working.
    assert.equal(busy, 0, 'requests never fill the handshake nonce store')
    assert.equal(await honestHandshake(sb, port), 'ok')
  },
)
