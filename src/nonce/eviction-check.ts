/**
 * Whether a Redis may evict replay-protection entries.
 *
 * Every entry the Redis nonce store writes carries a TTL, so `volatile-*` policies can evict them as
 * well as `allkeys-*` ones: with `maxmemory` set and any policy but `noeviction`, Redis under memory
 * pressure drops live entries and a replayed message 3 or request proof would be accepted. Safe
 * means: `maxmemory-policy noeviction`, or `maxmemory 0` (no limit, nothing is ever evicted).
 *
 * Managed Redis services often disable `CONFIG`. Then nothing can be read, and the answer is "not
 * safe" unless the operator has stated otherwise (`auth.nonce_store.eviction_checked: true`).
 * @module
 */
import type { Redis } from 'ioredis'

/** The name of the opt-in, as the error messages tell it. */
export const EVICTION_CHECKED_KEY = 'auth.nonce_store.eviction_checked'

const FIX = 'CONFIG SET maxmemory-policy noeviction (and `maxmemory-policy noeviction` in redis.conf, so it survives a restart), or CONFIG SET maxmemory 0'

/**
 * The problem with `client`'s Redis as a replay memory, in words naming the fix, or undefined when
 * it cannot evict (or `operatorChecked` vouches for a Redis whose CONFIG is disabled). Never throws.
 */
export async function evictionProblem(client: Redis, operatorChecked: boolean, timeoutMs = 2000): Promise<string | undefined> {
  let policy: string
  let maxmemory: string
  try {
    ;[policy, maxmemory] = await withTimeout(Promise.all([configGet(client, 'maxmemory-policy'), configGet(client, 'maxmemory')]), timeoutMs)
  } catch (err) {
    if (operatorChecked) return undefined
    const why = err instanceof Error ? err.message.split('\n', 1)[0]!.slice(0, 200) : 'no answer'
    return (
      `cannot read this Redis's eviction policy (CONFIG GET maxmemory-policy failed: ${why}; managed Redis services often disable CONFIG). ` +
      'A Redis that evicts keys would drop live replay-protection entries and accept replays, so the server refuses it. ' +
      `Make sure it runs maxmemory-policy noeviction (your provider's settings, or ${FIX}), then set ${EVICTION_CHECKED_KEY}: true to say so`
    )
  }
  if (policy === 'noeviction' || maxmemory === '0') return undefined
  return (
    `this Redis may evict replay-protection entries: maxmemory-policy is ${policy} with maxmemory ${maxmemory} bytes, and every entry carries a TTL, ` +
    `so under memory pressure a replayed message or request would be accepted. Fix it on that Redis: ${FIX}` +
    (operatorChecked ? ` (${EVICTION_CHECKED_KEY}: true does not override what CONFIG reports)` : '')
  )
}

async function configGet(client: Redis, name: string): Promise<string> {
  const reply = (await client.call('CONFIG', 'GET', name)) as unknown
  const value = Array.isArray(reply) && reply.length >= 2 ? reply[1] : undefined
  if (typeof value !== 'string') throw new Error(`unexpected reply to CONFIG GET ${name}`)
  return value
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
