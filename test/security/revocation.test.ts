/**
 * Revoked keys (a RevocationList, shared through Redis by a fleet): refused at the handshake like
 * unlisted keys, their live sessions refused at the next request, and lifting a revocation lets the
 * key authenticate again without reviving the sessions the revocation cut off (in every process and
 * after a restart).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { AuthenticationEngine } from '../../src/compat.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError, toWireError } from '../../src/errors.js'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import type { NonceStore } from '../../src/nonce/nonce-store.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { InMemoryRevocationList } from '../../src/revocation/revocation-list.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { authenticateWebSocket } from '../../src/transport/ws-client.js'
import { TestNonceStore } from '../helpers/fixtures.js'
import { expectCode, makeHarness, wire, type Harness, type Run } from '../helpers/handshake-harness.js'
import { REDIS_URL, startPrivateRedis, type PrivateRedis } from '../integration/redis-helpers.js'
import { onCleanup } from './helpers/cleanup.js'
import { MCP_BODY, replyCode, send, sleep, waitFor } from './helpers/loopback-http.js'
import { NO_LIMITS, allowlistCli, capturingAudit, cliOk, listAt, redisFleet, startFront } from './helpers/redis-fleet.js'
import { assertHandshakeRefused, authHeaders, handshake, mcpCall, sessionAt } from './helpers/session-calls.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function request(h: Harness, run: Run) {
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  return { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
}

test('a revoked key is refused at message 3 (unknown_key locally, authentication_failed on the wire; its message 1 is answered like any other) and at message 3 when revoked in between', async () => {
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0 })
  const h = makeHarness({ server: { revocation } })
  await h.run() // works before
  await revocation.revoke(h.p.client.fingerprint, 'laptop stolen')
  const client = h.newClient()
  const m3first = wire(await client.handleChallenge(wire(h.server.handleRequest(wire(client.start())))))
  const err = await expectCode(() => h.server.handleResponse(m3first), 'unknown_key', 'message 3 of a revoked key')
  assert.match(err.message, /revoked/)
  assert.equal(toWireError(err).code, 'authentication_failed')

  // Revoked between message 2 and message 3: no session.
  await revocation.unrevoke(h.p.client.fingerprint)
  const c2 = h.newClient()
  const m2 = wire(h.server.handleRequest(wire(c2.start())))
  const m3 = wire(await c2.handleChallenge(m2))
  await revocation.revoke(h.p.client.fingerprint)
  await expectCode(() => h.server.handleResponse(m3), 'unknown_key', 'message 3')
  revocation.close()
})

test('a revocation that is lifted does not revive the sessions it cut off; fresh handshakes work again', async () => {
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0, clock: () => h.serverClock.ms })
  const h = makeHarness({ server: { revocation }, verifier: { revocation } })
  const old = await h.run()
  assert.equal((await h.verifier.verify(request(h, old))).clientFingerprint, h.p.client.fingerprint)
  h.serverClock.ms += 1000
  h.clientClock.ms = h.serverClock.ms
  await revocation.revoke(h.p.client.fingerprint)
  await expectCode(() => h.verifier.verify(request(h, old)), 'session_revoked', 'while revoked')
  h.serverClock.ms += 1000
  h.clientClock.ms = h.serverClock.ms
  await revocation.unrevoke(h.p.client.fingerprint)
  assert.equal(revocation.isRevoked(h.p.client.fingerprint), false)
  assert.equal(revocation.liftedRevocationAt(h.p.client.fingerprint), h.serverClock.ms - 1000)
  const err = await expectCode(() => h.verifier.verify(request(h, old)), 'session_revoked', 'old session after unrevoke')
  assert.match(err.message, /revoked after the session began/)
  await expectCode(() => Promise.resolve(h.verifier.verifyToken(old.session.token)), 'session_revoked', 'verifyToken')
  const fresh = await h.run()
  assert.equal((await h.verifier.verify(request(h, fresh))).sessionId, fresh.result.sessionId)
  revocation.close()
})

test('through the service: revocation option reaches the handshake and the verifier', async () => {
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0 })
  const h = makeHarness()
  const service = createAuthService({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now, revocation, audience: 'http://127.0.0.1:8443/mcp' })
  await revocation.revoke(h.p.client.fingerprint)
  const c = h.newClient()
  const m2 = await service.handleMessage(JSON.stringify(c.start()))
  assert.equal(m2.status, 200, 'message 1 is answered whatever the key')
  const reply = await service.handleMessage(JSON.stringify(await c.handleChallenge(m2.body)))
  assert.equal(reply.status, 401)
  assert.equal(reply.error?.code, 'unknown_key')
  assert.match(reply.error?.message ?? '', /revoked/)
  assert.equal((reply.body as { error?: { code: string } }).error?.code, 'authentication_failed')
  revocation.close()
})

test('Redis: lifting a revocation is seen by every process and survives a restart (a new list loads it); old sessions stay refused', async (t) => {
  const prefix = `test:revlift:${process.pid}:${Date.now()}:`
  const a = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  const b = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(async () => {
    await a.close()
    await b.close()
    const admin = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
    await admin.ready()
    const client = (admin as unknown as { client: { del(...k: string[]): Promise<number> } }).client
    await client.del(`${prefix}revoked`, `${prefix}revoked-info`, `${prefix}revoked-sessions`)
    await admin.close()
  })
  await Promise.all([a.ready(), b.ready()])
  const fp = 'ef'.repeat(32)
  await a.revoke(fp, 'test')
  await waitFor(() => b.isRevoked(fp), 'b sees the revocation')
  const revokedAt = a.list()[0]!.revokedAt
  await a.unrevoke(fp)
  await waitFor(() => !b.isRevoked(fp), 'b sees it lifted')
  assert.equal(a.liftedRevocationAt(fp), revokedAt)
  assert.equal(b.liftedRevocationAt(fp), revokedAt)
  assert.deepEqual(b.list(), [])
  // A process started afterwards loads the lifted revocation from Redis.
  const c = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  await c.ready()
  assert.equal(c.isRevoked(fp), false)
  assert.equal(c.liftedRevocationAt(fp), revokedAt)
  assert.deepEqual(c.list(), [])
  // Revoked and lifted again: the later start wins everywhere.
  await new Promise((r) => setTimeout(r, 5))
  await c.revoke(fp)
  await waitFor(() => a.isRevoked(fp), 'a sees the second revocation')
  const second = c.list()[0]!.revokedAt
  assert.ok(second > revokedAt)
  await c.unrevoke(fp)
  await waitFor(() => a.liftedRevocationAt(fp) === second, 'a sees the second lift')
  await c.close()
})

const TEN_MINUTES = 10 * 60_000

// From the red-team round 4 (held).
test('a key revoked with the CLI gets nothing on any path: /auth message 1 and a pending message 3, /ws, and its live sessions on protect, protectFetch, fetchHandler and an open WebSocket', async () => {
  const { sb } = await redisFleet()
  const { audit, lines } = capturingAudit()
  const front = await startFront(sb, { audit })
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  assert.equal(await mcpCall(front, old, '/mcp-fetch'), 'ok')
  const ws = await authenticateWebSocket({ url: front.running.wsUrl, keyPair: sb.clientKey, serverTrust: () => ({}) })
  const wsFrames: string[] = []
  ws.socket.on('message', (d) => wsFrames.push(String(d)))
  const wsClosed = new Promise<number>((r) => ws.socket.once('close', (code) => r(code)))
  // A handshake under way: message 2 obtained before the revocation, message 3 sent after it.
  const pending = createClientHandshake({ keyPair: sb.clientKey, audience: `http://${front.host}:${front.port}`, serverTrust: () => ({}) })
  const m2 = await send(front, { path: '/auth', body: JSON.stringify(pending.start()) })
  assert.equal(m2.status, 200)

  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp, '--reason', 'rt4 stolen']))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'the live session is refused')
  const reachedBefore = front.reached()

  const m4 = await send(front, { path: '/auth', body: JSON.stringify(await pending.handleChallenge(m2.json)) })
  assert.equal(m4.status, 401, m4.text)
  assert.equal(replyCode(m4), 'authentication_failed')
  assert.equal(m4.json.session_token, undefined)
  await assertHandshakeRefused(front, sb.clientKey, 'fresh handshake over HTTP')
  await assert.rejects(
    authenticateWebSocket({ url: front.running.wsUrl, keyPair: sb.clientKey, serverTrust: () => ({}) }),
    (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed',
  )
  assert.equal(await mcpCall(front, old, '/mcp-fetch'), '401 session_revoked')
  let fetchRan = false
  const viaFetch = await front.mcpAuth.fetchHandler(() => {
    fetchRan = true
    return Response.json({ reached: true })
  })(new Request(`http://${front.host}:${front.port}/mcp`, { method: 'POST', headers: authHeaders(old), body: MCP_BODY }))
  assert.equal(viaFetch.status, 401)
  assert.equal(((await viaFetch.json()) as { error: string }).error, 'session_revoked')
  assert.equal(fetchRan, false)
  // The open WebSocket is told and closed at the next periodic check.
  assert.equal(await Promise.race([wsClosed, sleep(5000).then(() => -1)]), 1008)
  assert.ok(wsFrames.some((f) => f.includes('session_revoked')), wsFrames.join('\n'))
  assert.equal(front.reached(), reachedBefore, 'no handler ran after the revocation')
  // The audit log names the reason; the wire did not.
  await waitFor(() => /"code":"unknown_key"/.test(lines()) && /revoked/.test(lines()), 'audit names the revocation')
})

// From the red-team round 4 (held).
test('unrevoke (CLI) lets the key in again at once but revives nothing: the old session stays session_revoked on the running server and on one started after the unrevoke', async () => {
  const { sb, prefix } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 12)]))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revoked')
  const un = cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 12)]))
  assert.match(un.stdout, /unrevoked/)
  const fresh = await (async () => {
    for (let i = 0; i < 100; i++) {
      const r = await handshake(front, sb.clientKey)
      if ('session' in r) return r.session
      await sleep(50)
    }
    assert.fail('no fresh session after the unrevoke')
  })()
  assert.equal(await mcpCall(front, fresh), 'ok')
  assert.equal(await mcpCall(front, old), '401 session_revoked')
  // A process started after the unrevoke (same server key: it opens the old token) loads the lifted revocation.
  const later = await startFront(sb)
  assert.equal(await mcpCall(later, old), '401 session_revoked')
  // The fresh session was made for the first front's address (its audience): another port refuses it.
  assert.equal(await mcpCall(later, fresh), '401 session_invalid')
  const freshLater = await handshake(later, sb.clientKey)
  assert.ok('session' in freshLater)
  assert.equal(await mcpCall(later, freshLater.session), 'ok')
  // The list that process loaded knows when the lifted revocation began.
  const list = await listAt(prefix)
  assert.ok((list.liftedRevocationAt(fp) ?? 0) > 0)
  assert.deepEqual(list.list(), [])
})

// From the red-team round 4, finding 1 (fixed).
test('revoke + unrevoke run on a machine whose clock is 10 min ahead do not lock the key out: a fresh session after the unrevoke works', async () => {
  const { sb } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: TEN_MINUTES }))
  await waitFor(async () => !('session' in (await handshake(front, sb.clientKey))), 'revoked')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: TEN_MINUTES }))
  let fresh: ClientSession | undefined
  await waitFor(async () => {
    const r = await handshake(front, sb.clientKey)
    if ('session' in r) fresh = r.session
    return fresh !== undefined
  }, 'the key authenticates again')
  // The legitimate session made after the unrevoke must work (it did not: its start was "before"
  // the revocation as timed by the operator's clock).
  assert.equal(await mcpCall(front, fresh!), 'ok')
})

// From the red-team round 4, finding 1 (fixed).
test('revoke + unrevoke run on a machine whose clock is 10 min behind do not revive a session begun shortly before the revocation', async () => {
  const { sb } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  await sleep(20)
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: -TEN_MINUTES }))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revoked')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: -TEN_MINUTES }))
  await waitFor(async () => 'session' in (await handshake(front, sb.clientKey)), 'the key authenticates again')
  assert.equal(await mcpCall(front, old), '401 session_revoked', 'the session the revocation cut off came back')
})

// From the red-team round 4, finding 2 (fixed).
test('lifting a revocation whose start is unknown (in the revoked set without a readable info record) revives none of the sessions it cut off, also in processes started later', async () => {
  const { sb, prefix } = await redisFleet()
  const first = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(first, sb.clientKey)
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  onCleanup(() => admin.quit().then(() => undefined))
  await admin.multi().sadd(`${prefix}revoked`, fp).hset(`${prefix}revoked-info`, fp, '{"reason":"by hand", "at": "yesterday"').exec()
  // A process started now loads the revocation (start unknown) and refuses the key and its session.
  const second = await startFront(sb)
  assert.equal(await mcpCall(second, old), '401 session_revoked')
  await assertHandshakeRefused(second, sb.clientKey, 'revoked by hand')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp]))
  await waitFor(async () => 'session' in (await handshake(second, sb.clientKey)), 'the key authenticates again')
  assert.equal(await mcpCall(second, old), '401 session_revoked', 'revived on the running process')
  const third = await startFront(sb)
  assert.equal(await mcpCall(third, old), '401 session_revoked', 'revived on a process started after the unrevoke')
  const fresh = await sessionAt(third, sb.clientKey)
  assert.equal(await mcpCall(third, fresh), 'ok')
  // (A session is bound to the address it was made for: `second` listens on another port.)
  assert.equal(await mcpCall(second, await sessionAt(second, sb.clientKey)), 'ok')
})

// From the red-team round 4, finding 3 (fixed).
test('unrevoke through a RedisRevocationList that has not loaded yet (connected, before ready()) leaves a lifted record that processes started later see', async () => {
  const { sb, prefix } = await redisFleet()
  const fp = sb.clientKey.fingerprint
  const a = await listAt(prefix)
  await a.revoke(fp, 'rt4')
  const revokedAt = a.list()[0]!.revokedAt
  const early = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  onCleanup(() => early.close())
  // Its command connection is up; the subscription and the first load may not be.
  await new Promise<void>((r) => (early as unknown as { client: Redis }).client.once('ready', () => r()))
  await early.unrevoke(fp)
  await waitFor(() => !a.isRevoked(fp), 'a sees the lift')
  const later = await listAt(prefix)
  assert.equal(later.isRevoked(fp), false)
  assert.equal(later.liftedRevocationAt(fp), revokedAt, 'the lifted revocation is known to a process started afterwards')
  assert.equal(a.liftedRevocationAt(fp), revokedAt)
})

// From the red-team round 4 (held).
test('malformed pub/sub messages (not JSON, wrong types, uppercase or short fingerprints, unknown ops, __proto__) change nothing and crash nothing; the server keeps serving', async () => {
  const { sb, prefix } = await redisFleet()
  const front = await startFront(sb)
  const list = await listAt(prefix)
  const fp = sb.clientKey.fingerprint
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  onCleanup(() => admin.quit().then(() => undefined))
  const channel = `${prefix}revocations`
  const garbage = [
    'not json',
    '',
    'null',
    '[]',
    '42',
    `{"op":"revoke","fp":"${fp.toUpperCase()}","at":1}`,
    `{"op":"revoke","fp":"${fp.slice(0, 63)}","at":1}`,
    `{"op":"revoke","fp":"${fp} ","at":1}`,
    `{"op":"revoke","fp":"${fp}","at":"1"}`,
    `{"op":"revoke","fp":["${fp}"],"at":1}`,
    `{"op":"REVOKE","fp":"${fp}","at":1}`,
    `{"op":"delete","fp":"${fp}"}`,
    `{"__proto__":{"op":"revoke","fp":"${fp}","at":1}}`,
    `{"op":"session","id":"","exp":9e15}`,
    `{"op":"session","id":{"x":1},"exp":9e15}`,
    `{"op":"session","id":"x","exp":"9e15"}`,
    '{"op":"revoke","fp":' + '"a'.repeat(100_000) + '"}',
  ]
  for (const g of garbage) await admin.publish(channel, g)
  // A well-formed message after them is applied (so they were all processed, in order).
  const probe = 'cd'.repeat(32)
  await admin.publish(channel, JSON.stringify({ op: 'revoke', fp: probe, at: Date.now() }))
  await waitFor(() => list.isRevoked(probe), 'the probe after the garbage')
  assert.equal(list.isRevoked(fp), false)
  assert.equal(list.liftedRevocationAt(fp), undefined)
  assert.equal(list.isSessionRevoked(''), false)
  const s = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, s), 'ok')
})

// From the red-team round 4 (held).
test('40 revoke/unrevoke steps alternating between two processes converge: both, and a process started afterwards, agree with Redis and keep the latest lifted start', async () => {
  const { prefix } = await redisFleet()
  const a = await listAt(prefix)
  const b = await listAt(prefix)
  const fps = ['e1'.repeat(32), 'e2'.repeat(32), 'e3'.repeat(32)]
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  onCleanup(() => admin.quit().then(() => undefined))
  let seed = 7
  const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
  const lastLift = new Map<string, number>()
  for (let i = 0; i < 40; i++) {
    const who = i % 2 === 0 ? a : b
    const fp = fps[rnd(fps.length)]!
    if (rnd(2) === 0) await who.revoke(fp, `step ${i}`)
    else {
      await who.unrevoke(fp)
      const info = await admin.hget(`${prefix}revoked-info`, fp)
      if (info !== null) lastLift.set(fp, (JSON.parse(info) as { at: number }).at)
    }
  }
  const c = await listAt(prefix)
  for (const fp of fps) {
    const inRedis = (await admin.sismember(`${prefix}revoked`, fp)) === 1
    for (const [name, l] of [['a', a], ['b', b], ['c', c]] as const) {
      await waitFor(() => l.isRevoked(fp) === inRedis, `${name} agrees with Redis on ${fp.slice(0, 4)}`)
      assert.equal(l.liftedRevocationAt(fp), lastLift.get(fp), `${name}: lifted start of ${fp.slice(0, 4)}`)
    }
  }
})

// From the red-team round 4 (held).
test('a server whose subscriber was cut off while the key was revoked, then unrevoked, catches up on reconnecting; with Redis gone, handshakes and proofs fail closed (503 server_busy)', async () => {
  const srv: PrivateRedis = await startPrivateRedis()
  onCleanup(() => srv.stop())
  const { sb, prefix } = await redisFleet({ redisUrl: srv.url })
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  const admin = new Redis(srv.url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  admin.on('error', () => undefined)
  onCleanup(() => admin.disconnect())
  // Revoked while the server's subscriber is gone (killed in the same pipeline: it misses the message).
  const revokedAt = Date.now()
  await admin
    .pipeline()
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    .sadd(`${prefix}revoked`, fp)
    .hset(`${prefix}revoked-info`, fp, JSON.stringify({ reason: 'while away', at: revokedAt }))
    .publish(`${prefix}revocations`, JSON.stringify({ op: 'revoke', fp, at: revokedAt }))
    .exec()
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revocation seen after the reconnect')
  await assertHandshakeRefused(front, sb.clientKey, 'after the reconnect')
  // Lifted while the subscriber is gone again: the reload brings the lifted start, not a revival.
  await admin
    .pipeline()
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    .srem(`${prefix}revoked`, fp)
    .hset(`${prefix}revoked-info`, fp, JSON.stringify({ at: revokedAt, lifted: Date.now() }))
    .publish(`${prefix}revocations`, JSON.stringify({ op: 'unrevoke', fp, at: revokedAt }))
    .exec()
  let fresh: ClientSession | undefined
  await waitFor(async () => {
    const r = await handshake(front, sb.clientKey)
    if ('session' in r) fresh = r.session
    return fresh !== undefined
  }, 'lift seen after the reconnect')
  assert.equal(await mcpCall(front, old), '401 session_revoked')
  assert.equal(await mcpCall(front, fresh!), 'ok')
  // Redis gone: no handshake and no proof-bound request is accepted unchecked.
  await srv.stop()
  const r = await handshake(front, sb.clientKey)
  assert.ok(!('session' in r))
  assert.equal(r.refused.status, 503, r.refused.text)
  assert.equal(replyCode(r.refused), 'server_busy')
  assert.equal(await mcpCall(front, fresh!), '503 server_busy')
})

// From the red-team round 4 (held).
test('revoked while the nonce store answers message 3: no session; revoked and lifted in that time: the session issued is refused at its first request', async () => {
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0, clock: () => h.serverClock.ms })
  let during: (() => Promise<void>) | undefined
  const inner = new TestNonceStore(1000, () => h.serverClock.ms)
  const slow: NonceStore = {
    async checkAndInsert(nonce, expiresAt, epoch) {
      await during?.()
      return inner.checkAndInsert(nonce, expiresAt, epoch)
    },
    epoch: () => inner.epoch(),
    checkSequence: (...a) => inner.checkSequence(...a),
    size: () => inner.size(),
  }
  const h = makeHarness({ nonceStore: slow, server: { revocation }, verifier: { revocation, nonceStore: inner } })
  const fp = h.p.client.fingerprint
  during = () => revocation.revoke(fp)
  const c1 = h.newClient()
  const m3 = wire(await c1.handleChallenge(wire(h.server.handleRequest(wire(c1.start())))))
  const err = await expectCode(() => h.server.handleResponse(m3), 'unknown_key', 'revoked during the nonce store')
  assert.match(err.message, /revoked during the handshake/)
  await revocation.unrevoke(fp)
  h.serverClock.ms += 1000
  during = async () => {
    await revocation.revoke(fp)
    await revocation.unrevoke(fp)
  }
  const c2 = h.newClient()
  const m3b = wire(await c2.handleChallenge(wire(h.server.handleRequest(wire(c2.start())))))
  const result = await h.server.handleResponse(m3b)
  const session = c2.handleComplete(wire(result.message))
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: MCP_BODY, clock: h.clientClock.now })
  await expectCode(() => h.verifier.verify({ authorization: `Bearer ${session.token}`, proof, method: 'POST', target: '/mcp', body: MCP_BODY }), 'session_revoked', 'straddling session')
  during = undefined
  h.serverClock.ms += 1000
  const fresh = await h.run()
  const proof2 = createRequestProof({ session: fresh.session, method: 'POST', target: '/mcp', body: MCP_BODY, clock: h.clientClock.now })
  assert.equal((await h.verifier.verify({ authorization: `Bearer ${fresh.session.token}`, proof: proof2, method: 'POST', target: '/mcp', body: MCP_BODY })).clientFingerprint, fp)
  revocation.close()
})

// From the red-team round 4 (held).
test('compat AuthenticationEngine with a RedisRevocationList refuses a revoked key at message 3, new or pending (unknown_key), and takes it again after unrevoke', async () => {
  const { sb, prefix } = await redisFleet({ server: { auth: { ...NO_LIMITS, audience: 'https://mcp.example' } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const { loadAllowlistFile } = await import('../../src/allowlist/allowlist-file.js')
  const revocation = await listAt(prefix)
  const engine = new AuthenticationEngine(config, { keyPair: sb.serverKey, allowlist: await loadAllowlistFile(sb.serverAllowlistPath), revocation })
  const client = (): ReturnType<typeof createClientHandshake> => createClientHandshake({ keyPair: sb.clientKey, audience: 'https://mcp.example', serverTrust: () => ({}) })
  const pending = client()
  const m2 = engine.processAuthRequest(wire(pending.start()))
  const m3 = await pending.handleChallenge(wire(m2))
  const other = await listAt(prefix)
  await other.revoke(sb.clientKey.fingerprint, 'rt4')
  await waitFor(() => revocation.isRevoked(sb.clientKey.fingerprint), 'the engine\'s list sees it')
  // Message 1 is answered whatever the key (no allowlist oracle); its message 3 is refused.
  const late = client()
  const lateM3 = await late.handleChallenge(wire(engine.processAuthRequest(wire(late.start()))))
  await expectCode(() => engine.processAuthResponse(wire(lateM3)), 'unknown_key', 'message 3 of a new handshake')
  await expectCode(() => engine.processAuthResponse(wire(m3)), 'unknown_key', 'pending message 3')
  await other.unrevoke(sb.clientKey.fingerprint)
  await waitFor(() => !revocation.isRevoked(sb.clientKey.fingerprint), 'lifted')
  const c = client()
  const done = await engine.processAuthResponse(wire(await c.handleChallenge(wire(engine.processAuthRequest(wire(c.start()))))))
  assert.equal(done.clientFingerprint, sb.clientKey.fingerprint)
})
