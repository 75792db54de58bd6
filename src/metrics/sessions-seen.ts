/**
 * Live sessions seen by this process: session id → expiry, swept when read. Bounded: once `max`
 * sessions are live, more are not remembered until some expire (the count saturates at `max`;
 * evicting instead would cost a walk over deleted map slots on every new session). Holds session ids only (never tokens) and never exposes them.
 * @module
 */

export interface SessionsSeen {
  saw(sessionId: string, expiresAt: number): void
  /** Sessions seen that have not expired (expired ones are forgotten). */
  live(now?: number): number
}

export function createSessionsSeen(max: number): SessionsSeen {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('maxSessionsSeen must be a positive integer')
  const expiries = new Map<string, number>()
  return {
    saw(sessionId, expiresAt) {
      if (expiries.size >= max || expiries.has(sessionId)) return
      expiries.set(sessionId, expiresAt)
    },
    live(now = Date.now()) {
      for (const [id, exp] of expiries) if (exp <= now) expiries.delete(id)
      return expiries.size
    },
  }
}
