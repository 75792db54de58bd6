/**
 * Token-bucket rate limiter keyed by a string (remote address, client fingerprint).
 * O(1) per call; bounded memory.
 *
 * A bucket holds up to `burst` tokens and refills at `ratePerSecond`. When the table reaches
 * `maxKeys`, buckets that have refilled completely are dropped (a full bucket behaves exactly
 * like a new one, so dropping it loses nothing). If no bucket is full — every tracked key has
 * been active within the last `burst / ratePerSecond` seconds — a new key is refused rather than
 * letting a flood of fresh keys push out the state of the keys being limited. That sweep runs
 * at most once per second, so its O(maxKeys) cost is amortized.
 *
 * @module
 */

import { systemClock, type Clock } from '../internal/clock.js'

export interface RateLimiterOptions {
  /** Tokens added per second; 0 disables the limiter (`take` always true). */
  ratePerSecond: number
  /** Bucket capacity: requests allowed back to back. At least 1 when enabled. */
  burst: number
  /** Keys tracked at most. Default 100 000. */
  maxKeys?: number
  clock?: Clock
}

interface Bucket {
  tokens: number
  /** Clock value at the last refill. */
  at: number
}

const SWEEP_MIN_INTERVAL_MS = 1000

/**
 * @example
 * const perAddress = new RateLimiter({ ratePerSecond: 10, burst: 20 })
 * if (!perAddress.take(remoteAddress)) {
 *   throw new AuthError('rate_limited', 'too many handshakes', { retryAfter: perAddress.retryAfterSeconds(remoteAddress) })
 * }
 */
export class RateLimiter {
  readonly ratePerSecond: number
  readonly burst: number
  readonly maxKeys: number
  private readonly perMs: number
  private readonly clock: Clock
  private readonly buckets = new Map<string, Bucket>()
  private lastSweep = Number.NEGATIVE_INFINITY

  constructor(options: RateLimiterOptions) {
    const { ratePerSecond, burst, maxKeys = 100_000, clock = systemClock } = options
    if (typeof ratePerSecond !== 'number' || !Number.isFinite(ratePerSecond) || ratePerSecond < 0) {
      throw new RangeError('ratePerSecond must be a finite number >= 0')
    }
    if (ratePerSecond > 0 && (typeof burst !== 'number' || !Number.isFinite(burst) || burst < 1)) {
      throw new RangeError('burst must be a finite number >= 1')
    }
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new RangeError('maxKeys must be a positive integer')
    if (typeof clock !== 'function') throw new TypeError('clock must be a function')
    this.ratePerSecond = ratePerSecond
    this.burst = burst
    this.maxKeys = maxKeys
    this.perMs = ratePerSecond / 1000
    this.clock = clock
  }

  /** True when the limiter is on (ratePerSecond > 0). */
  get enabled(): boolean {
    return this.ratePerSecond > 0
  }

  /** Takes one token for `key`; false = over the limit (or the key table is saturated). */
  take(key: string): boolean {
    if (this.ratePerSecond === 0) return true
    const now = this.clock()
    const bucket = this.buckets.get(key)
    if (bucket === undefined) {
      if (this.buckets.size >= this.maxKeys) {
        this.sweep(now)
        if (this.buckets.size >= this.maxKeys) return false
      }
      this.buckets.set(key, { tokens: this.burst - 1, at: now })
      return true
    }
    this.refill(bucket, now)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return true
    }
    return false
  }

  /** Whole seconds until `key` may take a token again; 0 if it may now. */
  retryAfterSeconds(key: string): number {
    if (this.ratePerSecond === 0) return 0
    const bucket = this.buckets.get(key)
    if (bucket === undefined) return this.buckets.size >= this.maxKeys ? 1 : 0
    this.refill(bucket, this.clock())
    if (bucket.tokens >= 1) return 0
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.ratePerSecond))
  }

  /** Keys currently tracked. */
  size(): number {
    return this.buckets.size
  }

  /** Forgets every key. */
  clear(): void {
    this.buckets.clear()
    this.lastSweep = Number.NEGATIVE_INFINITY
  }

  private refill(bucket: Bucket, now: number): void {
    const elapsed = now - bucket.at
    if (elapsed > 0) {
      const tokens = bucket.tokens + elapsed * this.perMs
      bucket.tokens = tokens < this.burst ? tokens : this.burst
      bucket.at = now // only forward: a clock stepping back must not mint tokens later
    }
  }

  /** Drops every bucket that has refilled completely. At most once per second. */
  private sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_MIN_INTERVAL_MS) return
    this.lastSweep = now
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.at) * this.perMs >= this.burst) this.buckets.delete(key)
    }
  }
}
