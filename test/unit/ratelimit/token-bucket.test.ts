import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateLimiter } from '../../../src/ratelimit/token-bucket.js'

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('burst, then refusal, then refill at the configured rate', () => {
  const c = fakeClock()
  const rl = new RateLimiter({ ratePerSecond: 2, burst: 3, clock: c.now })
  assert.equal(rl.take('a'), true)
  assert.equal(rl.take('a'), true)
  assert.equal(rl.take('a'), true)
  assert.equal(rl.take('a'), false)
  assert.equal(rl.retryAfterSeconds('a'), 1)
  assert.equal(rl.take('b'), true, 'keys are independent')
  c.advance(499)
  assert.equal(rl.take('a'), false, '0.998 tokens is not enough')
  c.advance(1)
  assert.equal(rl.take('a'), true, 'one token after 500 ms at 2/s')
  assert.equal(rl.take('a'), false)
  c.advance(60_000)
  assert.equal(rl.retryAfterSeconds('a'), 0)
  for (let i = 0; i < 3; i++) assert.equal(rl.take('a'), true, 'refill caps at burst')
  assert.equal(rl.take('a'), false)
})

test('retryAfterSeconds rounds up with a slow rate', () => {
  const c = fakeClock()
  const rl = new RateLimiter({ ratePerSecond: 0.2, burst: 1, clock: c.now })
  assert.equal(rl.take('k'), true)
  assert.equal(rl.take('k'), false)
  assert.equal(rl.retryAfterSeconds('k'), 5)
  c.advance(4_001)
  assert.equal(rl.retryAfterSeconds('k'), 1)
  assert.equal(rl.retryAfterSeconds('unknown'), 0)
})

test('ratePerSecond 0 disables the limiter', () => {
  const rl = new RateLimiter({ ratePerSecond: 0, burst: 0 })
  for (let i = 0; i < 1000; i++) assert.equal(rl.take('x'), true)
  assert.equal(rl.size(), 0)
  assert.equal(rl.enabled, false)
  assert.equal(rl.retryAfterSeconds('x'), 0)
})

test('over maxKeys: full (idle) buckets are evicted, active ones are kept', () => {
  const c = fakeClock()
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 2, maxKeys: 3, clock: c.now })
  assert.equal(rl.take('idle'), true)
  c.advance(5_000) // 'idle' is full again
  assert.equal(rl.take('busy1'), true)
  assert.equal(rl.take('busy1'), true)
  assert.equal(rl.take('busy2'), true)
  assert.equal(rl.size(), 3)
  assert.equal(rl.take('new'), true, 'evicts the full bucket')
  assert.equal(rl.size(), 3)
  assert.equal(rl.take('busy1'), false, 'busy1 kept its state (empty)')
  // nothing is full now, and a sweep ran < 1 s ago: a new key is refused, not tracked
  assert.equal(rl.take('another'), false)
  assert.equal(rl.retryAfterSeconds('another'), 1)
  assert.equal(rl.size(), 3)
  c.advance(2_000) // everything refilled
  assert.equal(rl.take('another'), true)
})

test('a clock stepping backwards does not mint tokens', () => {
  const c = fakeClock()
  const rl = new RateLimiter({ ratePerSecond: 1, burst: 1, clock: c.now })
  assert.equal(rl.take('k'), true)
  c.advance(-10_000)
  assert.equal(rl.take('k'), false)
  c.advance(10_000)
  assert.equal(rl.take('k'), false, 'no credit for the time that was stepped back')
  c.advance(1_000)
  assert.equal(rl.take('k'), true)
})

test('misuse throws RangeError', () => {
  assert.throws(() => new RateLimiter({ ratePerSecond: -1, burst: 1 }), RangeError)
  assert.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 0 }), RangeError)
  assert.throws(() => new RateLimiter({ ratePerSecond: Number.NaN, burst: 1 }), RangeError)
  assert.throws(() => new RateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 0 }), RangeError)
})
