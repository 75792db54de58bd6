/**
 * The replay memory: single-use handshake nonces and request sequence numbers. A store never
 * evicts a live entry: when full it answers `full` and the caller refuses with `server_busy`
 * (fail closed).
 *
 * Every store has a **replay epoch**: 8 random bytes (base64url) naming one life of its memory.
 * A store whose memory begins empty (a new process, a Redis that restarted or was flushed) has a
 * new epoch, and refuses as `stale` everything issued under another one: a challenge sealed before
 * (message 3 carries it back) or a request proof naming the old epoch. Nothing whose single use
 * was decided before the memory began can be accepted again (docs/PROTOCOL.md §9).
 * @module
 */

export type NonceResult = 'ok' | 'replay' | 'full' | 'stale'

export interface NonceStore {
  /** The current replay epoch (base64url of 8 bytes). */
  epoch(): string
  /**
   * How far the clocks of the processes sharing this memory may disagree, ms (a Redis fleet's
   * `auth.fleet_clock_skew`); absent or 0 when one clock judges everything.
   */
  readonly sharedClockSkewMs?: number
  /**
   * When the memory of the current epoch began (ms, this process's clock), if the store knows;
   * a verifier that is not told takes the moment it first saw the epoch (later, so stricter).
   */
  epochSince?(): number
  /**
   * Atomically records handshake `nonce` until `expiresAt` (ms since epoch) unless it is already
   * there. `ok`: first use. `replay`: seen before and not yet expired. `full`: no room; nothing
   * recorded. `stale`: `epoch` (default: the current one) is not this memory's epoch.
   */
  checkAndInsert(nonce: string, expiresAt: number, epoch?: string): NonceResult | Promise<NonceResult>
  /**
   * Uses request `sequence` of session `sessionId` once, under `epoch`. `forgetAt`: the last
   * instant (ms) this proof could still pass the time window; the store remembers it at least
   * that long (a shared store adds the fleet's allowed clock skew).
   */
  checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): NonceResult | Promise<NonceResult>
  /** Live entries (approximate for shared stores). */
  size(): number | Promise<number>
  close?(): Promise<void> | void
}
