import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { AuthError } from '../../src/errors.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { REDIS_URL, deletePrefix, freePort, startPrivateRedis, uniquePrefix } from './redis-helpers.js'

const prefix = uniquePrefix('revocation')
after(async () => {
  await deletePrefix(prefix)
})

const FP_A = '0a'.repeat(32)
const FP_B = '0b'.repeat(32)
const FP_C = '0c'.repeat(32)

async function waitFor(cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 5))
  }
  return Date.now() - t0
}

test('a revoke in one process is seen by another within 1 s; unrevoke too', async (t) => {
  const a = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  const b = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await a.ready()
  await b.ready()
  assert.equal(b.synced, true)
  assert.equal(b.isRevoked(FP_A), false)
  await a.revoke(FP_A, 'compromised')
  assert.equal(a.isRevoked(FP_A), true, 'read-your-writes in the revoking process')
  const took = await waitFor(() => b.isRevoked(FP_A), 3000)
  assert.ok(took < 3000, `took ${took} ms`)
  assert.equal(b.list().find((i) => i.fingerprint === FP_A)?.reason, 'compromised')
  await b.unrevoke(FP_A)
  await waitFor(() => !a.isRevoked(FP_A), 3000)
  assert.equal(b.isRevoked(FP_A), false)
})

test('a process started later loads existing revocations', async (t) => {
  const a = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(() => a.close())
  await a.ready()
  await a.revoke(FP_B, 'rotated')
  await a.revokeSession('session-xyz', Date.now() + 60_000)
  const b = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(() => b.close())
  assert.equal(b.isRevoked(FP_B), false, 'not loaded yet')
  await b.ready()
  assert.equal(b.isRevoked(FP_B), true)
  assert.equal(b.list().find((i) => i.fingerprint === FP_B)?.reason, 'rotated')
  assert.equal(b.isSessionRevoked('session-xyz'), true)
  assert.equal(b.isSessionRevoked('session-other'), false)
  const r = new Redis(REDIS_URL)
  t.after(() => r.quit())
  assert.equal(await r.sismember(`${prefix}revoked`, FP_B), 1)
})

test('session revocations propagate and expire', async (t) => {
  const a = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  const b = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(async () => {
    await a.close()
    await b.close()
  })
  await Promise.all([a.ready(), b.ready()])
  await a.revokeSession('short-session', Date.now() + 1500)
  await waitFor(() => b.isSessionRevoked('short-session'), 3000)
  await waitFor(() => !b.isSessionRevoked('short-session'), 3000)
  assert.equal(a.isSessionRevoked('short-session'), false)
})

test('after the subscriber reconnects, the whole set is reloaded (missed messages are not lost)', async (t) => {
  const srv = await startPrivateRedis()
  t.after(() => srv.stop())
  const admin = new Redis(srv.url)
  t.after(() => admin.quit())
  const errors: Error[] = []
  const b = new RedisRevocationList({ redis: srv.url, keyPrefix: prefix, onError: (e) => errors.push(e) })
  t.after(() => b.close())
  await b.ready()
  // a change written without a message (as if published while b was disconnected)
  await admin.sadd(`${prefix}revoked`, FP_C)
  await new Promise((r) => setTimeout(r, 100))
  assert.equal(b.isRevoked(FP_C), false)
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  await waitFor(() => b.isRevoked(FP_C), 3000)
  // and the new subscription works
  const a = new RedisRevocationList({ redis: srv.url, keyPrefix: prefix })
  t.after(() => a.close())
  await a.ready()
  await a.unrevoke(FP_C)
  await waitFor(() => !b.isRevoked(FP_C), 3000)
})

test('changes fail closed with server_busy when Redis is unreachable; ready() times out', async (t) => {
  const port = await freePort()
  const list = new RedisRevocationList({ redis: `redis://127.0.0.1:${port}`, keyPrefix: prefix, onError: () => undefined })
  t.after(() => list.close())
  const t0 = Date.now()
  await assert.rejects(list.revoke(FP_A), (err: unknown) => err instanceof AuthError && err.code === 'server_busy')
  await assert.rejects(list.ready(300), (err: unknown) => err instanceof AuthError && err.code === 'server_busy')
  assert.ok(Date.now() - t0 < 2000)
  assert.equal(list.synced, false)
  assert.equal(list.isRevoked(FP_A), false, 'a failed revoke changes nothing')
})
