/**
 * Single-use nonces. A store never evicts a live entry: when full it answers `full` and the
 * caller refuses with `server_busy` (fail closed).
 * @module
 */

export type NonceResult = 'ok' | 'replay' | 'full'

export interface NonceStore {
  /**
   * Atomically records `nonce` until `expiresAt` (ms since epoch) unless it is already there.
   * `ok`: first use. `replay`: seen before and not yet expired. `full`: no room; nothing recorded.
   */
  checkAndInsert(nonce: string, expiresAt: number): NonceResult | Promise<NonceResult>
  /** Live entries (approximate for shared stores). */
  size(): number | Promise<number>
  close?(): Promise<void> | void
}
