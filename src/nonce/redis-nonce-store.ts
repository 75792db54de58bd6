/**
 * Nonce store shared by several server processes through Redis.
 *
 * One round trip per check: a script that reads the replay epoch `<prefix>epoch` (creating it from
 * a fresh random value when Redis has lost it: restarted without persistence, flushed), answers
 * `stale` when the caller's epoch is another, and else runs `SET <prefix>n:<nonce> 1 PX <ttl> NX`
 * (handshake nonces) or `SET <prefix>q:<session>:<sequence> …` (request sequence numbers). Redis
 * makes it atomic across every process using the same Redis and key prefix.
 *
 * Clock skew: TTLs are computed on the inserting member's clock but windows are judged on the
 * accepting member's, so every TTL gets twice the fleet's allowed skew (`clockSkewMs`, default
 * 5 s) on top: an entry outlives the last instant any member within that skew could accept it.
 *
 * Fails closed: when Redis errors, is unreachable, or does not answer within the command timeout
 * (500 ms by default), `checkAndInsert` throws `AuthError('server_busy')` (HTTP 503, Retry-After 1)
 * and never answers `ok` without the store. Commands are not queued while disconnected.
 *
 * Capacity: Redis's own `maxmemory`. An `OOM` reply maps to `full` (nothing recorded; Redis refuses
 * every SET while out of memory, so a replayed nonce then also answers `full` — refused either way).
 *
 * Eviction: every entry carries a TTL, so with `maxmemory` set and any policy but `noeviction`
 * (volatile-* as much as allkeys-*) Redis may drop live entries under memory pressure, and a
 * replayed message or request would be accepted. Each time the connection becomes ready (start and
 * every reconnect, perhaps to another Redis behind the same name) the store reads `CONFIG GET
 * maxmemory-policy` and `maxmemory` (see eviction-check.ts) and refuses to work — `ready()` throws
 * `config_invalid`, checks answer `server_busy` — unless eviction cannot happen. Where CONFIG is
 * disabled (managed Redis) it refuses too, unless the operator states `evictionChecked`
 * (`auth.nonce_store.eviction_checked: true`). Checks wait for a check in flight.
 *
 * `size()` is honest about what one process can know cheaply: the number of entries this
 * process inserted that have not yet expired (a lower bound of the shared total). Counting the
 * shared keyspace would need a SCAN, far too slow for a health check under load.
 *
 * @module
 */

import type { Redis, RedisOptions } from 'ioredis'
import { AuthError } from '../errors.js'
import { systemClock, systemRandom, type Clock } from '../internal/clock.js'
import { loadIoredis } from '../internal/load-ioredis.js'
import { EPOCH_SIZE } from '../protocol/constants.js'
import { evictionProblem } from './eviction-check.js'
import type { NonceResult, NonceStore } from './nonce-store.js'

/** Default per-command timeout for connections this package creates. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 500

const MAX_NONCE_LENGTH = 512

/**
 * ioredis options that fail fast instead of queueing: short connect and command timeouts,
 * one retry per request, no offline queue, and reconnection with a capped backoff.
 */
export function failFastRedisOptions(commandTimeoutMs = DEFAULT_REDIS_COMMAND_TIMEOUT_MS): RedisOptions {
  return {
    commandTimeout: commandTimeoutMs,
    connectTimeout: Math.max(1000, commandTimeoutMs * 2),
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (times: number) => Math.min(times * 200, 2000),
  }
}

/**
 * Creates an ioredis client from a `redis://` / `rediss://` URL with {@link failFastRedisOptions}.
 * An `error` listener is attached (ioredis would otherwise print every reconnect failure);
 * errors are passed to `onError` if given.
 */
export function createRedisClient(
  url: string,
  options: { commandTimeoutMs?: number; onError?: (err: Error) => void; extra?: RedisOptions } = {},
): Redis {
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
    throw new TypeError('redis url must start with redis:// or rediss://')
  }
  const client = new (loadIoredis().Redis)(url, { ...failFastRedisOptions(options.commandTimeoutMs), ...options.extra })
  client.on('error', (err: Error) => options.onError?.(err))
  return client
}

/** Waits until `client` is ready, up to `timeoutMs`; throws AuthError('server_busy') otherwise. */
export async function waitForRedis(client: Redis, timeoutMs: number, what: string): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'wait') client.connect().catch(() => undefined)
  if (client.status === 'end') {
    throw new AuthError('server_busy', `${what} unavailable (connection closed)`, { retryAfter: 1 })
  }
  await new Promise<void>((resolve, reject) => {
    const onReady = (): void => {
      cleanup()
      resolve()
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new AuthError('server_busy', `${what} unavailable: no connection within ${timeoutMs} ms`, { retryAfter: 1 }))
    }, timeoutMs)
    const cleanup = (): void => {
      clearTimeout(timer)
      client.off('ready', onReady)
    }
    client.on('ready', onReady)
  })
}

export interface RedisNonceStoreOptions {
  /** An ioredis client (not closed by `close()`), or a `redis://` URL (a client is created and owned). */
  redis: Redis | string
  /** Key prefix shared by every process of one deployment. Default `mcp-pki:`. */
  keyPrefix?: string
  /** For a URL: per-command timeout in ms. Default 500. */
  commandTimeoutMs?: number
  /** Connection errors (for logging; never contains a password). */
  onError?: (err: Error) => void
  clock?: Clock
  /** The largest clock difference allowed between fleet members, ms (default 5,000). */
  clockSkewMs?: number
  /**
   * The operator's word that this Redis runs `maxmemory-policy noeviction`, for a Redis whose
   * CONFIG command is disabled. Ignored when CONFIG answers (what it says decides).
   */
  evictionChecked?: boolean
}

/** KEYS[1] epoch, KEYS[2] entry; ARGV[1] claimed epoch ('' = current), ARGV[2] ttl ms, ARGV[3] fresh epoch. */
const USE_ONCE = `
local e = redis.call('GET', KEYS[1])
if not e then
  redis.call('SET', KEYS[1], ARGV[3])
  e = ARGV[3]
end
if ARGV[1] ~= '' and e ~= ARGV[1] then return {0, e} end
if redis.call('SET', KEYS[2], '1', 'PX', ARGV[2], 'NX') then return {1, e} end
return {2, e}
`
/** KEYS[1] epoch; ARGV[1] fresh epoch: the current epoch, created when Redis has none. */
const READ_EPOCH = `
local e = redis.call('GET', KEYS[1])
if not e then
  redis.call('SET', KEYS[1], ARGV[1])
  e = ARGV[1]
end
return e
`
const RESULTS: readonly NonceResult[] = ['stale', 'ok', 'replay']

type UseOnce = (epochKey: string, entryKey: string, epoch: string, ttl: number, fresh: string) => Promise<[number, string]>

/**
 * @example
 * const store = new RedisNonceStore({ redis: 'redis://127.0.0.1:6379', keyPrefix: 'mcp-pki:' })
 * await store.ready()
 * await store.checkAndInsert(nonce, expiresAt) // 'ok' | 'replay' | 'full', or throws server_busy
 */
export class RedisNonceStore implements NonceStore {
  readonly keyPrefix: string
  private readonly client: Redis
  private readonly ownsClient: boolean
  private readonly clock: Clock
  /** Our own timeout, used only for a caller's client that has no commandTimeout. */
  private readonly guardTimeoutMs: number | undefined
  /** Expiry second → entries this process inserted (for the approximate size). */
  private readonly localExpiries = new Map<number, number>()
  private localCount = 0
  private readonly skewMarginMs: number
  readonly sharedClockSkewMs: number
  /** The replay epoch as last seen in Redis (every reply carries it). */
  private currentEpoch: string
  private readonly evictionChecked: boolean
  private readonly onError: ((err: Error) => void) | undefined
  /** True once the eviction check of the current connection passed; false again on every reconnect. */
  private evictionSafe = false
  /** The eviction check of the current connection: the problem in words, or undefined when safe. */
  private evictionVerdict: Promise<string | undefined> | undefined

  constructor(options: RedisNonceStoreOptions) {
    const { redis, keyPrefix = 'mcp-pki:', clock = systemClock, commandTimeoutMs } = options
    if (typeof keyPrefix !== 'string') throw new TypeError('keyPrefix must be a string')
    if (typeof clock !== 'function') throw new TypeError('clock must be a function')
    if (commandTimeoutMs !== undefined && (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0)) {
      throw new RangeError('commandTimeoutMs must be a positive number')
    }
    this.keyPrefix = keyPrefix
    this.clock = clock
    const skew = options.clockSkewMs ?? 5_000
    if (!Number.isFinite(skew) || skew < 0) throw new RangeError('clockSkewMs must be a non-negative number')
    this.skewMarginMs = 2 * skew
    this.sharedClockSkewMs = skew
    this.currentEpoch = freshEpoch()
    if (typeof redis === 'string') {
      this.client = createRedisClient(redis, { commandTimeoutMs, onError: options.onError })
      this.ownsClient = true
      this.guardTimeoutMs = undefined
    } else if (typeof redis === 'object' && redis !== null && typeof redis.set === 'function') {
      this.client = redis
      this.ownsClient = false
      this.guardTimeoutMs = redis.options?.commandTimeout === undefined
        ? (commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS)
        : undefined
    } else {
      throw new TypeError('redis must be an ioredis client or a redis:// URL')
    }
    this.evictionChecked = options.evictionChecked === true
    this.onError = options.onError
    // The verdict is kept and awaited by every check (it never rejects: evictionProblem does not throw).
    this.client.on('ready', () => void this.checkEviction())
    this.client.on('close', () => (this.evictionSafe = false))
    if (this.client.status === 'ready') void this.checkEviction()
  }

  /** Starts the eviction check of the current connection (start, reconnect). */
  private checkEviction(): Promise<string | undefined> {
    this.evictionSafe = false
    const verdict = evictionProblem(this.client, this.evictionChecked).then((problem) => {
      if (this.evictionVerdict === verdict) this.evictionSafe = problem === undefined
      if (problem !== undefined) this.onError?.(new Error(problem))
      return problem
    })
    this.evictionVerdict = verdict
    return verdict
  }

  /** Throws unless the current connection's eviction check passed (waits for one in flight). */
  private async assertNoEviction(): Promise<void> {
    if (this.evictionSafe) return
    // Never connected yet (a caller's lazy client): connect; the 'ready' listener starts the check.
    if (this.evictionVerdict === undefined) await waitForRedis(this.client, this.guardTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS, 'replay protection store')
    const problem = await (this.evictionVerdict ?? Promise.resolve('not connected yet'))
    if (problem === undefined && this.evictionSafe) return
    throw new AuthError('server_busy', 'replay protection store unavailable; try again shortly', { retryAfter: 1, cause: new Error(problem ?? 'the Redis connection dropped; its eviction policy is checked again once it is back') })
  }

  /** Resolves once connected; throws AuthError('server_busy') after `timeoutMs` (default 2000). */
  async ready(timeoutMs = 2000): Promise<void> {
    await waitForRedis(this.client, timeoutMs, 'replay protection store')
    // Learn (or create) the fleet's replay epoch before the first challenge is sealed with it.
    try {
      const client = this.client as Redis & { mcpPkiEpoch?: (key: string, fresh: string) => Promise<string> }
      if (typeof client.mcpPkiEpoch !== 'function') client.defineCommand('mcpPkiEpoch', { numberOfKeys: 1, lua: READ_EPOCH })
      this.currentEpoch = await client.mcpPkiEpoch!(this.keyPrefix + 'epoch', freshEpoch())
    } catch (err) {
      throw new AuthError('server_busy', 'replay protection store unavailable; try again shortly', { retryAfter: 1, cause: err })
    }
    const problem = await (this.evictionSafe ? undefined : (this.evictionVerdict ?? this.checkEviction()))
    if (problem !== undefined) throw new AuthError('config_invalid', problem, { path: 'auth.nonce_store' })
  }

  epoch(): string {
    return this.currentEpoch
  }

  /**
   * Records `nonce` until `expiresAt` (ms since epoch) unless already present.
   * @throws AuthError `server_busy` (retryAfter 1) when Redis is unreachable, slow or erroring.
   */
  async checkAndInsert(nonce: string, expiresAt: number, epoch?: string): Promise<NonceResult> {
    if (typeof nonce !== 'string' || nonce.length === 0) throw new TypeError('nonce must be a non-empty string')
    if (nonce.length > MAX_NONCE_LENGTH) throw new RangeError(`nonce longer than ${MAX_NONCE_LENGTH} characters`)
    return this.use(this.keyPrefix + 'n:' + nonce, expiresAt, epoch ?? '')
  }

  async checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): Promise<NonceResult> {
    if (typeof sessionId !== 'string' || sessionId.length === 0 || sessionId.length > MAX_NONCE_LENGTH) throw new TypeError('sessionId must be a short non-empty string')
    if (!Number.isSafeInteger(sequence) || sequence < 1) throw new RangeError('sequence must be a positive integer')
    return this.use(`${this.keyPrefix}q:${sessionId}:${sequence}`, forgetAt, epoch)
  }

  private async use(key: string, expiresAt: number, epoch: string): Promise<NonceResult> {
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
      throw new TypeError('expiresAt must be a finite number of ms since the epoch')
    }
    const now = this.clock()
    const ttl = Math.max(1, Math.ceil(expiresAt - now)) + this.skewMarginMs
    const result = await this.useOnce(key, ttl, epoch)
    if (result === 'ok') this.countLocal(now + ttl, now)
    return result
  }

  private async useOnce(key: string, ttl: number, epoch: string): Promise<NonceResult> {
    if (!this.evictionSafe) await this.assertNoEviction()
    let reply: [number, string]
    try {
      const pending = this.script()(this.keyPrefix + 'epoch', key, epoch, ttl, freshEpoch())
      reply = this.guardTimeoutMs === undefined ? await pending : await withTimeout(pending, this.guardTimeoutMs)
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('OOM')) return 'full'
      throw new AuthError('server_busy', 'replay protection store unavailable; try again shortly', {
        retryAfter: 1,
        cause: err,
      })
    }
    const result = Array.isArray(reply) ? RESULTS[reply[0]] : undefined
    if (result === undefined || typeof reply[1] !== 'string') {
      throw new AuthError('server_busy', 'replay protection store gave an unexpected reply', { retryAfter: 1 })
    }
    this.currentEpoch = reply[1]
    return result
  }

  /** The use-once script as an ioredis command (EVALSHA, loaded on first use). */
  private script(): UseOnce {
    const client = this.client as Redis & { mcpPkiUseOnce?: UseOnce }
    if (typeof client.mcpPkiUseOnce !== 'function') client.defineCommand('mcpPkiUseOnce', { numberOfKeys: 2, lua: USE_ONCE })
    return client.mcpPkiUseOnce!.bind(client)
  }

  /** Live entries this process inserted (lower bound of the shared total; see module doc). */
  size(): number {
    this.pruneLocal(this.clock())
    return this.localCount
  }

  /**
   * A warning when Redis may evict live nonces (`maxmemory` set with a policy other than
   * `noeviction`), undefined when the setting is safe or cannot be read.
   */
  async evictionPolicyWarning(): Promise<string | undefined> {
    let info: string
    try {
      info = await this.client.info('memory')
    } catch {
      return undefined
    }
    const maxmemory = /^maxmemory:(\d+)/m.exec(info)?.[1]
    const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1]
    if (maxmemory === undefined || policy === undefined) return undefined
    if (maxmemory !== '0' && policy !== 'noeviction') {
      return `redis maxmemory-policy is ${policy}: under memory pressure Redis may evict live nonces; use noeviction`
    }
    return undefined
  }

  /** Closes the connection if this store created it. */
  async close(): Promise<void> {
    if (!this.ownsClient) return
    try {
      await this.client.quit()
    } catch {
      this.client.disconnect()
    }
  }

  private countLocal(expiresAt: number, now: number): void {
    const second = Math.ceil(expiresAt / 1000)
    this.localExpiries.set(second, (this.localExpiries.get(second) ?? 0) + 1)
    this.localCount++
    if (this.localExpiries.size > 4096) this.pruneLocal(now)
  }

  private pruneLocal(now: number): void {
    const current = now / 1000
    for (const [second, count] of this.localExpiries) {
      if (second <= current) {
        this.localExpiries.delete(second)
        this.localCount -= count
      }
    }
  }
}

function freshEpoch(): string {
  return Buffer.from(systemRandom(EPOCH_SIZE)).toString('base64url')
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`command timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** The URL with any user name and password replaced by `***`; never echoes a credential. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url)
    if (u.username === '' && u.password === '') return url
    u.username = '***'
    u.password = ''
    return u.toString()
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//***@')
  }
}

/** `text` with every credential of `url` (raw and decoded) cut out. */
export function scrubCredentials(text: string, url: string): string {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return text.replace(/\/\/[^/@\s]*@/g, '//***@')
  }
  let out = text
  for (const secret of [u.password, safeDecode(u.password), u.username, safeDecode(u.username)]) {
    if (secret.length > 0) out = out.split(secret).join('***')
  }
  return out
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
