/**
 * Revocations shared by every server process through Redis.
 *
 * Redis holds the truth: a SET `<prefix>revoked` of fingerprints (reasons in the HASH
 * `<prefix>revoked-info`) and a sorted set `<prefix>revoked-sessions` (session id, score = expiry).
 * Unrevoking keeps the key's info record, marked `lifted`, with the revocation's start: sessions
 * that began before it stay refused in every process, also after restarts. Revocation times are
 * Redis's clock (TIME), whichever machine revokes.
 * Each process keeps a local copy, so `isRevoked` / `isSessionRevoked` stay synchronous Map
 * lookups. Every change is written and published on `<prefix>revocations` in one MULTI; each
 * process applies messages in Redis order, so all copies converge within milliseconds.
 *
 * On every (re)connection of the subscriber, the process subscribes first, then reloads the whole
 * state; messages arriving during the reload are buffered and applied after it, so no change is
 * lost. While the subscriber is disconnected the local copy can be stale (`synced` is false) —
 * per-request checks keep answering from the last known state rather than refusing everyone.
 *
 * @module
 */

import type { Redis } from 'ioredis'
import { AuthError } from '../errors.js'
import { systemClock, type Clock } from '../internal/clock.js'
import { createRedisClient, waitForRedis } from '../nonce/redis-nonce-store.js'
import {
  InMemoryRevocationList,
  checkExpiresAt,
  checkReason,
  checkSessionId,
  normalizeFingerprint,
  type RevocationInfo,
  type RevocationList,
} from './revocation-list.js'

export interface RedisRevocationListOptions {
  /** An ioredis client (duplicated for the subscription; neither closed by `close()` if given), or a URL. */
  redis: Redis | string
  /** Default `mcp-pki:`. */
  keyPrefix?: string
  onError?: (err: Error) => void
  /**
   * Clock of the revocation times (tests). Default: the Redis server's clock (TIME), so every
   * process and the CLI, wherever it runs, time revocations alike; a revoker whose own clock is off
   * must not move the start that sessions are compared with.
   */
  clock?: Clock
}

type Message =
  | { op: 'revoke'; fp: string; reason?: string; at: number }
  | { op: 'unrevoke'; fp: string; at?: number }
  | { op: 'session'; id: string; exp: number }

/**
 * @example
 * const revocations = new RedisRevocationList({ redis: 'redis://127.0.0.1:6379' })
 * await revocations.ready()
 * await revocations.revoke(fingerprint, 'key leaked') // every process sees it within ms
 */
export class RedisRevocationList implements RevocationList {
  readonly keyPrefix: string
  private readonly local: InMemoryRevocationList
  private readonly clock: Clock
  /** True when revocation times come from `clock` rather than from Redis (TIME). */
  private readonly ownClock: boolean
  private readonly client: Redis
  private readonly sub: Redis
  private readonly ownsClient: boolean
  private readonly onError: ((err: Error) => void) | undefined
  private readonly keys: { revoked: string; info: string; sessions: string; channel: string }
  /** Messages received while a reload is in flight; undefined when not loading. */
  private buffered: Message[] | undefined
  private reloadAgain = false
  private loaded = false
  private closed = false
  private readonly firstLoad: Promise<void>
  private resolveFirstLoad!: () => void

  constructor(options: RedisRevocationListOptions) {
    const { redis, keyPrefix = 'mcp-pki:', clock = systemClock, onError } = options
    if (typeof keyPrefix !== 'string') throw new TypeError('keyPrefix must be a string')
    this.keyPrefix = keyPrefix
    this.clock = clock
    this.ownClock = options.clock !== undefined
    this.onError = onError
    this.local = new InMemoryRevocationList({ clock })
    this.keys = {
      revoked: keyPrefix + 'revoked',
      info: keyPrefix + 'revoked-info',
      sessions: keyPrefix + 'revoked-sessions',
      channel: keyPrefix + 'revocations',
    }
    this.firstLoad = new Promise((resolve) => (this.resolveFirstLoad = resolve))
    const reportError = (err: Error): void => this.onError?.(err)
    if (typeof redis === 'string') {
      this.client = createRedisClient(redis, { onError: reportError })
      this.ownsClient = true
    } else if (typeof redis === 'object' && redis !== null && typeof redis.duplicate === 'function') {
      this.client = redis
      this.ownsClient = false
    } else {
      throw new TypeError('redis must be an ioredis client or a redis:// URL')
    }
    // The subscriber queues its SUBSCRIBE until connected; it runs no other command.
    this.sub = this.client.duplicate({ enableOfflineQueue: true, commandTimeout: undefined })
    this.sub.on('error', reportError)
    this.sub.on('message', (channel: string, text: string) => {
      if (channel !== this.keys.channel) return
      const msg = parseMessage(text)
      if (msg === undefined) return
      if (this.buffered !== undefined) this.buffered.push(msg)
      else this.apply(msg)
    })
    // every (re)connection of the subscriber triggers subscribe + full reload
    this.sub.on('ready', () => this.triggerResync())
  }

  /** True when the subscription is live and the state has been loaded since the last reconnect. */
  get synced(): boolean {
    return this.loaded && this.sub.status === 'ready' && this.buffered === undefined
  }

  /** Resolves after the first full load; AuthError('server_busy') after `timeoutMs` (default 2000). */
  async ready(timeoutMs = 2000): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new AuthError('server_busy', `revocation store unavailable: not loaded within ${timeoutMs} ms`, { retryAfter: 1 })),
        timeoutMs,
      )
    })
    try {
      await Promise.race([this.firstLoad, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  isRevoked(fingerprint: string): boolean {
    return this.local.isRevoked(fingerprint)
  }

  isSessionRevoked(sessionId: string): boolean {
    return this.local.isSessionRevoked(sessionId)
  }

  liftedRevocationAt(fingerprint: string): number | undefined {
    return this.local.liftedRevocationAt(fingerprint)
  }

  list(): RevocationInfo[] {
    return this.local.list()
  }

  /** @throws AuthError('server_busy') when Redis is unavailable (nothing changed). */
  async revoke(fingerprint: string, reason?: string): Promise<void> {
    const fp = normalizeFingerprint(fingerprint)
    checkReason(reason)
    const at = await this.storeTime()
    const msg: Message = reason === undefined ? { op: 'revoke', fp, at } : { op: 'revoke', fp, reason, at }
    await this.write((m) =>
      m
        .sadd(this.keys.revoked, fp)
        .hset(this.keys.info, fp, JSON.stringify({ reason, at }))
        .publish(this.keys.channel, JSON.stringify(msg)),
    )
    this.local.applyRevoke(fp, reason, at)
  }

  async unrevoke(fingerprint: string): Promise<void> {
    const fp = normalizeFingerprint(fingerprint)
    // The revocation's start is kept (info record marked lifted) so that every process, also after
    // a restart, goes on refusing the sessions it cut off. It is read from Redis (this process's
    // copy may not have loaded it, or not received it yet), and when it is unknown (no readable
    // record) or after the lift, the lift itself is the mark: fail closed, never revive.
    const { stored, liftedAt } = await this.storedRevocation(fp)
    const localAt = this.local.revokedAt(fp)
    let at: number | undefined
    if (stored.revoked || localAt !== undefined) {
      const start = Math.max(stored.at, localAt ?? 0)
      at = start > 0 && start <= liftedAt ? start : liftedAt
    }
    const msg: Message = at === undefined ? { op: 'unrevoke', fp } : { op: 'unrevoke', fp, at }
    await this.write((m) => {
      m.srem(this.keys.revoked, fp)
      // Not revoked: any record (a lifted revocation's) stays.
      if (at !== undefined) m.hset(this.keys.info, fp, JSON.stringify({ at, lifted: liftedAt }))
      return m.publish(this.keys.channel, JSON.stringify(msg))
    })
    this.local.applyUnrevoke(fp, at)
  }

  /**
   * Whether Redis has this key revoked and when that began (0 = unknown), and the time of the lift,
   * in one round trip. @throws AuthError('server_busy')
   */
  private async storedRevocation(fp: string): Promise<{ stored: { revoked: boolean; at: number }; liftedAt: number }> {
    const [member, info, time] = await this.exec(this.client.multi().sismember(this.keys.revoked, fp).hget(this.keys.info, fp).time(), 'revocation store unavailable; try again shortly')
    const revoked = member === 1
    const meta = parseInfo((info as string | null) ?? undefined)
    return { stored: { revoked, at: revoked && !meta.lifted ? meta.at : 0 }, liftedAt: this.ownClock ? this.clock() : msOfRedisTime(time) }
  }

  /** Now, for revocation times: Redis's clock (the same for every process), or the clock given. */
  private async storeTime(): Promise<number> {
    if (this.ownClock) return this.clock()
    const [time] = await this.exec(this.client.multi().time(), 'revocation store unavailable; try again shortly')
    return msOfRedisTime(time)
  }

  async revokeSession(sessionId: string, expiresAt: number): Promise<void> {
    checkSessionId(sessionId)
    checkExpiresAt(expiresAt)
    const now = this.clock()
    if (expiresAt <= now) return // the session is over anyway
    const msg: Message = { op: 'session', id: sessionId, exp: expiresAt }
    await this.write((m) =>
      m
        .zadd(this.keys.sessions, 'GT', expiresAt, sessionId)
        .zremrangebyscore(this.keys.sessions, '-inf', now)
        .publish(this.keys.channel, JSON.stringify(msg)),
    )
    this.local.applyRevokeSession(sessionId, expiresAt)
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.local.close()
    this.sub.removeAllListeners('ready')
    await quietQuit(this.sub)
    if (this.ownsClient) await quietQuit(this.client)
  }

  private async write(build: (m: ReturnType<Redis['multi']>) => ReturnType<Redis['multi']>): Promise<void> {
    await this.exec(build(this.client.multi()), 'revocation store refused the change')
  }

  /**
   * Runs a MULTI; the reply of each command. Unreachable Redis, or a command it refused (then
   * `refused` is the message), is AuthError('server_busy'): nothing is assumed.
   */
  private async exec(multi: ReturnType<Redis['multi']>, refused: string): Promise<unknown[]> {
    let results: [Error | null, unknown][] | null
    try {
      results = await multi.exec()
    } catch (err) {
      throw new AuthError('server_busy', 'revocation store unavailable; try again shortly', { retryAfter: 1, cause: err })
    }
    const failed = results?.find(([err]) => err !== null)?.[0]
    if (results === null || failed) throw new AuthError('server_busy', refused, { retryAfter: 1, cause: failed })
    return results.map(([, value]) => value)
  }

  /** Subscribe (confirmed), then reload everything; buffered messages are applied afterwards. */
  private async resync(): Promise<void> {
    if (this.closed) return
    if (this.buffered !== undefined) {
      this.reloadAgain = true
      return
    }
    this.buffered = []
    try {
      await this.sub.subscribe(this.keys.channel)
      await waitForRedis(this.client, 5000, 'revocation store')
      const now = this.clock()
      const results = await this.client
        .multi()
        .smembers(this.keys.revoked)
        .hgetall(this.keys.info)
        .zrangebyscore(this.keys.sessions, `(${now}`, '+inf', 'WITHSCORES')
        .exec()
      if (results === null) throw new Error('revocation reload aborted')
      for (const [err] of results) if (err) throw err
      const members = results[0]?.[1] as string[]
      const info = results[1]?.[1] as Record<string, string>
      const flat = results[2]?.[1] as string[]
      const revoked: RevocationInfo[] = []
      const inSet = new Set(members)
      for (const fp of members) {
        const meta = parseInfo(info[fp])
        revoked.push({ fingerprint: fp, reason: meta.reason, revokedAt: meta.at })
      }
      const lifted: [string, number][] = []
      for (const [fp, text] of Object.entries(info)) {
        if (inSet.has(fp)) continue
        const meta = parseInfo(text)
        if (meta.lifted && meta.at > 0) lifted.push([fp, meta.at])
      }
      const sessions: [string, number][] = []
      for (let i = 0; i + 1 < flat.length; i += 2) sessions.push([flat[i]!, Number(flat[i + 1])])
      this.local.replaceAll(revoked, sessions, lifted)
      const pending = this.buffered
      this.buffered = undefined
      for (const msg of pending) this.apply(msg)
      this.loaded = true
      this.resolveFirstLoad()
    } catch (err) {
      // keep serving the last known state; apply what arrived meanwhile, retry on next 'ready'
      const pending = this.buffered ?? []
      this.buffered = undefined
      for (const msg of pending) this.apply(msg)
      if (!this.closed) {
        this.reloadAgain = false
        setTimeout(() => {
          if (!this.closed && this.sub.status === 'ready') this.triggerResync()
        }, 500).unref()
      }
      throw err
    }
    if (this.reloadAgain) {
      this.reloadAgain = false
      await this.resync()
    }
  }

  private triggerResync(): void {
    this.resync().catch((err: unknown) => this.onError?.(err instanceof Error ? err : new Error(String(err))))
  }

  private apply(msg: Message): void {
    switch (msg.op) {
      case 'revoke':
        this.local.applyRevoke(msg.fp, msg.reason, msg.at)
        break
      case 'unrevoke':
        this.local.applyUnrevoke(msg.fp, msg.at)
        break
      case 'session':
        this.local.applyRevokeSession(msg.id, msg.exp)
        break
    }
  }
}

function parseMessage(text: string): Message | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof v !== 'object' || v === null) return undefined
  const m = v as Record<string, unknown>
  const fpOk = typeof m.fp === 'string' && /^[0-9a-f]{64}$/.test(m.fp)
  if (m.op === 'revoke' && fpOk && typeof m.at === 'number') {
    return { op: 'revoke', fp: m.fp as string, at: m.at, ...(typeof m.reason === 'string' ? { reason: m.reason } : {}) }
  }
  if (m.op === 'unrevoke' && fpOk) return { op: 'unrevoke', fp: m.fp as string, ...(typeof m.at === 'number' && Number.isFinite(m.at) ? { at: m.at } : {}) }
  if (m.op === 'session' && typeof m.id === 'string' && m.id.length > 0 && typeof m.exp === 'number' && Number.isFinite(m.exp)) {
    return { op: 'session', id: m.id, exp: m.exp }
  }
  return undefined
}

/** Redis TIME ([seconds, microseconds]) in ms. @throws AuthError('server_busy') when unusable. */
function msOfRedisTime(time: unknown): number {
  const t = time as [string | number, string | number] | undefined
  const ms = Number(t?.[0]) * 1000 + Math.floor(Number(t?.[1]) / 1000)
  if (!Number.isFinite(ms) || ms <= 0) throw new AuthError('server_busy', 'revocation store gave no usable time', { retryAfter: 1 })
  return ms
}

function parseInfo(text: string | undefined): { reason: string | undefined; at: number; lifted: boolean } {
  if (text === undefined) return { reason: undefined, at: 0, lifted: false }
  try {
    const v = JSON.parse(text) as { reason?: unknown; at?: unknown; lifted?: unknown }
    return {
      reason: typeof v.reason === 'string' ? v.reason : undefined,
      at: typeof v.at === 'number' && Number.isFinite(v.at) ? v.at : 0,
      lifted: typeof v.lifted === 'number',
    }
  } catch {
    return { reason: undefined, at: 0, lifted: false }
  }
}

async function quietQuit(client: Redis): Promise<void> {
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
