import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Redis } from 'ioredis'
import { AuthError } from '../../src/errors.js'
import { RedisNonceStore } from '../../src/nonce/redis-nonce-store.js'
import { REDIS_URL, deletePrefix, runChild, startPrivateRedis, uniquePrefix, freePort } from './redis-helpers.js'
import { srcModule } from '../helpers/node-snippet.js'

const prefix = uniquePrefix('nonce')
after(async () => {
  await deletePrefix(prefix)
})

async function assertBusy(promise: Promise<unknown>, maxMs: number): Promise<void> {
  const t0 = Date.now()
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AuthError, `AuthError expected, got ${String(err)}`)
    assert.equal(err.code, 'server_busy')
    assert.equal(err.retryAfter, 1)
    return true
  })
  assert.ok(Date.now() - t0 < maxMs, `took ${Date.now() - t0} ms`)
}

test('ok then replay; key carries a TTL close to expiresAt - now', async (t) => {
  const store = new RedisNonceStore({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(() => store.close())
  await store.ready()
  const exp = Date.now() + 30_000
  assert.equal(await store.checkAndInsert('first', exp), 'ok')
  assert.equal(await store.checkAndInsert('first', exp), 'replay')
  assert.equal(await store.checkAndInsert('second', exp), 'ok')
  assert.equal(store.size(), 2)
  const r = new Redis(REDIS_URL)
  t.after(() => r.quit())
  // The TTL is the time left plus twice the fleet's allowed clock skew (default 5 s): a member whose
  // clock is up to 5 s behind can still accept until then, so the entry must outlive that.
  const pttl = await r.pttl(`${prefix}n:first`)
  assert.ok(pttl > 38_000 && pttl <= 40_000, `pttl ${pttl}`)
})

test('entries expire with their TTL and can be used again', async (t) => {
  const store = new RedisNonceStore({ redis: REDIS_URL, keyPrefix: prefix, clockSkewMs: 0 })
  t.after(() => store.close())
  await store.ready()
  assert.equal(await store.checkAndInsert('short', Date.now() + 150), 'ok')
  assert.equal(await store.checkAndInsert('short', Date.now() + 150), 'replay')
  await new Promise((r) => setTimeout(r, 350))
  assert.equal(await store.checkAndInsert('short', Date.now() + 150), 'ok')
  // an expiry already in the past is still recorded (1 ms minimum), never silently skipped
  assert.equal(await store.checkAndInsert('past', Date.now() - 1000), 'ok')
})

test('two connections share replay protection', async (t) => {
  const a = new RedisNonceStore({ redis: REDIS_URL, keyPrefix: prefix })
  const external = new Redis(REDIS_URL)
  const b = new RedisNonceStore({ redis: external, keyPrefix: prefix })
  t.after(async () => {
    await a.close()
    await b.close() // does not close a caller's client
    assert.equal(external.status, 'ready')
    await external.quit()
  })
  await a.ready()
  await b.ready()
  const exp = Date.now() + 10_000
  assert.equal(await a.checkAndInsert('shared', exp), 'ok')
  assert.equal(await b.checkAndInsert('shared', exp), 'replay')
  assert.equal(await b.checkAndInsert('shared2', exp), 'ok')
  assert.equal(await a.checkAndInsert('shared2', exp), 'replay')
})

test('two processes racing on the same nonces: each nonce is ok exactly once', async () => {
  const code = `
    import { RedisNonceStore } from ${srcModule('nonce/redis-nonce-store.js')}
    const s = new RedisNonceStore({ redis: process.env.URL, keyPrefix: process.env.PREFIX })
    await s.ready()
    const exp = Date.now() + 20000
    const oks = []
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => s.checkAndInsert('race' + i, exp)))
    results.forEach((r, i) => { if (r === 'ok') oks.push(i) })
    console.log(JSON.stringify(oks))
    await s.close()
  `
  const env = { URL: REDIS_URL, PREFIX: prefix }
  const [outA, outB] = await Promise.all([runChild(code, env), runChild(code, env)])
  const a = JSON.parse(outA) as number[]
  const b = JSON.parse(outB) as number[]
  assert.equal(a.length + b.length, 300)
  assert.deepEqual([...a, ...b].sort((x, y) => x - y), Array.from({ length: 300 }, (_, i) => i))
})

test('fails closed quickly when Redis is unreachable (closed port)', async (t) => {
  const port = await freePort() // nothing listens there
  const errors: Error[] = []
  const store = new RedisNonceStore({ redis: `redis://127.0.0.1:${port}`, keyPrefix: prefix, onError: (e) => errors.push(e) })
  t.after(() => store.close())
  await assertBusy(store.checkAndInsert('x', Date.now() + 1000), 2000)
  await assertBusy(store.ready(300), 2000)
  assert.ok(errors.length > 0, 'connection errors are reported through onError')
})

test('fails closed when Redis goes away, answers again when it is back', async (t) => {
  const srv = await startPrivateRedis()
  t.after(() => srv.stop())
  const store = new RedisNonceStore({ redis: srv.url, keyPrefix: prefix })
  t.after(() => store.close())
  await store.ready()
  assert.equal(await store.checkAndInsert('before', Date.now() + 10_000), 'ok')
  await srv.stop()
  await assertBusy(store.checkAndInsert('after', Date.now() + 10_000), 2000)
  await assertBusy(store.checkAndInsert('before', Date.now() + 10_000), 2000)
})

test('a Redis that does not answer in time → server_busy after the command timeout', async (t) => {
  const srv = await startPrivateRedis()
  t.after(() => srv.stop())
  const admin = new Redis(srv.url)
  t.after(() => admin.quit())
  const store = new RedisNonceStore({ redis: srv.url, keyPrefix: prefix })
  t.after(() => store.close())
  const plain = new Redis(srv.url) // caller's client without commandTimeout: the store's own guard applies
  t.after(() => plain.quit())
  const guarded = new RedisNonceStore({ redis: plain, keyPrefix: prefix, commandTimeoutMs: 300 })
  await store.ready()
  await guarded.ready()
  await admin.call('CLIENT', 'PAUSE', '1500', 'WRITE')
  const t0 = Date.now()
  await assertBusy(store.checkAndInsert('slow', Date.now() + 10_000), 1400)
  assert.ok(Date.now() - t0 >= 400, 'waited for the 500 ms command timeout')
  await assertBusy(guarded.checkAndInsert('slow2', Date.now() + 10_000), 1400)
  await new Promise((r) => setTimeout(r, 1600))
})

test('Redis OOM maps to full; live nonces are never evicted (noeviction)', async (t) => {
  const srv = await startPrivateRedis()
  t.after(() => srv.stop())
  const admin = new Redis(srv.url)
  t.after(() => admin.quit())
  const store = new RedisNonceStore({ redis: srv.url, keyPrefix: prefix })
  t.after(() => store.close())
  await store.ready()
  const used = Number(/^used_memory:(\d+)/m.exec(await admin.info('memory'))?.[1])
  assert.ok(used > 0)
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.config('SET', 'maxmemory', String(used + 256 * 1024))
  const exp = Date.now() + 60_000
  let inserted = 0
  let result: string = 'ok'
  while (result === 'ok' && inserted < 200_000) {
    result = await store.checkAndInsert(`fill-${inserted}-${'x'.repeat(40)}`, exp)
    if (result === 'ok') inserted++
  }
  assert.equal(result, 'full')
  assert.ok(inserted > 100)
  // Redis refuses every SET while out of memory, even for a key that exists: a live nonce then
  // answers 'full' (still refused, never 'ok'), and every one of them is still stored.
  const step = Math.ceil(inserted / 50)
  for (let i = 0; i < inserted; i += step) {
    assert.notEqual(await store.checkAndInsert(`fill-${i}-${'x'.repeat(40)}`, exp), 'ok')
    assert.equal(await admin.exists(`${prefix}n:fill-${i}-${'x'.repeat(40)}`), 1)
  }
  assert.equal(await admin.dbsize(), inserted + 1, 'every nonce, and the replay epoch')
  await admin.config('SET', 'maxmemory', '0')
  for (let i = 0; i < inserted; i += step) {
    assert.equal(await store.checkAndInsert(`fill-${i}-${'x'.repeat(40)}`, exp), 'replay')
  }
  assert.equal(await store.evictionPolicyWarning(), undefined)
  await admin.config('SET', 'maxmemory-policy', 'volatile-lru')
  assert.equal(await store.evictionPolicyWarning(), undefined, 'no maxmemory: nothing is evicted')
  await admin.config('SET', 'maxmemory', '1gb')
  assert.match((await store.evictionPolicyWarning()) ?? '', /volatile-lru.*noeviction/)
})

test('misuse throws TypeError/RangeError', async (t) => {
  assert.throws(() => new RedisNonceStore({ redis: 'http://x' }), TypeError)
  assert.throws(() => new RedisNonceStore({ redis: 42 as unknown as string }), TypeError)
  const store = new RedisNonceStore({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(() => store.close())
  await assert.rejects(store.checkAndInsert('', Date.now() + 1000), TypeError)
  await assert.rejects(store.checkAndInsert('a'.repeat(513), Date.now() + 1000), RangeError)
  await assert.rejects(store.checkAndInsert('a', Number.POSITIVE_INFINITY), TypeError)
})
