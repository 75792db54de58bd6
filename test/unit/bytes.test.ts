import { test } from 'node:test'
import assert from 'node:assert/strict'
import { b64u, fromB64u, constantTimeEqual } from '../../src/internal/bytes.js'
import { parseTimestamp, formatTimestamp } from '../../src/internal/clock.js'

test('base64url round-trips and rejects padding, other alphabets, non-canonical tails', () => {
  const bytes = Buffer.from([0, 1, 2, 250, 251, 255])
  assert.deepEqual(fromB64u(b64u(bytes)), bytes)
  assert.equal(fromB64u('AAE='), undefined)
  assert.equal(fromB64u('AA+/'), undefined)
  assert.equal(fromB64u('AAF'), undefined) // non-canonical trailing bits
  assert.equal(fromB64u('A'), undefined)
})

test('constantTimeEqual compares length and content', () => {
  assert.equal(constantTimeEqual(Buffer.from('ab'), Buffer.from('ab')), true)
  assert.equal(constantTimeEqual(Buffer.from('ab'), Buffer.from('ac')), false)
  assert.equal(constantTimeEqual(Buffer.from('ab'), Buffer.from('abc')), false)
})

test('timestamps are RFC 3339 UTC with milliseconds, strictly', () => {
  const ms = 1764139200123
  assert.equal(parseTimestamp(formatTimestamp(ms)), ms)
  assert.equal(parseTimestamp('2025-11-26T06:40:00Z'), undefined)
  assert.equal(parseTimestamp('2025-02-30T06:40:00.000Z'), undefined)
})
