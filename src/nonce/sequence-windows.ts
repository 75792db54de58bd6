/**
 * Per-session sliding windows of request sequence numbers (as IPsec ESP and DTLS keep them):
 * the replay memory of request proofs in one process.
 *
 * Each session that made a request keeps its highest sequence number and a bitmap of the
 * {@link WINDOW} numbers at and below it. A number above the highest moves the window up; one
 * inside it is accepted once; one below it is refused (it may have been used, and nobody can tell).
 * Memory is per *active session*, not per request: about {@link BYTES_PER_SESSION} bytes for each
 * session that made a request in the last `2 × proof_window`, whatever the request rate. A window
 * is forgotten once every proof it accepted is outside the time window (`forgetAt`): a replay of
 * any of them is then refused by its timestamp. When `maxSessions` live windows exist, a new
 * session's first request gets `full` (the caller answers 503): a live window is never evicted.
 * @module
 */
import type { NonceResult } from './nonce-store.js'

/** Sequence numbers remembered below the highest one seen (reordering tolerated per session). */
export const WINDOW = 1024
const WORDS = WINDOW / 32
/** Approximate memory of one live window (bitmap, record, map entry and key). */
export const BYTES_PER_SESSION = 320

interface Window {
  high: number
  bits: Uint32Array
  /** After this instant (ms) no proof this window accepted can pass the time window any more. */
  forgetAt: number
}

export class SequenceWindows {
  private readonly windows = new Map<string, Window>()
  private lastSweep = 0

  constructor(
    readonly maxSessions: number,
    private readonly sweepEveryMs = 5_000,
  ) {
    if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) throw new RangeError('maxSessions must be a positive integer')
  }

  /**
   * Uses `sequence` of `session` once. `forgetAt`: the last instant a proof with this number could
   * still be accepted by its timestamp (t + window); the window lives at least that long.
   */
  check(session: string, sequence: number, forgetAt: number, now: number): NonceResult {
    if (now - this.lastSweep >= this.sweepEveryMs) this.sweep(now)
    let w = this.windows.get(session)
    if (w === undefined || w.forgetAt <= now) {
      if (w === undefined && this.windows.size >= this.maxSessions) {
        this.sweep(now)
        if (this.windows.size >= this.maxSessions) return 'full'
      }
      w = { high: sequence, bits: new Uint32Array(WORDS), forgetAt }
      setBit(w.bits, sequence)
      this.windows.set(session, w)
      return 'ok'
    }
    if (forgetAt > w.forgetAt) w.forgetAt = forgetAt
    if (sequence > w.high) {
      advance(w, sequence)
      setBit(w.bits, sequence)
      return 'ok'
    }
    if (w.high - sequence >= WINDOW) return 'replay'
    if (testBit(w.bits, sequence)) return 'replay'
    setBit(w.bits, sequence)
    return 'ok'
  }

  /** Live windows (sessions that made a request recently). */
  get size(): number {
    return this.windows.size
  }

  /** Drops windows whose every accepted proof is outside the time window. */
  sweep(now: number): void {
    this.lastSweep = now
    for (const [session, w] of this.windows) if (w.forgetAt <= now) this.windows.delete(session)
  }

  clear(): void {
    this.windows.clear()
  }
}

/** Moves the window's top to `sequence`, clearing the bits of the numbers skipped over. */
function advance(w: Window, sequence: number): void {
  const shift = sequence - w.high
  if (shift >= WINDOW) w.bits.fill(0)
  else for (let s = w.high + 1; s <= sequence; s++) clearBit(w.bits, s)
  w.high = sequence
}

function setBit(bits: Uint32Array, sequence: number): void {
  const i = sequence % WINDOW
  bits[i >>> 5]! |= 1 << (i & 31)
}

function clearBit(bits: Uint32Array, sequence: number): void {
  const i = sequence % WINDOW
  bits[i >>> 5]! &= ~(1 << (i & 31))
}

function testBit(bits: Uint32Array, sequence: number): boolean {
  const i = sequence % WINDOW
  return (bits[i >>> 5]! & (1 << (i & 31))) !== 0
}
