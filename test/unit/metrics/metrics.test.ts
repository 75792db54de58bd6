/** Issue 12: the metrics building blocks — bounded labels, deferred counts, nonce store wrapper, readiness. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AuthError } from '../../../src/errors.js'
import { createAuthMetrics, REQUEST_SAMPLE } from '../../../src/metrics/auth-metrics.js'
import { codeLabel, MAX_TOOL_NAMES, statusLabel, ToolNames } from '../../../src/metrics/labels.js'
import { createReadiness } from '../../../src/metrics/readiness.js'
import { createSessionsSeen } from '../../../src/metrics/sessions-seen.js'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'
import type { NonceStore } from '../../../src/nonce/nonce-store.js'

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

test('label values come from fixed sets: codes, statuses, listed tool names', () => {
  assert.equal(codeLabel(undefined), 'ok')
  assert.equal(codeLabel('unknown_key'), 'unknown_key')
  assert.equal(codeLabel('config_invalid'), 'config_invalid')
  assert.equal(codeLabel('"}\nmcp_pki_fake 1'), 'other')
  assert.equal(statusLabel(204), '204')
  assert.equal(statusLabel(undefined), 'error')
  assert.equal(statusLabel(99), 'error')
  assert.equal(statusLabel(600), 'error')
  const tools = new ToolNames()
  tools.learn(['echo', 'a b', 'x'.repeat(65), 'other', 7, 'get_weather'])
  assert.equal(tools.label('echo'), 'echo')
  assert.equal(tools.label('get_weather'), 'get_weather')
  assert.equal(tools.label('a b'), 'other')
  assert.equal(tools.label('never-listed'), 'other')
  tools.learn(Array.from({ length: MAX_TOOL_NAMES * 2 }, (_, i) => `t${i}`))
  assert.equal(tools.size, MAX_TOOL_NAMES)
  assert.equal(tools.label(`t${MAX_TOOL_NAMES * 2 - 1}`), 'other')
})

test('a peer-chosen message type or error code never becomes a label', async () => {
  const metrics = createAuthMetrics({ processMetrics: false })
  metrics.observer.handshake('"}evil', 'made_up_code', 0.001)
  const text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_handshakes_total{result="failure",code="other"}'), 1)
  assert.equal(sample(text, 'mcp_pki_handshake_duration_seconds_count{step="unknown"}'), 1)
  assert.doesNotMatch(text, /evil|made_up_code/)
})

test('counts kept as plain numbers reach prom-client at every scrape, without double counting', async () => {
  const metrics = createAuthMetrics({ processMetrics: false })
  const o = metrics.observer
  for (let i = 0; i < 5; i++) o.request(undefined, -1)
  o.request('proof_invalid', -1)
  o.rateLimited('address')
  let text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_requests_total{result="success",code="ok"}'), 5)
  assert.equal(sample(text, 'mcp_pki_requests_total{result="failure",code="proof_invalid"}'), 1)
  assert.equal(sample(text, 'mcp_pki_rate_limit_refusals_total{limiter="address"}'), 1)
  o.request(undefined, -1)
  await metrics.metrics() // a scrape in between must not count anything twice
  text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_requests_total{result="success",code="ok"}'), 6)
  assert.equal(sample(text, 'mcp_pki_request_verification_duration_seconds_count'), 0, 'unsampled checks are not timed')
})

test(`one request check in ${REQUEST_SAMPLE} is sampled for timing`, () => {
  const metrics = createAuthMetrics({ processMetrics: false })
  let sampled = 0
  for (let i = 0; i < REQUEST_SAMPLE * 10; i++) if (metrics.observer.sampleRequest) sampled++
  assert.equal(sampled, 10)
})

test('the nonce store wrapper counts ok, replay, full and errors, and times async stores', async () => {
  const metrics = createAuthMetrics({ processMetrics: false })
  const mem = metrics.instrumentNonceStore(new InMemoryNonceStore({ maxEntries: 2, sweepIntervalMs: 0 }), 'handshake')
  const exp = Date.now() + 60_000
  assert.equal(mem.checkAndInsert('a', exp), 'ok')
  assert.equal(mem.checkAndInsert('a', exp), 'replay')
  assert.equal(mem.checkAndInsert('b', exp), 'ok')
  assert.equal(mem.checkAndInsert('c', exp), 'full')
  let fail = false
  const flaky: NonceStore = {
    epoch: () => 'AAAAAAAAAAA',
    checkSequence: async (): Promise<'ok'> => 'ok',
    checkAndInsert: async (): Promise<'ok'> => {
      if (fail) throw new AuthError('server_busy', 'replay protection store unavailable')
      return 'ok'
    },
    size: () => 0,
  }
  const shared = metrics.instrumentNonceStore(flaky, 'proof')
  assert.equal(await shared.checkAndInsert('x', exp), 'ok')
  fail = true
  await assert.rejects(Promise.resolve(shared.checkAndInsert('y', exp)), (err: unknown) => err instanceof AuthError && err.code === 'server_busy')
  const text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_nonce_store_operations_total{store="handshake",result="ok"}'), 2)
  assert.equal(sample(text, 'mcp_pki_nonce_store_operations_total{store="handshake",result="replay"}'), 1)
  assert.equal(sample(text, 'mcp_pki_nonce_store_operations_total{store="handshake",result="full"}'), 1)
  assert.equal(sample(text, 'mcp_pki_nonce_store_operations_total{store="proof",result="error"}'), 1)
  assert.equal(sample(text, 'mcp_pki_nonce_store_entries{store="handshake"}'), 2)
  assert.equal(sample(text, 'mcp_pki_nonce_store_capacity{store="handshake"}'), 2)
  assert.equal(sample(text, 'mcp_pki_redis_round_trip_seconds_count{store="proof"}'), 1)
  assert.equal(sample(text, 'mcp_pki_redis_errors_total'), 1)
})

test('audit events feed reload and Redis error counts; the revocation lag grows while out of sync', async () => {
  const metrics = createAuthMetrics({ processMetrics: false })
  metrics.observeEvent('allowlist.reload', { entries: 3 })
  metrics.observeEvent('allowlist.reload_failed', {})
  metrics.observeEvent('server.error', { component: 'redis' })
  metrics.observeEvent('server.error', { component: 'other' })
  const revocation = { synced: true, list: () => [1, 2] }
  metrics.watchRevocation(revocation)
  let text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_allowlist_reloads_total{result="success"}'), 1)
  assert.equal(sample(text, 'mcp_pki_allowlist_reloads_total{result="failure"}'), 1)
  assert.equal(sample(text, 'mcp_pki_redis_errors_total'), 1)
  assert.equal(sample(text, 'mcp_pki_revocation_list_entries'), 2)
  assert.equal(sample(text, 'mcp_pki_revocation_sync_lag_seconds'), 0)
  revocation.synced = false
  await new Promise((r) => setTimeout(r, 30))
  text = await metrics.metrics()
  assert.ok((sample(text, 'mcp_pki_revocation_sync_lag_seconds') ?? 0) > 0)
})

test('live sessions: expired ones are forgotten, the count saturates at its bound', () => {
  const seen = createSessionsSeen(3)
  seen.saw('a', 1_000)
  seen.saw('b', 5_000)
  assert.equal(seen.live(2_000), 1)
  for (const id of ['c', 'd', 'e', 'f']) seen.saw(id, 10_000)
  assert.equal(seen.live(2_000), 3)
  assert.equal(seen.live(6_000), 2, 'b expired; f was never remembered')
  seen.saw('g', 10_000)
  assert.equal(seen.live(6_000), 3)
  assert.throws(() => createSessionsSeen(0), RangeError)
})

test('readiness: every check must pass; a throwing check is unavailable; results are reused briefly', async () => {
  let calls = 0
  let redisUp = true
  const ready = createReadiness({ allowlist: () => true, nonce_store: async () => {
    calls++
    if (!redisUp) throw new Error('redis://user:secret@host down')
  } }, 50)
  assert.deepEqual(await ready.check(), { ready: true, checks: { allowlist: 'ok', nonce_store: 'ok' } })
  await ready.check()
  assert.equal(calls, 1, 'a second probe within the cache time reuses the result')
  redisUp = false
  await new Promise((r) => setTimeout(r, 60))
  const down = await ready.check()
  assert.deepEqual(down, { ready: false, checks: { allowlist: 'ok', nonce_store: 'unavailable' } })
  assert.doesNotMatch(JSON.stringify(down), /secret/)
})

test('rotation announcements are counted: one per handshake whose message 4 carries server_key_update, none without a rotation', async () => {
  const { createAuthService } = await import('../../../src/transport/auth-service.js')
  const { createClientHandshake, createServerTrust } = await import('../../../src/handshake/client-handshake.js')
  const { generateKeyPair } = await import('../../../src/keys/key-pair.js')
  const { makeParties, TestNonceStore } = await import('../../helpers/fixtures.js')
  const p = makeParties()
  const next = generateKeyPair()
  let rotating = true
  const metrics = createAuthMetrics({ processMetrics: false })
  const service = createAuthService({
    keyPair: p.server,
    serverKeys: () => (rotating ? { current: p.server, rotation: { from: p.server, to: next } } : { current: p.server }),
    allowlist: p.serverAllowlist,
    nonceStore: new TestNonceStore(100),
    observer: metrics.observer,
  })
  const handshake = async (): Promise<void> => {
    const c = createClientHandshake({ keyPair: p.client, audience: 'a', serverTrust: createServerTrust({ pinnedFingerprint: p.server.fingerprint, keyRotation: { log: () => undefined } }) })
    const m2 = await service.handleMessage(c.start())
    const m4 = await service.handleMessage(await c.handleChallenge(m2.body))
    c.handleComplete(m4.body)
  }
  await handshake()
  await handshake()
  assert.equal(sample(await metrics.metrics(), 'mcp_pki_server_key_updates_total'), 2)
  rotating = false
  await handshake()
  const text = await metrics.metrics()
  assert.equal(sample(text, 'mcp_pki_server_key_updates_total'), 2)
  assert.equal(sample(text, 'mcp_pki_handshakes_total{result="success",code="ok"}'), 3)
})
