/**
 * Live sessions seen by this process: session id → expiry, bounded (the oldest entry makes room),
 * swept when read. Holds session ids only (never tokens) and never exposes them.
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
      if (expiries.has(sessionId)) return
      if (expiries.size >= max) expiries.delete(expiries.keys().next().value as string)
      expiries.set(sessionId, expiresAt)
    },
    live(now = Date.now()) {
      for (const [id, exp] of expiries) if (exp <= now) expiries.delete(id)
      return expiries.size
    },
  }
}
