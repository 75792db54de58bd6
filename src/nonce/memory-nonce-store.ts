/**
 * In-process nonce store (the default). Synchronous and O(1) amortized per call.
 *
 * Entries live in a `Map<nonce, expiresAt>`. For cheap expiry, every entry is also appended to
 * a bucket of the wall-clock second it expires in; a small min-heap orders the buckets. Sweeping
 * pops whole buckets whose second has passed, so each entry is visited once when it expires —
 * never a scan of the whole map per insert. When the store is full after sweeping, it answers
 * `full` and records nothing: a live nonce is never evicted (docs/PROTOCOL.md, property 4).
 *
 * @module
 */

import { randomBytes } from 'node:crypto'
import { systemClock, type Clock } from '../internal/clock.js'
import { EPOCH_SIZE } from '../protocol/constants.js'
import type { NonceResult, NonceStore } from './nonce-store.js'
import { SequenceWindows } from './sequence-windows.js'

export interface InMemoryNonceStoreOptions {
  /** Maximum live entries; at this size new nonces get `full` until some expire. */
  maxEntries: number
  /** Milliseconds since the epoch; injected by tests. */
  clock?: Clock
  /** Background sweep period in ms (timer is unref'd); 0 = sweep only lazily on insert. Default 5000. */
  sweepIntervalMs?: number
  /** Most sessions with a live request window (default 100,000; see sequence-windows.ts). */
  maxSessions?: number
  /** The replay epoch (base64url of 8 bytes); default random. Inject only for reproducible vectors. */
  epoch?: string
}

/** Min-heap of bucket seconds (few distinct values: one per second of the TTL span). */
class SecondHeap {
  private readonly items: number[] = []

  get length(): number {
    return this.items.length
  }

  peek(): number | undefined {
    return this.items[0]
  }

  push(value: number): void {
    const a = this.items
    a.push(value)
    let i = a.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      const p = a[parent]!
      if (p <= value) break
      a[i] = p
      i = parent
    }
    a[i] = value
  }

  pop(): number | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length === 0 || last === undefined) return top
    let i = 0
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && a[r]! < a[l]! ? r : l
      if (a[c]! >= last) break
      a[i] = a[c]!
      i = c
    }
    a[i] = last
    return top
  }
}

/**
 * Bounded single-use nonce store kept in this process.
 *
 * @example
 * const store = new InMemoryNonceStore({ maxEntries: 100_000 })
 * store.checkAndInsert(nonce, Date.now() + 60_000) // 'ok', then 'replay'
 */
export class InMemoryNonceStore implements NonceStore {
  readonly maxEntries: number
  /** This memory's replay epoch: new in every process (docs/PROTOCOL.md §9). */
  private readonly epochText: string
  private readonly windows: SequenceWindows
  private readonly clock: Clock
  /** nonce → expiresAt - base: small integers stay V8 Smis (no boxed number per entry). */
  private readonly entries = new Map<string, number>()
  private readonly base: number
  private readonly buckets = new Map<number, string[]>()
  private readonly heap = new SecondHeap()
  /** The bucket inserted into last (most inserts share one expiry second): skips a map lookup. */
  private lastSecond = Number.NaN
  private lastBucket: string[] | undefined
  private timer: NodeJS.Timeout | undefined
  /** Clock value at the last exact sweep of the head bucket (throttles it to once per ms). */
  private lastFineSweep = Number.NaN

  constructor(options: InMemoryNonceStoreOptions) {
    const { maxEntries, clock = systemClock, sweepIntervalMs = 5000 } = options
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError('maxEntries must be a positive integer')
    }
    if (typeof clock !== 'function') throw new TypeError('clock must be a function')
    if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) {
      throw new RangeError('sweepIntervalMs must be a non-negative number')
    }
    this.maxEntries = maxEntries
    this.clock = clock
    this.epochText = options.epoch ?? randomBytes(EPOCH_SIZE).toString('base64url')
    this.windows = new SequenceWindows(options.maxSessions ?? 100_000)
    this.base = clock()
    if (sweepIntervalMs > 0) {
      this.timer = setInterval(() => this.sweep(), sweepIntervalMs)
      this.timer.unref()
    }
  }

  /**
   * Records `nonce` until `expiresAt` (ms since epoch) unless it is already recorded and live.
   * An entry is live while `now < expiresAt`. An `expiresAt` at or before now is kept for 1 ms,
   * so a caller bug can never turn the store into a no-op.
   * @throws TypeError on a non-string/empty nonce or a non-finite expiresAt.
   */
  /** This memory began when the store was made. */
  epochSince(): number {
    return this.base
  }

  epoch(): string {
    return this.epochText
  }

  /** Request sequence numbers: per-session windows (sequence-windows.ts), not one entry per request. */
  checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): NonceResult {
    if (epoch !== this.epochText) return 'stale'
    return this.windows.check(sessionId, sequence, forgetAt, this.clock())
  }

  /** Sessions with a live request window. */
  sessionWindows(): number {
    return this.windows.size
  }

  checkAndInsert(nonce: string, expiresAt: number, epoch?: string): NonceResult {
    if (epoch !== undefined && epoch !== this.epochText) return 'stale'
    if (typeof nonce !== 'string' || nonce.length === 0) throw new TypeError('nonce must be a non-empty string')
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
      throw new TypeError('expiresAt must be a finite number of ms since the epoch')
    }
    const now = this.clock()
    const existing = this.entries.get(nonce)
    if (existing !== undefined) {
      if (now - this.base < existing) return 'replay'
      // Expired entry: reuse its slot (the map does not grow). Its old bucket reference is
      // skipped at sweep time because the map then holds a later expiry.
    } else {
      this.sweepExpired(now)
      if (this.entries.size >= this.maxEntries) {
        this.sweepHeadBucket(now)
        if (this.entries.size >= this.maxEntries) return 'full'
      }
    }
    const exp = expiresAt > now ? expiresAt : now + 1
    this.entries.set(nonce, exp - this.base)
    this.addToBucket(nonce, exp)
    return 'ok'
  }

  /** Entries recorded and not yet swept (may include some expired within the current second). */
  size(): number {
    return this.entries.size
  }

  /** Removes every entry whose expiry has passed (exact). Called by the timer; safe to call anytime. */
  sweep(): void {
    const now = this.clock()
    this.windows.sweep(now)
    this.sweepExpired(now)
    this.lastFineSweep = Number.NaN
    this.sweepHeadBucket(now)
  }

  /** Stops the background timer and drops all entries. */
  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.entries.clear()
    this.windows.clear()
    this.buckets.clear()
    this.lastBucket = undefined
    while (this.heap.length > 0) this.heap.pop()
  }

  private addToBucket(nonce: string, exp: number): void {
    const second = Math.floor(exp / 1000)
    if (second === this.lastSecond && this.lastBucket !== undefined) {
      this.lastBucket.push(nonce)
      return
    }
    let bucket = this.buckets.get(second)
    if (bucket === undefined) {
      bucket = [nonce]
      this.buckets.set(second, bucket)
      this.heap.push(second)
    } else {
      bucket.push(nonce)
    }
    this.lastSecond = second
    this.lastBucket = bucket
  }

  /** Pops every bucket whose whole second lies in the past: all its entries are expired. */
  private sweepExpired(now: number): void {
    const current = Math.floor(now / 1000)
    for (;;) {
      const second = this.heap.peek()
      if (second === undefined || second >= current) return
      this.heap.pop()
      const bucket = this.buckets.get(second)
      this.buckets.delete(second)
      if (second === this.lastSecond) this.lastBucket = undefined
      if (bucket === undefined) continue
      const rel = now - this.base
      for (const nonce of bucket) {
        const exp = this.entries.get(nonce)
        if (exp !== undefined && exp <= rel) this.entries.delete(nonce)
      }
    }
  }

  /**
   * Exact sweep of the bucket of the current second (entries that expired a few ms ago).
   * Only needed when the store looks full; at most once per clock tick so a flood of refused
   * inserts costs no more than one bucket scan per millisecond.
   */
  private sweepHeadBucket(now: number): void {
    if (now === this.lastFineSweep) return
    this.lastFineSweep = now
    const second = this.heap.peek()
    if (second === undefined || second > Math.floor(now / 1000)) return
    const bucket = this.buckets.get(second)
    if (bucket === undefined) return
    const rel = now - this.base
    let kept = 0
    for (let i = 0; i < bucket.length; i++) {
      const nonce = bucket[i]!
      const exp = this.entries.get(nonce)
      if (exp === undefined) continue
      if (exp <= rel) {
        this.entries.delete(nonce)
        continue
      }
      bucket[kept++] = nonce
    }
    bucket.length = kept
  }
}
