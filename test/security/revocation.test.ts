/**
 * Revoked keys (a RevocationList, shared through Redis by a fleet): refused at the handshake like
 * unlisted keys, their live sessions refused at the next request, and lifting a revocation lets the
 * key authenticate again without reviving the sessions the revocation cut off (in every process and
 * after a restart).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toWireError } from '../../src/errors.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { InMemoryRevocationList } from '../../src/revocation/revocation-list.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { expectCode, makeHarness, wire, type Harness, type Run } from '../helpers/handshake-harness.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
const REDIS_URL = 'redis://127.0.0.1:6379'

function request(h: Harness, run: Run) {
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  return { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
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
