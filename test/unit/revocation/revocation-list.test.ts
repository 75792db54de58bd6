import { test } from 'node:test'
import assert from 'node:assert/strict'
import { InMemoryRevocationList } from '../../../src/revocation/revocation-list.js'

const FP = 'ab'.repeat(32)
const FP2 = 'cd'.repeat(32)

test('revoke / unrevoke a key; fingerprints are normalized to lowercase', async () => {
  const list = new InMemoryRevocationList({ sweepIntervalMs: 0 })
  assert.equal(list.isRevoked(FP), false)
  await list.revoke(FP.toUpperCase(), 'stolen laptop')
  assert.equal(list.isRevoked(FP), true)
  assert.equal(list.isRevoked(FP2), false)
  assert.deepEqual(list.list().map((i) => [i.fingerprint, i.reason]), [[FP, 'stolen laptop']])
  await list.unrevoke(FP)
  assert.equal(list.isRevoked(FP), false)
  assert.deepEqual(list.list(), [])
  list.close()
})

test('session revocation lasts until its expiry (exact boundary)', async () => {
  let now = 1_700_000_000_000
  const list = new InMemoryRevocationList({ clock: () => now, sweepIntervalMs: 0 })
  await list.revokeSession('sess-1', now + 1000)
  assert.equal(list.isSessionRevoked('sess-1'), true)
  assert.equal(list.isSessionRevoked('sess-2'), false)
  now += 999
  assert.equal(list.isSessionRevoked('sess-1'), true)
  now += 1
  assert.equal(list.isSessionRevoked('sess-1'), false)
  assert.equal(list.sessionCount(), 0)
  await list.revokeSession('old', now - 1) // already over: nothing to keep
  assert.equal(list.sessionCount(), 0)
  list.close()
})

test('misuse throws TypeError', async () => {
  const list = new InMemoryRevocationList({ sweepIntervalMs: 0 })
  await assert.rejects(async () => list.revoke('not-hex'), TypeError)
  await assert.rejects(async () => list.revoke(FP, 'x'.repeat(2000)), TypeError)
  await assert.rejects(async () => list.revokeSession('', Date.now() + 1), TypeError)
  await assert.rejects(async () => list.revokeSession('s', Number.NaN), TypeError)
  list.close()
})
