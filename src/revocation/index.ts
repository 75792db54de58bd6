/**
 * Key and session revocation: in memory (one process) or shared through Redis.
 * @module
 */

export {
  InMemoryRevocationList,
  normalizeFingerprint,
  type InMemoryRevocationListOptions,
  type RevocationInfo,
  type RevocationList,
} from './revocation-list.js'
export { RedisRevocationList, type RedisRevocationListOptions } from './redis-revocation-list.js'
export { KrlRevocation, combineRevocationChecks } from './krl-revocation.js'
export { watchKrlFile, type KrlFileWatcher, type WatchKrlFileOptions } from './krl-file.js'
