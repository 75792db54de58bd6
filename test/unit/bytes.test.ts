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

test('formatTimestamp (cached second prefixes) equals Date#toISOString everywhere', () => {
  const samples = [0, 1, 999, 1000, 1764150000000, 1764150000999, 1764150001000, 253402300799999, 253402300800000, -1, 1.5]
  for (let i = 0; i < 20000; i++) samples.push(Math.floor(Math.random() * 253402300799999))
  // alternating seconds (now, now + TTL) as the handshake does, and back
  for (let i = 0; i < 3000; i++) samples.push(1764150000000 + i * 7, 1764150060000 + i * 7, 1764150000000 + i * 333)
  for (const ms of samples) assert.equal(formatTimestamp(ms), new Date(ms).toISOString(), String(ms))
})
