/**
 * ioredis, loaded the first time a Redis connection is made rather than when the package is
 * imported: a program that never configures a Redis URL never loads it (nor its dependencies).
 * ioredis is CommonJS, so `require` loads it synchronously where a client is constructed.
 * @module
 */
import { createRequire } from 'node:module'
import type * as Ioredis from 'ioredis'

type IoredisModule = typeof Ioredis

let loaded: IoredisModule | undefined

/** The ioredis module, required on first use. */
export function loadIoredis(): IoredisModule {
  loaded ??= createRequire(import.meta.url)('ioredis') as IoredisModule
  return loaded
}
