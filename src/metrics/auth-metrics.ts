/**
 * Prometheus metrics for the authentication server (prom-client, one registry per instance so
 * several servers in one process never mix their figures). Every series is prefixed `mcp_pki_`;
 * the standard process and Node.js series (`process_*`, `nodejs_*`) come from prom-client.
 *
 * The service reports through {@link AuthMetrics.observer} (an {@link AuthObserver}); stores,
 * the allowlist and the revocation list are read when Prometheus scrapes, never per request.
 * Label values are bounded (see labels.ts): no fingerprint, session id, path or audience ever
 * becomes a label.
 *
 * @example
 * const metrics = createAuthMetrics()
 * const service = createAuthService({ ...options, observer: metrics.observer })
 * const listener = await serveMetrics(metrics, { port: 9464 }) // GET http://127.0.0.1:9464/metrics
 * @module
 */
import type { Registry } from 'prom-client'
import { loadPromClient } from '../internal/load-on-use.js'
import type { NonceStore } from '../nonce/nonce-store.js'
import type { AuthObserver } from '../transport/auth-service.js'
import { codeLabel, OK_CODE } from './labels.js'
import { instrumentNonceStore, type NonceStoreSeries } from './nonce-store-metrics.js'
import { createDeferredCounter } from './deferred-counter.js'
import { DeferredHistogram } from './deferred-histogram.js'
import { createSessionsSeen } from './sessions-seen.js'

/** Seconds: from a fast in-memory check to a slow Redis round trip. */
const HANDSHAKE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
/** One request in this many (a power of two) is timed: two clock reads would cost more than the 2% budget of a request check. */
export const REQUEST_SAMPLE = 8
const REQUEST_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5]

const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export interface AuthMetricsOptions {
  /** Collect prom-client's standard process and Node.js series (default true). */
  processMetrics?: boolean
  /** Most distinct live sessions remembered for `mcp_pki_sessions_live` (default 100,000). */
  maxSessionsSeen?: number
}

/** What the metrics can read at scrape time. */
export interface AllowlistSource {
  readonly size: number
}
export interface RevocationSource {
  list(): readonly unknown[]
  /** False while a shared list may be stale (RedisRevocationList). */
  readonly synced?: boolean
}

export interface AuthMetrics {
  readonly registry: Registry
  /** Pass as `observer` to createAuthService. */
  readonly observer: AuthObserver
  /** The Prometheus text exposition of every series. */
  metrics(): Promise<string>
  /** `text/plain; version=0.0.4; charset=utf-8`. */
  readonly contentType: string
  /** Wraps a nonce store so its results, errors and round-trip times are counted (`store`: handshake / proof). */
  instrumentNonceStore(store: NonceStore, store_: 'handshake' | 'proof'): NonceStore
  /** Reports the allowlist's size as `mcp_pki_allowlist_entries`. */
  watchAllowlist(source: AllowlistSource): void
  /** Reports the revocation list's size and sync lag. */
  watchRevocation(source: RevocationSource): void
  /** An allowlist reload succeeded (`true`) or was refused (`false`). */
  allowlistReloaded(ok: boolean): void
  /** A Redis connection or command error. */
  redisError(): void
  /** Feeds audit events in: counts `allowlist.reload`, `allowlist.reload_failed` and Redis `server.error`. */
  observeEvent(event: string, fields?: Readonly<Record<string, unknown>>): void
}

export function createAuthMetrics(options: AuthMetricsOptions = {}): AuthMetrics {
  const { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } = loadPromClient()
  const registry = new Registry()
  if (options.processMetrics ?? true) {
    collectDefaultMetrics({ register: registry })
    // Gauges named like counters (promtool rejects them); `nodejs_active_{handles,requests,resources}{type}` stay.
    for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name)
  }
  const registers = [registry]

  // Hot-path counts are plain numbers, handed to prom-client when scraped (deferred-counter.ts).
  const handshakeCounts = createDeferredCounter<'result' | 'code'>()
  const requestCounts = createDeferredCounter<'result' | 'code'>()
  const rateLimitCounts = createDeferredCounter<'limiter'>()
  new Counter({ name: 'mcp_pki_handshakes_total', help: 'Completed and failed handshakes by result (success/failure) and precise error code (ok on success).', labelNames: ['result', 'code'] as const, registers, collect() { handshakeCounts.flush(this) } })
  const handshakeSeconds = new DeferredHistogram({ name: 'mcp_pki_handshake_duration_seconds', help: 'Server time spent on one handshake message, by step (auth_request, auth_response, unknown).', labelNames: ['step'] as const, buckets: HANDSHAKE_BUCKETS, registers })
  new Counter({ name: 'mcp_pki_requests_total', help: 'Authenticated requests checked, by result (success/failure) and precise error code (ok on success).', labelNames: ['result', 'code'] as const, registers, collect() { requestCounts.flush(this) } })
  const requestSeconds = new DeferredHistogram({ name: 'mcp_pki_request_verification_duration_seconds', help: `Time to verify one request made with a session (token, proof, nonce, revocation); one request in ${REQUEST_SAMPLE} is timed.`, buckets: REQUEST_BUCKETS, registers })
  new Counter({ name: 'mcp_pki_rate_limit_refusals_total', help: 'Handshake messages refused by a rate limiter (address, key, failures).', labelNames: ['limiter'] as const, registers, collect() { rateLimitCounts.flush(this) } })
  const reloads = new Counter({ name: 'mcp_pki_allowlist_reloads_total', help: 'Allowlist file reloads by result (success/failure; a failure keeps the last good list).', labelNames: ['result'] as const, registers })
  const keyUpdates = new Counter({ name: 'mcp_pki_server_key_updates_total', help: 'Handshakes whose message 4 announced a server-key rotation (server_key_update), i.e. while the server holds a next or previous key.', registers })
  const redisErrors = new Counter({ name: 'mcp_pki_redis_errors_total', help: 'Redis connection and command errors (nonce store and revocation list).', registers })
  const sessions = createSessionsSeen(options.maxSessionsSeen ?? 100_000)
  new Gauge({ name: 'mcp_pki_sessions_live', help: 'Sessions this process issued or saw used that have not expired yet (counts up to a bound; requests are sampled).', registers, collect() { this.set(sessions.live()) } })

  const allowlists: AllowlistSource[] = []
  new Gauge({ name: 'mcp_pki_allowlist_entries', help: 'Client keys on the allowlist now.', registers, collect() { this.set(allowlists.reduce((n, a) => n + a.size, 0)) } })
  const revocations: { source: RevocationSource; syncedAt: number }[] = []
  new Gauge({ name: 'mcp_pki_revocation_list_entries', help: 'Revoked client keys in the revocation list.', registers, collect() { this.set(revocations.reduce((n, r) => n + r.source.list().length, 0)) } })
  new Gauge({
    name: 'mcp_pki_revocation_sync_lag_seconds',
    help: 'Seconds since the shared revocation list was last known in sync with Redis (0 while subscribed and loaded).',
    registers,
    collect() {
      const now = Date.now()
      let lag = 0
      for (const r of revocations) {
        if (r.source.synced !== false) r.syncedAt = now
        lag = Math.max(lag, (now - r.syncedAt) / 1000)
      }
      this.set(lag)
    },
  })
  const nonceCounts = createDeferredCounter<'store' | 'result'>()
  const nonceSeries: NonceStoreSeries = {
    counts: nonceCounts,
    roundTrip: new Histogram({ name: 'mcp_pki_redis_round_trip_seconds', help: 'Round-trip time of one Redis nonce store command.', labelNames: ['store'] as const, buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5], registers }),
    redisErrors,
    stores: [],
  }
  new Counter({ name: 'mcp_pki_nonce_store_operations_total', help: 'Nonce store check-and-insert results by store (handshake/proof) and result (ok, replay, full = refused for lack of room, error).', labelNames: ['store', 'result'] as const, registers, collect() { nonceCounts.flush(this) } })
  new Gauge({ name: 'mcp_pki_nonce_store_entries', help: 'Live nonces in the store (for Redis: those this process inserted).', labelNames: ['store'] as const, registers, async collect() {
    for (const s of nonceSeries.stores) this.set({ store: s.name }, await s.store.size())
  } })
  new Gauge({ name: 'mcp_pki_nonce_store_capacity', help: 'Most live nonces the store holds before refusing (in-memory stores only).', labelNames: ['store'] as const, registers, collect() {
    for (const s of nonceSeries.stores) if (s.capacity !== undefined) this.set({ store: s.name }, s.capacity)
  } })

  const handshakeOk = handshakeCounts.cell('success', OK_CODE)
  const requestOk = requestCounts.cell('success', OK_CODE)
  const stepSeconds = { auth_request: handshakeSeconds.labels('auth_request'), auth_response: handshakeSeconds.labels('auth_response'), unknown: handshakeSeconds.labels('unknown') }
  const requestTimer = requestSeconds.labels() // the series shows 0 before the first sample
  let requestTick = 0

  const observer: AuthObserver = {
    handshake(step, code, seconds, result) {
      const timer = step === 'auth_request' || step === 'auth_response' ? stepSeconds[step] : stepSeconds.unknown
      timer.observe(seconds)
      if (code !== undefined) handshakeCounts.add('failure', codeLabel(code))
      else if (result !== undefined) {
        handshakeOk.n++
        sessions.saw(result.sessionId, result.expiresAt)
        if (result.message.server_key_update !== undefined) keyUpdates.inc()
      }
    },
    get sampleRequest() {
      return (++requestTick & (REQUEST_SAMPLE - 1)) === 0
    },
    request(code, seconds, session) {
      if (code !== undefined) requestCounts.add('failure', codeLabel(code))
      else requestOk.n++
      if (seconds >= 0) {
        requestTimer.observe(seconds)
        if (session !== undefined) sessions.saw(session.sessionId, session.expiresAt)
      }
    },
    rateLimited(limiter) {
      rateLimitCounts.add(limiter)
    },
  }

  return {
    registry,
    observer,
    metrics: () => registry.metrics(),
    contentType: registry.contentType,
    instrumentNonceStore: (store, name) => instrumentNonceStore(store, name, nonceSeries),
    watchAllowlist: (source) => void allowlists.push(source),
    watchRevocation: (source) => void revocations.push({ source, syncedAt: Date.now() }),
    allowlistReloaded: (ok) => reloads.labels(ok ? 'success' : 'failure').inc(),
    redisError: () => redisErrors.inc(),
    observeEvent(event, fields) {
      if (event === 'allowlist.reload') reloads.labels('success').inc()
      else if (event === 'allowlist.reload_failed') reloads.labels('failure').inc()
      else if (event === 'server.error' && fields?.component === 'redis') redisErrors.inc()
    },
  }
}
