/**
 * Revocation of client keys (by fingerprint) and of single sessions (by session id).
 *
 * The per-request checks `isRevoked` / `isSessionRevoked` are synchronous Map/Set lookups with
 * no allocation. Changes are asynchronous so a shared implementation
 * ({@link RedisRevocationList}) can publish them to every server process.
 *
 * @module
 */

import { systemClock, type Clock } from '../internal/clock.js'

export interface RevocationInfo {
  fingerprint: string
  reason: string | undefined
  /** ms since the epoch. */
  revokedAt: number
}

export interface RevocationList {
  /** True when the key with this fingerprint (lowercase hex SHA-256) is revoked. Sync, O(1). */
  isRevoked(fingerprint: string): boolean
  /** True when this session id was revoked and its revocation has not yet expired. Sync, O(1). */
  isSessionRevoked(sessionId: string): boolean
  /**
   * When the last revocation of this key that has since been lifted (unrevoke) began, ms since the
   * epoch; undefined when there is none. Sessions that began before it stay refused: lifting a
   * revocation lets the key authenticate again, it does not revive what was cut off.
   */
  liftedRevocationAt(fingerprint: string): number | undefined
  /** Revokes a key everywhere this list is shared. */
  revoke(fingerprint: string, reason?: string): Promise<void>
  unrevoke(fingerprint: string): Promise<void>
  /** Revokes one session until `expiresAt` (ms since epoch; pass the session's own expiry). */
  revokeSession(sessionId: string, expiresAt: number): Promise<void>
  /** Revoked keys with their reasons. */
  list(): RevocationInfo[]
  close(): Promise<void> | void
}

const FINGERPRINT = /^[0-9a-fA-F]{64}$/
const MAX_SESSION_ID = 256
const MAX_REASON = 1024

/** Validates and lowercases a hex SHA-256 fingerprint. @throws TypeError */
export function normalizeFingerprint(fingerprint: string): string {
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) {
    throw new TypeError('fingerprint must be 64 hex characters (SHA-256 of the raw public key)')
  }
  return fingerprint.toLowerCase()
}

export function checkSessionId(sessionId: string): void {
  if (typeof sessionId !== 'string' || sessionId.length === 0 || sessionId.length > MAX_SESSION_ID) {
    throw new TypeError(`sessionId must be a non-empty string of at most ${MAX_SESSION_ID} characters`)
  }
}

export function checkReason(reason: string | undefined): void {
  if (reason !== undefined && (typeof reason !== 'string' || reason.length > MAX_REASON)) {
    throw new TypeError(`reason must be a string of at most ${MAX_REASON} characters`)
  }
}

export function checkExpiresAt(expiresAt: number): void {
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
    throw new TypeError('expiresAt must be a finite number of ms since the epoch')
  }
}

export interface InMemoryRevocationListOptions {
  clock?: Clock
  /** Period of the (unref'd) sweep of expired session revocations; 0 = lazy only. Default 30 000. */
  sweepIntervalMs?: number
}

/**
 * Revocations kept in this process only (lost at restart; one process).
 *
 * @example
 * const revocations = new InMemoryRevocationList()
 * await revocations.revoke(fingerprint, 'laptop stolen')
 * revocations.isRevoked(fingerprint) // true
 */
export class InMemoryRevocationList implements RevocationList {
  private readonly clock: Clock
  private revoked = new Map<string, RevocationInfo>()
  private sessions = new Map<string, number>()
  private lifted = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined

  constructor(options: InMemoryRevocationListOptions = {}) {
    const { clock = systemClock, sweepIntervalMs = 30_000 } = options
    if (typeof clock !== 'function') throw new TypeError('clock must be a function')
    if (!Number.isFinite(sweepIntervalMs) || sweepIntervalMs < 0) {
      throw new RangeError('sweepIntervalMs must be a non-negative number')
    }
    this.clock = clock
    if (sweepIntervalMs > 0) {
      this.timer = setInterval(() => this.sweepSessions(), sweepIntervalMs)
      this.timer.unref()
    }
  }

  isRevoked(fingerprint: string): boolean {
    return this.revoked.has(fingerprint)
  }

  liftedRevocationAt(fingerprint: string): number | undefined {
    return this.lifted.get(fingerprint)
  }

  isSessionRevoked(sessionId: string): boolean {
    const exp = this.sessions.get(sessionId)
    if (exp === undefined) return false
    if (this.clock() < exp) return true
    this.sessions.delete(sessionId)
    return false
  }

  revoke(fingerprint: string, reason?: string): Promise<void> {
    const fp = normalizeFingerprint(fingerprint)
    checkReason(reason)
    this.applyRevoke(fp, reason, this.clock())
    return Promise.resolve()
  }

  unrevoke(fingerprint: string): Promise<void> {
    this.applyUnrevoke(normalizeFingerprint(fingerprint))
    return Promise.resolve()
  }

  revokeSession(sessionId: string, expiresAt: number): Promise<void> {
    checkSessionId(sessionId)
    checkExpiresAt(expiresAt)
    this.applyRevokeSession(sessionId, expiresAt)
    return Promise.resolve()
  }

  list(): RevocationInfo[] {
    return [...this.revoked.values()].map((info) => ({ ...info }))
  }

  /** Revoked sessions not yet expired. */
  sessionCount(): number {
    this.sweepSessions()
    return this.sessions.size
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** @internal Used by shared implementations to apply a change seen elsewhere. */
  applyRevoke(fingerprint: string, reason: string | undefined, revokedAt: number): void {
    this.revoked.set(fingerprint, { fingerprint, reason, revokedAt })
  }

  /**
   * @internal `revokedAt`: when the lifted revocation began (this list's record when not given). A
   * revocation of unknown start (no usable time) is marked as lifted now: nothing before it revives.
   */
  applyUnrevoke(fingerprint: string, revokedAt?: number): void {
    const known = this.revoked.get(fingerprint)
    let at = revokedAt ?? known?.revokedAt
    if (known !== undefined && (at === undefined || !Number.isFinite(at) || at <= 0)) at = this.clock()
    this.revoked.delete(fingerprint)
    if (at !== undefined && Number.isFinite(at) && at > 0 && at > (this.lifted.get(fingerprint) ?? 0)) this.lifted.set(fingerprint, at)
  }

  /** @internal When the revocation of a revoked key began (undefined when not revoked). */
  revokedAt(fingerprint: string): number | undefined {
    return this.revoked.get(fingerprint)?.revokedAt
  }

  /** @internal */
  applyRevokeSession(sessionId: string, expiresAt: number): void {
    if (expiresAt <= this.clock()) return
    const current = this.sessions.get(sessionId)
    if (current === undefined || current < expiresAt) this.sessions.set(sessionId, expiresAt)
  }

  /** @internal Replaces everything (a full reload from the shared store). */
  replaceAll(revoked: Iterable<RevocationInfo>, sessions: Iterable<readonly [string, number]>, lifted: Iterable<readonly [string, number]> = []): void {
    const nextRevoked = new Map<string, RevocationInfo>()
    for (const info of revoked) nextRevoked.set(info.fingerprint, info)
    // Lifted revocations are only ever added to (a reload must not revive a session either).
    for (const [fp, at] of lifted) if (at > (this.lifted.get(fp) ?? 0)) this.lifted.set(fp, at)
    const now = this.clock()
    const nextSessions = new Map<string, number>()
    for (const [id, exp] of sessions) if (exp > now) nextSessions.set(id, exp)
    this.revoked = nextRevoked
    this.sessions = nextSessions
  }

  private sweepSessions(): void {
    const now = this.clock()
    for (const [id, exp] of this.sessions) if (exp <= now) this.sessions.delete(id)
  }
}
