import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'

function fakeClock(start = 1_700_000_000_000): { now: () => number; set: (t: number) => void; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, set: (v) => { t = v }, advance: (ms) => { t += ms } }
}

test('first use is ok, second use is replay', () => {
  const c = fakeClock()
  const store = new InMemoryNonceStore({ maxEntries: 10, clock: c.now, sweepIntervalMs: 0 })
  assert.equal(store.checkAndInsert('abc', c.now() + 60_000), 'ok')
  assert.equal(store.checkAndInsert('abc', c.now() + 60_000), 'replay')
  assert.equal(store.checkAndInsert('abd', c.now() + 60_000), 'ok')
  assert.equal(store.size(), 2)
  store.close()
})

test('exact expiry boundary: expiresAt-1 is replay, expiresAt is expired and reusable', () => {
  const c = fakeClock()
  const exp = c.now() + 5_000
  const store = new InMemoryNonceStore({ maxEntries: 10, clock: c.now, sweepIntervalMs: 0 })
  assert.equal(store.checkAndInsert('n', exp), 'ok')
  c.set(exp - 1)
  assert.equal(store.checkAndInsert('n', exp + 10_000), 'replay')
  c.set(exp)
  assert.equal(store.checkAndInsert('n', exp + 10_000), 'ok')
  // re-inserted with the new expiry: live again
  c.set(exp + 9_999)
  assert.equal(store.checkAndInsert('n', exp + 20_000), 'replay')
  store.close()
})

test('full store answers full and never evicts a live nonce', () => {
  const c = fakeClock()
  const max = 1000
  const store = new InMemoryNonceStore({ maxEntries: max, clock: c.now, sweepIntervalMs: 0 })
  for (let i = 0; i < max; i++) {
    // spread expiries over several seconds so several buckets exist
    assert.equal(store.checkAndInsert(`n${i}`, c.now() + 10_000 + i * 7), 'ok')
  }
  assert.equal(store.size(), max)
  assert.equal(store.checkAndInsert('newcomer', c.now() + 10_000), 'full')
  assert.equal(store.checkAndInsert('newcomer', c.now() + 10_000), 'full', 'full records nothing')
  c.advance(9_999)
  assert.equal(store.checkAndInsert('newcomer2', c.now() + 10_000), 'full')
  for (let i = 0; i < max; i++) assert.equal(store.checkAndInsert(`n${i}`, c.now() + 10_000), 'replay', `n${i}`)
  assert.equal(store.size(), max)
  store.close()
})

test('after expiry there is room again (including within the same second)', () => {
  const c = fakeClock(1_700_000_000_000) // a whole second
  const store = new InMemoryNonceStore({ maxEntries: 3, clock: c.now, sweepIntervalMs: 0 })
  assert.equal(store.checkAndInsert('a', c.now() + 100), 'ok')
  assert.equal(store.checkAndInsert('b', c.now() + 200), 'ok')
  assert.equal(store.checkAndInsert('c', c.now() + 5_000), 'ok')
  assert.equal(store.checkAndInsert('d', c.now() + 5_000), 'full')
  c.advance(100) // 'a' expired, same wall-clock second as its bucket
  assert.equal(store.checkAndInsert('d', c.now() + 5_000), 'ok')
  assert.equal(store.checkAndInsert('e', c.now() + 5_000), 'full')
  assert.equal(store.checkAndInsert('b', c.now() + 5_000), 'replay')
  c.advance(2_000) // 'b' expired in an earlier second: coarse sweep
  assert.equal(store.checkAndInsert('e', c.now() + 5_000), 'ok')
  assert.equal(store.size(), 3)
  assert.equal(store.checkAndInsert('c', c.now() + 5_000), 'replay')
  assert.equal(store.checkAndInsert('d', c.now() + 5_000), 'replay')
  store.close()
})

test('an expired entry is overwritten even when the store is full', () => {
  const c = fakeClock()
  const store = new InMemoryNonceStore({ maxEntries: 2, clock: c.now, sweepIntervalMs: 0 })
  assert.equal(store.checkAndInsert('a', c.now() + 10), 'ok')
  assert.equal(store.checkAndInsert('b', c.now() + 10_000), 'ok')
  c.advance(10)
  assert.equal(store.checkAndInsert('a', c.now() + 10_000), 'ok')
  assert.equal(store.checkAndInsert('a', c.now() + 10_000), 'replay')
  // stale bucket reference to the first 'a' must not delete the new live 'a'
  c.advance(3_000)
  store.sweep()
  assert.equal(store.checkAndInsert('a', c.now() + 10_000), 'replay')
  assert.equal(store.size(), 2)
  store.close()
})

test('sweep removes expired entries; an expiry in the past is still recorded briefly', () => {
  const c = fakeClock()
  const store = new InMemoryNonceStore({ maxEntries: 100, clock: c.now, sweepIntervalMs: 0 })
  for (let i = 0; i < 50; i++) store.checkAndInsert(`x${i}`, c.now() + 1_000 + i * 100)
  assert.equal(store.size(), 50)
  c.advance(3_500)
  store.sweep()
  assert.equal(store.size(), 24) // i = 0..25 expire at or before +3500
  assert.equal(store.checkAndInsert('past', c.now() - 5), 'ok')
  assert.equal(store.checkAndInsert('past', c.now() - 5), 'replay')
  c.advance(1)
  assert.equal(store.checkAndInsert('past', c.now() + 1000), 'ok')
  store.close()
})

test('randomized model check against a naive store', () => {
  const c = fakeClock()
  const max = 50
  const store = new InMemoryNonceStore({ maxEntries: max, clock: c.now, sweepIntervalMs: 0 })
  const model = new Map<string, number>()
  let seed = 42
  const rnd = (n: number): number => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n }
  for (let step = 0; step < 20_000; step++) {
    c.advance(rnd(40))
    const now = c.now()
    const nonce = `k${rnd(120)}`
    const exp = now + 1 + rnd(3000)
    for (const [k, v] of model) if (v <= now) model.delete(k)
    let expected: string
    const m = model.get(nonce)
    if (m !== undefined) expected = 'replay'
    else if (model.size >= max) expected = 'full'
    else { expected = 'ok'; model.set(nonce, exp) }
    assert.equal(store.checkAndInsert(nonce, exp), expected, `step ${step}`)
  }
  store.close()
})

test('misuse throws TypeError/RangeError', () => {
  assert.throws(() => new InMemoryNonceStore({ maxEntries: 0 }), RangeError)
  assert.throws(() => new InMemoryNonceStore({ maxEntries: 1.5 }), RangeError)
  const store = new InMemoryNonceStore({ maxEntries: 5, sweepIntervalMs: 0 })
  assert.throws(() => store.checkAndInsert('', Date.now() + 1000), TypeError)
  assert.throws(() => store.checkAndInsert('a', Number.NaN), TypeError)
  assert.throws(() => store.checkAndInsert(1 as unknown as string, Date.now() + 1000), TypeError)
  store.close()
})

test('checkAndInsert is synchronous', () => {
  const store = new InMemoryNonceStore({ maxEntries: 5 })
  const r = store.checkAndInsert('sync', Date.now() + 1000)
  assert.equal(typeof r, 'string')
  store.close()
})

test('createNonceStore builds the configured store', async () => {
  const { createNonceStore, isSyncNonceStore, RedisNonceStore } = await import('../../../src/nonce/index.js')
  const mem = createNonceStore({ type: 'memory', url: '', key_prefix: 'x:' }, { maxEntries: 2 })
  assert.ok(mem instanceof InMemoryNonceStore)
  assert.equal(mem.maxEntries, 2)
  assert.equal(isSyncNonceStore(mem), true)
  mem.close()
  const redis = createNonceStore({ type: 'redis', url: 'redis://127.0.0.1:1', key_prefix: 'x:' }, { maxEntries: 2, onError: () => undefined })
  assert.ok(redis instanceof RedisNonceStore)
  assert.equal(isSyncNonceStore(redis), false)
  await redis.close()
  assert.throws(() => createNonceStore({ type: 'disk' as 'memory', url: '', key_prefix: '' }, { maxEntries: 1 }), TypeError)
})
