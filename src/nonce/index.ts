/**
 * Nonce stores: in memory (default, one process) or Redis (shared by a fleet).
 * @module
 */

import type { Clock } from '../internal/clock.js'
import { InMemoryNonceStore } from './memory-nonce-store.js'
import type { NonceStore } from './nonce-store.js'
import { RedisNonceStore } from './redis-nonce-store.js'

export type { NonceResult, NonceStore } from './nonce-store.js'
export { InMemoryNonceStore, type InMemoryNonceStoreOptions } from './memory-nonce-store.js'
export {
  RedisNonceStore,
  createRedisClient,
  failFastRedisOptions,
  type RedisNonceStoreOptions,
} from './redis-nonce-store.js'

/** The `auth.nonce_store` config section. */
export interface NonceStoreConfig {
  type: 'memory' | 'redis'
  url: string
  key_prefix: string
  /** The operator's word that this Redis never evicts (for a Redis whose CONFIG is disabled). */
  eviction_checked?: boolean
}

/**
 * Builds the store the config asks for. For Redis, await `ready()` on the result before serving
 * (until then every check fails closed with `server_busy`).
 *
 * @example
 * const store = createNonceStore(config.auth.nonce_store, { maxEntries: config.auth.nonce_cache_size })
 * if (store instanceof RedisNonceStore) await store.ready()
 */
export function createNonceStore(
  config: NonceStoreConfig,
  options: { maxEntries: number; clock?: Clock; onError?: (err: Error) => void },
): InMemoryNonceStore | RedisNonceStore {
  if (config.type === 'redis') {
    return new RedisNonceStore({
      redis: config.url,
      keyPrefix: config.key_prefix,
      evictionChecked: config.eviction_checked === true,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.onError ? { onError: options.onError } : {}),
    })
  }
  if (config.type === 'memory') {
    return new InMemoryNonceStore({ maxEntries: options.maxEntries, ...(options.clock ? { clock: options.clock } : {}) })
  }
  throw new TypeError(`unknown nonce store type ${String((config as { type: unknown }).type)}`)
}

/** True when checks on this store are synchronous (the in-memory store). */
export function isSyncNonceStore(store: NonceStore): store is InMemoryNonceStore {
  return store instanceof InMemoryNonceStore
}
