/**
 * A nonce store wrapped for metrics: counts every check-and-insert by result (ok, replay, full,
 * error) and, for a store that answers asynchronously (Redis), observes the round-trip time and
 * counts failures as Redis errors. The wrapped store's answers pass through unchanged.
 * @module
 */
import type { Counter, Histogram } from 'prom-client'
import { InMemoryNonceStore } from '../nonce/memory-nonce-store.js'
import type { NonceResult, NonceStore } from '../nonce/nonce-store.js'

export interface NonceStoreSeries {
  operations: Counter<'store' | 'result'>
  roundTrip: Histogram<'store'>
  redisErrors: Counter
  /** The stores whose size (and capacity) are read at scrape time. */
  stores: { name: string; store: NonceStore; capacity: number | undefined }[]
}

export function instrumentNonceStore(store: NonceStore, name: string, series: NonceStoreSeries): NonceStore {
  const capacity = store instanceof InMemoryNonceStore ? store.maxEntries : undefined
  series.stores.push({ name, store, capacity })
  const counted: Record<NonceResult, Counter.Internal> = {
    ok: series.operations.labels(name, 'ok'),
    replay: series.operations.labels(name, 'replay'),
    full: series.operations.labels(name, 'full'),
  }
  const failed = series.operations.labels(name, 'error')
  const roundTrip = series.roundTrip.labels(name)
  const count = (result: NonceResult): NonceResult => {
    counted[result]?.inc()
    return result
  }
  const wrapped: NonceStore = {
    checkAndInsert(nonce, expiresAt) {
      let answer: NonceResult | Promise<NonceResult>
      try {
        answer = store.checkAndInsert(nonce, expiresAt)
      } catch (err) {
        failed.inc()
        throw err
      }
      if (typeof answer === 'string') return count(answer)
      const started = performance.now()
      return answer.then(
        (result) => {
          roundTrip.observe((performance.now() - started) / 1000)
          return count(result)
        },
        (err: unknown) => {
          failed.inc()
          series.redisErrors.inc()
          throw err
        },
      )
    },
    size: () => store.size(),
  }
  if (store.close !== undefined) wrapped.close = () => store.close!()
  return wrapped
}
