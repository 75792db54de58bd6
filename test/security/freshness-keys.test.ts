/**
 * Freshness (version, timestamp windows, challenge expiry) and trust in keys on both sides.
 * Boundaries are exact: |now - ts| <= tolerance passes, one millisecond more fails; a challenge
 * is usable while now < expires_at; the same holds for request proofs and session expiry over
 * HTTP. Ephemeral keys are never reused, and timestamps are formatted exactly as toISOString.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toWireError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { TestAllowlist, TestClock } from '../helpers/fixtures.js'
import { codeOf, expectCode, makeHarness, wire } from '../helpers/handshake-harness.js'
import { formatTimestamp } from '../../src/internal/clock.js'
import { MCP_BODY, send } from './helpers/loopback-http.js'
import { expectRefused, sessionSetup } from './helpers/mcp-session.js'
import { startServer } from './helpers/sandbox-servers.js'

test('wrong version in message 1 or 3: unsupported_version (400 on the wire, not folded)', async () => {
  const h = makeHarness()
  const m1 = wire(h.newClient().start())
  const err = await expectCode(() => h.server.handleRequest({ ...m1, version: 'mcp-pki/1' }), 'unsupported_version')
  assert.equal(toWireError(err).code, 'unsupported_version')
  const service = createAuthService({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now })
  const reply = await service.handleMessage(JSON.stringify({ ...m1, version: 'mcp-pki/0' }))
  assert.equal(reply.status, 400)
  assert.equal(reply.body.type === 'auth_error' && reply.body.error.code, 'unsupported_version')
})

test('message 1 timestamp: tolerance passes, tolerance + 1 ms is timestamp_skew, both directions', async () => {
  const tol = 300_000
  for (const dir of [1, -1]) {
    const clientClock = new TestClock()
    const serverClock = new TestClock(clientClock.ms + dir * tol)
    const h = makeHarness({ clientClock, serverClock })
    assert.equal(h.server.handleRequest(wire(h.newClient().start())).type, 'auth_challenge', `dir ${dir}: at tolerance`)
    serverClock.ms = clientClock.ms + dir * (tol + 1)
    const err = await expectCode(() => h.server.handleRequest(wire(h.newClient().start())), 'timestamp_skew', `dir ${dir}: tolerance + 1`)
    assert.equal(toWireError(err).code, 'timestamp_skew')
  }
})

test('message 3 timestamp: tolerance passes, tolerance + 1 ms is timestamp_skew, both directions, nonce untouched', async () => {
  const tol = 5_000
  for (const dir of [1, -1]) {
    for (const delta of [tol, tol + 1]) {
      const serverClock = new TestClock()
      const clientClock = new TestClock(serverClock.ms)
      const h = makeHarness({ serverClock, clientClock, server: { timestampTolerance: tol / 1000, challengeTtl: 600 } })
      const client = h.newClient({ timestampTolerance: 60 })
      const m2 = wire(h.server.handleRequest(wire(client.start())))
      const start = serverClock.ms
      // dir 1: the server's clock runs ahead of ts3; dir -1: ts3 is ahead of the server.
      if (dir === 1) serverClock.ms = start + delta
      else clientClock.ms = start + delta
      const m3 = wire(await client.handleChallenge(m2))
      const code = await codeOf(() => h.server.handleResponse(m3))
      assert.equal(code, delta === tol ? 'ok' : 'timestamp_skew', `dir ${dir}, delta ${delta}`)
      assert.equal(await h.nonces.size(), delta === tol ? 1 : 0)
    }
  }
})

test('client checks message 2 and message 4 timestamps against its own window', async () => {
  const tol = 300_000
  for (const dir of [1, -1]) {
    for (const delta of [tol, tol + 1]) {
      const clientClock = new TestClock()
      const serverClock = new TestClock(clientClock.ms + dir * delta)
      const h = makeHarness({ clientClock, serverClock, server: { timestampTolerance: 3600 } })
      const client = h.newClient()
      const m1 = wire(client.start())
      const m2 = wire(h.server.handleRequest(m1))
      assert.equal(await codeOf(() => client.handleChallenge(m2)), delta === tol ? 'ok' : 'timestamp_skew', `m2 dir ${dir} delta ${delta}`)
    }
  }
  for (const delta of [tol, tol + 1]) {
    const h = makeHarness({ clientClock: new TestClock() })
    const client = h.newClient()
    const m3 = wire(await client.handleChallenge(wire(h.server.handleRequest(wire(client.start())))))
    const m4 = wire((await h.server.handleResponse(m3)).message)
    h.clientClock.ms = Date.parse(m4.timestamp) + delta
    assert.equal(await codeOf(() => client.handleComplete(m4)), delta === tol ? 'ok' : 'timestamp_skew', `m4 delta ${delta}`)
  }
})

test('challenge expiry: expires_at - 1 ms passes, expires_at is challenge_expired (server and client)', async () => {
  for (const offset of [-1, 0]) {
    const serverClock = new TestClock()
    const clientClock = new TestClock(serverClock.ms)
    const h = makeHarness({ serverClock, clientClock, server: { challengeTtl: 60 } })
    const client = h.newClient()
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    assert.equal(Date.parse(m2.expires_at), serverClock.ms + 60_000)
    const m3 = wire(await client.handleChallenge(m2))
    serverClock.ms = Date.parse(m2.expires_at) + offset
    const code = await codeOf(() => h.server.handleResponse(m3))
    assert.equal(code, offset < 0 ? 'ok' : 'challenge_expired', `server offset ${offset}`)
    assert.equal(await h.nonces.size(), offset < 0 ? 1 : 0)
    if (offset === 0) assert.equal(toWireError(await expectCode(() => h.server.handleResponse(m3), 'challenge_expired')).code, 'challenge_expired')
  }
  // The client judges expiry in the server's frame: a challenge whose expires_at is not after its
  // own timestamp is dead on arrival; otherwise the server's check above is authoritative.
  for (const [delta, expected] of [[1, 'ok'], [0, 'challenge_expired'], [-1, 'challenge_expired']] as const) {
    const h = makeHarness()
    const client = h.newClient()
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    const forged = { ...m2, expires_at: new Date(Date.parse(m2.timestamp) + delta).toISOString() }
    assert.equal(await codeOf(() => client.handleChallenge(forged)), expected === 'ok' ? 'invalid_signature' : expected, `client expires_at = ts + ${delta}`)
  }
})

test('server: unknown and expired client keys are unknown_key / key_expired locally, authentication_failed (401) on the wire', async () => {
  const h = makeHarness()
  const service = createAuthService({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now })
  const stranger = generateKeyPair()
  const sc = h.newClient({ keyPair: stranger })
  const m1 = wire(sc.start())
  // Message 1 gets its challenge whatever the key; message 3 (signed by the key) is judged.
  const m3 = wire(await sc.handleChallenge(wire(h.server.handleRequest(m1))))
  await expectCode(() => h.server.handleResponse(m3), 'unknown_key')
  let reply = await service.handleMessage(m3)
  assert.equal(reply.status, 401)
  assert.equal(reply.error?.code, 'unknown_key')
  assert.deepEqual(reply.body.type === 'auth_error' && reply.body.error.code, 'authentication_failed')
  assert.ok(!JSON.stringify(reply.body).includes(stranger.fingerprint.slice(0, 16)), 'the wire does not echo allowlist details')

  // Expiry boundary: notAfter = now is expired, notAfter = now + 1 is not.
  const expiring = generateKeyPair()
  const fp = h.p.serverAllowlist.add(expiring.publicKeyRaw, {}, h.serverClock.ms)
  const ec = h.newClient({ keyPair: expiring })
  const em3 = wire(await ec.handleChallenge(wire(h.server.handleRequest(wire(ec.start())))))
  await expectCode(() => h.server.handleResponse(em3), 'key_expired')
  reply = await service.handleMessage(em3)
  assert.equal(reply.status, 401)
  assert.equal(reply.error?.code, 'key_expired')
  assert.equal(reply.body.type === 'auth_error' && reply.body.error.code, 'authentication_failed')
  h.p.serverAllowlist.add(expiring.publicKeyRaw, {}, h.serverClock.ms + 1)
  assert.equal((await h.server.handleResponse(em3)).clientFingerprint, fp)
  assert.ok(fp.length === 64)
  assert.equal(await h.nonces.size(), 1, 'only the accepted message 3 used its nonce')
})

test('server: a key removed or expired between message 2 and message 3 is refused at message 3', async () => {
  const h = makeHarness()
  const client = h.newClient()
  const m3 = wire(await client.handleChallenge(wire(h.server.handleRequest(wire(client.start())))))
  h.p.serverAllowlist.add(h.p.client.publicKeyRaw, {}, h.serverClock.ms)
  await expectCode(() => h.server.handleResponse(m3), 'key_expired')
  h.p.serverAllowlist.remove(h.p.client.fingerprint)
  await expectCode(() => h.server.handleResponse(m3), 'unknown_key')
  assert.equal(await h.nonces.size(), 0)
})

test('server: a session never outlives the client key entry', async () => {
  const h = makeHarness()
  h.p.serverAllowlist.add(h.p.client.publicKeyRaw, {}, h.serverClock.ms + 10_000)
  const run = await h.run()
  assert.equal(run.result.expiresAt, h.serverClock.ms + 10_000)
  assert.equal(run.session.expiresAt, h.serverClock.ms + 10_000)
})

test('client: unknown, expired, unpinned server keys and trust on first use', async () => {
  const h = makeHarness()
  const trusted = h.p.server.fingerprint
  const attempt = async (serverTrust: Parameters<typeof h.newClient>[0]): Promise<string> => {
    const client = h.newClient(serverTrust)
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    const code = await codeOf(() => client.handleChallenge(m2))
    if (code !== 'ok') assert.equal(await codeOf(() => client.handleComplete({})), 'invalid_message', 'a refused client cannot continue')
    return code
  }
  const now = h.clientClock.now
  const empty = new TestAllowlist()
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: empty, clock: now }) }), 'server_key_unknown')
  const expired = new TestAllowlist()
  expired.add(h.p.server.publicKeyRaw, {}, now())
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: expired, clock: now }) }), 'key_expired')
  // Pinned to another key: refused even though the allowlist knows this one (at message 2 when the pin
  // does not follow server-key rotations; by default at message 4, below).
  const other = generateKeyPair().fingerprint
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: h.p.clientAllowlist, pinnedFingerprint: other, keyRotation: false, clock: now }) }), 'server_key_mismatch')
  // Pinned to this key: accepted without an allowlist entry; pin compared case-insensitively.
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: empty, pinnedFingerprint: trusted.toUpperCase(), clock: now }) }), 'ok')
  // Trust on first use: asked once with the fingerprint; "no" refuses, "yes" accepts.
  const asked: string[] = []
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: empty, onUnknownKey: (fp) => (asked.push(fp), false), clock: now }) }), 'server_key_unknown')
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: empty, onUnknownKey: (fp) => (asked.push(fp), true), clock: now }) }), 'ok')
  assert.deepEqual(asked, [trusted, trusted])
  // TOFU never overrides an expired entry.
  assert.equal(await attempt({ serverTrust: createServerTrust({ allowlist: expired, onUnknownKey: () => true, clock: now }) }), 'key_expired')
  assert.equal(await h.nonces.size(), 0)
  // A pin that follows rotations waits for message 4 (docs/PROTOCOL.md §15): with no update there
  // linking this key to the pin, the handshake is refused all the same, and no session is returned.
  const client = h.newClient({ serverTrust: createServerTrust({ allowlist: h.p.clientAllowlist, pinnedFingerprint: other, keyRotation: { log: () => undefined }, clock: now }) })
  const m3 = await client.handleChallenge(wire(h.server.handleRequest(wire(client.start()))))
  const m4 = wire((await h.server.handleResponse(wire(m3))).message)
  assert.equal(await codeOf(() => client.handleComplete(m4)), 'server_key_mismatch')
})

test('a server clock behind the client by more than challenge_ttl (but inside the tolerance) still completes', async () => {
  // Regression: the client compared the server's expires_at with its own clock, which made the
  // effective tolerance in this direction challenge_ttl (60 s) instead of timestamp_tolerance.
  const clientClock = new TestClock()
  const serverClock = new TestClock(clientClock.ms - 120_000)
  const h = makeHarness({ clientClock, serverClock, server: { challengeTtl: 60 } })
  const run = await h.run()
  assert.equal(run.session.serverFingerprint, h.p.server.fingerprint)
})

// From the red-team round 2 (held).
test('proof window and session expiry hold at the exact boundaries (server clock controlled)', async () => {
  const s = await sessionSetup()
  const now = s.clock.ms
  // |now − t| = 30 s passes (both sides), 30.001 s does not.
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof({ at: now - 30_000 })) })).status, 200)
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof({ at: now + 30_000 })) })).status, 200)
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof({ at: now - 30_001 })) }), 401, 'proof_invalid', 'too old')
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof({ at: now + 30_001 })) }), 401, 'proof_invalid', 'too new')
  // A proof from the future, replayed until the last instant its window allows, is still a replay.
  const future = s.proof({ at: now + 30_000 })
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(future) })).status, 200)
  s.clock.ms = now + 60_000
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(future) }), 401, 'replay_detected', 'future proof at its last valid instant')
  // Session expiry: one ms before is fine; at expires_at (and later, and back again) it is over.
  const expiresAt = s.session.expiresAt
  s.clock.ms = expiresAt - 1
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) })).status, 200)
  s.clock.ms = expiresAt
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) }), 401, 'session_expired', 'at expires_at')
  s.clock.ms = expiresAt + 1
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) }), 401, 'session_expired', 'after expires_at')
  assert.equal(s.seen.length, 4)
})

// From the red-team round 2 (held).
test('no ephemeral key is ever used twice: 60 handshakes (20 at once) give 120 distinct X25519 keys and 60 distinct session keys', async () => {
  const { sb, port } = await startServer({ auth: { rate_limit: { per_address: 0, per_key: 0 } } })
  const run = async (): Promise<{ client: string; server: string; key: string }> => {
    const c = createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}`, serverTrust: () => ({}) })
    const m1 = c.start() as unknown as { client_ephemeral: string }
    const r2 = await send({ port }, { path: '/auth', body: JSON.stringify(m1) })
    assert.equal(r2.status, 200, r2.text)
    const r4 = await send({ port }, { path: '/auth', body: JSON.stringify(await c.handleChallenge(r2.json)) })
    assert.equal(r4.status, 200, r4.text)
    const session = c.handleComplete(r4.json)
    return { client: m1.client_ephemeral, server: String(r2.json.server_ephemeral), key: session.sessionKey.toString('hex') }
  }
  const results: Array<{ client: string; server: string; key: string }> = []
  for (let i = 0; i < 20; i++) results.push(await run())
  results.push(...(await Promise.all(Array.from({ length: 20 }, run))))
  for (let i = 0; i < 20; i++) results.push(await run())
  const ephemerals = new Set(results.flatMap((r) => [r.client, r.server]))
  assert.equal(ephemerals.size, 120)
  assert.equal(new Set(results.map((r) => r.key)).size, 60)
})

// From the red-team round 3 (held).
test('formatTimestamp equals Date#toISOString (or throws the same) for edge values and for interleaved seconds', () => {
  const same = (ms: number): void => {
    let want: string
    try {
      want = new Date(ms).toISOString()
    } catch (e) {
      assert.throws(() => formatTimestamp(ms), (e as Error).constructor as new () => Error, String(ms))
      return
    }
    assert.equal(formatTimestamp(ms), want, String(ms))
  }
  const edges = [0, -0, 1, 9, 10, 99, 100, 999, 1000, 1001, -1, -999, -1000, -1001, 0.5, 999.9999, 1000.4, -0.5, 1e15, 253402300799999, 253402300800000, 8.64e15, -8.64e15, 8.64e15 + 1, -62198755200000, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity, 2 ** 53 + 2]
  for (const x of edges) same(x)
  // The cache holds two seconds: walk three seconds round-robin, and back and forth across boundaries.
  const base = Date.UTC(2026, 10, 26, 10, 59, 59, 998)
  const seq: number[] = []
  for (let i = 0; i < 50; i++) seq.push(base + (i % 3) * 1000 + (i % 7), base + 1 - (i % 2) * 2, base + 2, base + 1000 * (i % 2) - 1)
  for (let i = 0; i < 20000; i++) {
    const t = Math.floor(Math.random() * 253402300800000)
    seq.push(t, t + 1000, t - 1, t, t + 1.5, -t)
  }
  for (const x of seq) same(x)
})
