/**
 * `--workers` for the server and the gateway: the count to run, as a usage error when wrong.
 * @module
 */
import type { Config } from '../../config/types.js'
import { workerCountFor } from '../../server/cluster.js'
import { UsageError } from './output.js'

/** `--workers`, else `transport.workers`; a UsageError (exit 2) names what is wrong. */
export function workersOrUsage(flag: string | undefined, config: Config, port: number): number {
  try {
    return workerCountFor(flag, config, port)
  } catch (err) {
    throw new UsageError(`--workers: ${(err as Error).message}`, 'e.g. --workers 4 or --workers auto (one per core)')
  }
}
