import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createClientHandshake, createServerTrust } from '../../../src/handshake/client-handshake.js'
import { createAuthService } from '../../../src/transport/auth-service.js'
import { createRequestProof } from '../../../src/session/session-token.js'
import { makeParties, TestClock, TestNonceStore } from '../../helpers/fixtures.js'

test('requests are remembered per session window, not per request: 2,000 requests on one session take no handshake capacity; a full window table refuses a new session (503), never evicts', async () => {
  const { InMemoryNonceStore } = await import('../../../src/nonce/memory-nonce-store.js')
  const p = makeParties()
  const clock = new TestClock()
  const store = new InMemoryNonceStore({ maxEntries: 3, maxSessions: 1, clock: clock.now, sweepIntervalMs: 0 })
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: store, clock: clock.now })
  async function handshake() {
    const c = createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
    const m2 = await service.handleMessage(c.start())
    const m4 = await service.handleMessage(await c.handleChallenge(m2.body))
    assert.equal(m4.status, 200)
    return c.handleComplete(m4.body)
  }
  const session = await handshake()
  const req = (s = session) => ({ authorization: `Bearer ${s.token}`, proof: createRequestProof({ session: s, method: 'GET', target: '/x', clock: clock.now }), method: 'GET', target: '/x' })
  for (let i = 0; i < 2000; i++) await service.verifyRequest(req())
  assert.equal(store.size(), 1, 'one handshake nonce; the 2,000 requests live in one window')
  assert.equal(store.sessionWindows(), 1)
  const second = await handshake()
  await assert.rejects(service.verifyRequest(req(second)), { code: 'server_busy' })
  await service.verifyRequest(req()) // the live window keeps serving
  clock.advance(62) // every proof of the first window is now outside the time window: it is forgotten
  await service.verifyRequest(req(second))
  store.close()
})

test('rotating ticket keys: sessions survive one rotation, then the key is forgotten and its tokens refused', async () => {
  const { rotatingTicketKeys } = await import('../../../src/session/ticket.js')
  const p = makeParties()
  const clock = new TestClock()
  const ring = rotatingTicketKeys({ rotateEvery: 60, keepFor: 120, clock: clock.now })
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(100, clock.now), ticketKeys: ring, sessionTtl: 600, clock: clock.now })
  const c = createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
  const m2 = await service.handleMessage(c.start())
  const m4 = await service.handleMessage(await c.handleChallenge(m2.body))
  const session = c.handleComplete(m4.body)
  const firstKey = ring.current()
  const check = () => service.verifier.verifyToken(session.token)
  clock.advance(61)
  assert.notEqual(ring.current().id, firstKey.id)
  assert.equal(check().clientFingerprint, p.client.fingerprint)
  clock.advance(130)
  assert.equal(ring.all().some((k) => k.id === firstKey.id), false)
  assert.equal(firstKey.key.every((b) => b === 0), true, 'a forgotten key is zeroed')
  // A fresh verifier (no decoded-token cache) can no longer open the token.
  const { createSessionVerifier } = await import('../../../src/session/session-verifier.js')
  const fresh = createSessionVerifier({ ticketKeys: ring, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(), clock: clock.now })
  assert.throws(() => fresh.verifyToken(session.token), { code: 'session_invalid' })
})

test('per-address limits: an honest handshake costs one start, failures fill a second bucket that refuses everything before any crypto', async () => {
  const { RateLimiter } = await import('../../../src/ratelimit/token-bucket.js')
  const p = makeParties()
  const clock = new TestClock()
  const limiter = new RateLimiter({ ratePerSecond: 1, burst: 3, clock: clock.now })
  const failures = new RateLimiter({ ratePerSecond: 1, burst: 3, clock: clock.now })
  const service = createAuthService({
    keyPair: p.server,
    allowlist: p.serverAllowlist,
    nonceStore: new TestNonceStore(100, clock.now),
    perAddressLimiter: limiter,
    perAddressFailureLimiter: failures,
    clock: clock.now,
  })
  const ctx = { remote: '127.0.0.9' }
  async function handshake() {
    const c = createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
    const m2 = await service.handleMessage(c.start(), ctx)
    if (m2.status !== 200) return m2
    return service.handleMessage(await c.handleChallenge(m2.body), ctx)
  }
  for (let i = 0; i < 3; i++) assert.equal((await handshake()).status, 200)
  const refused = await handshake()
  assert.equal(refused.status, 429)
  assert.equal(refused.error?.code, 'rate_limited')
  clock.advance(3)
  // Three failures empty the failure bucket (the 429 above was not counted as one).
  assert.equal((await service.handleMessage('not json', ctx)).status, 400)
  const c = createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
  const m2 = await service.handleMessage(c.start(), ctx)
  const m3 = await c.handleChallenge(m2.body)
  assert.equal((await service.handleMessage(m3, ctx)).status, 200)
  assert.equal((await service.handleMessage(m3, ctx)).error?.code, 'replay_detected')
  assert.equal((await service.handleMessage('not json', ctx)).status, 400)
  const blocked = await service.handleMessage(m3, ctx)
  assert.equal(blocked.status, 429, 'an address that used up its failures is refused before any crypto')
  assert.equal((await service.handleMessage(m3, { remote: '127.0.0.10' })).error?.code, 'replay_detected', 'other addresses are unaffected')
})

test('request proof: a non-canonical spelling of the same nonce is refused, so it cannot slip past the replay store', async () => {
  const { parseRequestProof, createRequestProof } = await import('../../../src/session/session-token.js')
  const session = { sessionKey: Buffer.alloc(32, 1), token: 'x'.repeat(40), replayEpoch: 'AAAAAAAAAAA', clockOffsetMs: 0, lastSequence: 0 }
  const header = createRequestProof({ session, method: 'GET', target: '/' })
  assert.ok(parseRequestProof(header))
  // 8 zero bytes are "AAAAAAAAAAA"; "…AB" decodes to the same bytes with a non-zero unused bit.
  assert.match(header, /e=A{11},/)
  assert.equal(parseRequestProof(header.replace(/e=A{11}/, 'e=' + 'A'.repeat(10) + 'B')), undefined)
  assert.equal(parseRequestProof(header.replace(/s=1,/, 's=01,')), undefined, 'a sequence number with a leading zero')
})

test('per-key limit counts only completed handshakes of that key: claims by others cost it nothing', async () => {
  const { RateLimiter } = await import('../../../src/ratelimit/token-bucket.js')
  const p = makeParties()
  const clock = new TestClock()
  const service = createAuthService({
    keyPair: p.server,
    allowlist: p.serverAllowlist,
    nonceStore: new TestNonceStore(100, clock.now),
    perKeyLimiter: new RateLimiter({ ratePerSecond: 1, burst: 2, clock: clock.now }),
    clock: clock.now,
  })
  const client = () => createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
  // A stranger replays the public key in message 1s: challenges are issued, nothing is counted.
  for (let i = 0; i < 10; i++) assert.equal((await service.handleMessage(client().start(), { remote: '127.0.0.2' })).status, 200)
  async function handshake() {
    const c = client()
    const m2 = await service.handleMessage(c.start())
    return service.handleMessage(await c.handleChallenge(m2.body))
  }
  assert.equal((await handshake()).status, 200)
  assert.equal((await handshake()).status, 200)
  const third = await handshake()
  assert.equal(third.status, 429)
  assert.equal(third.error?.code, 'rate_limited')
  assert.equal((third.body as { session_token?: string }).session_token, undefined, 'no session for a limited key')
})
