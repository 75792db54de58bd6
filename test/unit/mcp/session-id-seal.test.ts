import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createSessionIdSealer, MAX_UPSTREAM_SESSION_ID } from '../../../src/mcp/session-id-seal.js'

const fpA = 'a'.repeat(64)
const fpB = 'b'.repeat(64)

test('a sealed session id opens for its key only, under the same root key only', () => {
  const root = randomBytes(32)
  const sealer = createSessionIdSealer(root)
  const upstream = '6f1c1e7e-2b1a-4f5e-9a55-0d5f8f3f3c11'
  const sealed = sealer.seal(upstream, fpA)
  assert.match(sealed, /^g1\.[A-Za-z0-9_-]+$/)
  assert.ok(!sealed.includes(upstream))
  assert.equal(sealer.open(sealed, fpA), upstream)
  assert.equal(createSessionIdSealer(Buffer.from(root)).open(sealed, fpA), upstream, 'another gateway with the same key')
  assert.equal(sealer.open(sealed, fpB), undefined, 'another key')
  assert.equal(createSessionIdSealer(randomBytes(32)).open(sealed, fpA), undefined, 'another root key')
  assert.notEqual(sealer.seal(upstream, fpA), sealed, 'a fresh salt each time')
})

test('edited, truncated, oversized and malformed ids are refused', () => {
  const sealer = createSessionIdSealer(randomBytes(32))
  const sealed = sealer.seal('x'.repeat(MAX_UPSTREAM_SESSION_ID), fpA)
  assert.equal(sealer.open(sealed, fpA), 'x'.repeat(MAX_UPSTREAM_SESSION_ID))
  const raw = Buffer.from(sealed.slice(3), 'base64url')
  for (let i = 0; i < raw.length; i += 17) {
    const edited = Buffer.from(raw)
    edited[i]! ^= 1
    assert.equal(sealer.open(`g1.${edited.toString('base64url')}`, fpA), undefined, `byte ${i} flipped`)
  }
  for (const bad of [sealed.slice(0, 40), `${sealed}A`.repeat(2), `g1.${'A'.repeat(10_000)}`, 'g1.', 'g2.' + sealed.slice(3), 'g1.a+b/c=', '', ' ' + sealed]) {
    assert.equal(sealer.open(bad, fpA), undefined, bad.slice(0, 30))
  }
  assert.throws(() => sealer.seal('x'.repeat(MAX_UPSTREAM_SESSION_ID + 1), fpA), RangeError)
  assert.throws(() => sealer.seal('has space', fpA), RangeError)
  assert.throws(() => createSessionIdSealer(randomBytes(16)), RangeError)
})
