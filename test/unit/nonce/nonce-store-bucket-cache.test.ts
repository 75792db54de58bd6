/**
 * InMemoryNonceStore remembers the bucket it inserted into last. Entries interleaved across
 * expiry seconds, and buckets swept and recreated, must still expire exactly and replays of live
 * entries must still be refused.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'

test('interleaved expiry seconds: every entry expires at its own time, live ones stay single-use', () => {
  let now = 1_000_000
  const store = new InMemoryNonceStore({ maxEntries: 1000, clock: () => now, sweepIntervalMs: 0 })
  // A, B share second 1005; C is in 1007; D back in 1005 (lands in the earlier bucket, not the last one)
  assert.equal(store.checkAndInsert('A', 1_005_100), 'ok')
  assert.equal(store.checkAndInsert('B', 1_005_200), 'ok')
  assert.equal(store.checkAndInsert('C', 1_007_000), 'ok')
  assert.equal(store.checkAndInsert('D', 1_005_300), 'ok')
  assert.equal(store.checkAndInsert('E', 1_007_500), 'ok')
  for (const n of ['A', 'B', 'C', 'D', 'E']) assert.equal(store.checkAndInsert(n, now + 60_000), 'replay')
  now = 1_006_000 // second 1005 has passed: A, B, D swept; C, E live
  store.sweep()
  assert.equal(store.size(), 2)
  for (const n of ['C', 'E']) assert.equal(store.checkAndInsert(n, now + 60_000), 'replay')
  // new entries in the current second after its predecessor was swept
  assert.equal(store.checkAndInsert('F', 1_006_500), 'ok')
  assert.equal(store.checkAndInsert('A', 1_006_600), 'ok') // A expired: usable again
  assert.equal(store.checkAndInsert('A', 1_006_600), 'replay')
  now = 1_008_000
  assert.equal(store.checkAndInsert('G', 1_009_000), 'ok')
  assert.equal(store.size(), 1)
  now = 1_010_000
  store.sweep()
  assert.equal(store.size(), 0)
  store.close()
})

test('close() then reuse: inserts after close are tracked and expire', () => {
  let now = 5_000
  const store = new InMemoryNonceStore({ maxEntries: 10, clock: () => now, sweepIntervalMs: 0 })
  assert.equal(store.checkAndInsert('x', 6_000), 'ok')
  store.close()
  assert.equal(store.size(), 0)
  assert.equal(store.checkAndInsert('y', 6_100), 'ok')
  assert.equal(store.checkAndInsert('z', 6_200), 'ok')
  assert.equal(store.checkAndInsert('y', 6_100), 'replay')
  now = 7_000
  store.sweep()
  assert.equal(store.size(), 0)
})
