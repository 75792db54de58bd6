/**
 * A nonce store wrapped for metrics: counts every check-and-insert by result (ok, replay, full,
 * error) and, for a store that answers asynchronously (Redis), observes the round-trip time and
 * counts failures as Redis errors. The wrapped store's answers pass through unchanged.
 * @module
 */
import type { Counter, Histogram } from 'prom-client'
import type { DeferredCounter } from './deferred-counter.js'
import { InMemoryNonceStore } from '../nonce/memory-nonce-store.js'
import type { NonceResult, NonceStore } from '../nonce/nonce-store.js'

export interface NonceStoreSeries {
  counts: DeferredCounter<'store' | 'result'>
  roundTrip: Histogram<'store'>
  redisErrors: Counter
  /** The stores whose size (and capacity) are read at scrape time. */
  stores: { name: string; store: NonceStore; capacity: number | undefined }[]
}

export function instrumentNonceStore(store: NonceStore, name: string, series: NonceStoreSeries): NonceStore {
  const capacity = store instanceof InMemoryNonceStore ? store.maxEntries : undefined
  series.stores.push({ name, store, capacity })
  const counted: Record<NonceResult, { n: number }> = {
    ok: series.counts.cell(name, 'ok'),
    replay: series.counts.cell(name, 'replay'),
    full: series.counts.cell(name, 'full'),
    stale: series.counts.cell(name, 'stale'),
  }
  const failed = series.counts.cell(name, 'error')
  const roundTrip = series.roundTrip.labels(name)
  const count = (result: NonceResult): NonceResult => {
    const cell = counted[result]
    if (cell !== undefined) cell.n++
    return result
  }
  /** Counts an answer, timing the round trip when it is asynchronous (Redis, IPC). */
  const observe = (ask: () => NonceResult | Promise<NonceResult>): NonceResult | Promise<NonceResult> => {
    let answer: NonceResult | Promise<NonceResult>
    try {
      answer = ask()
    } catch (err) {
      failed.n++
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
        failed.n++
        series.redisErrors.inc()
        throw err
      },
    )
  }
  const wrapped: NonceStore = {
    epoch: () => store.epoch(),
    checkAndInsert: (nonce, expiresAt, epoch) => observe(() => store.checkAndInsert(nonce, expiresAt, epoch)),
    checkSequence: (sessionId, sequence, forgetAt, epoch) => observe(() => store.checkSequence(sessionId, sequence, forgetAt, epoch)),
    size: () => store.size(),
  }
  if (store.close !== undefined) wrapped.close = () => store.close!()
  return wrapped
}
