/**
 * Issue 12: a real Prometheus scrapes a running server's metrics listener (scrape interval 1 s);
 * after traffic of known size its HTTP API reports exactly those handshake and request counts,
 * and `promtool check metrics` accepts the exposition. The listener is not the public port.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { loadConfigFile } from '../../src/config/load-config.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { REQUEST_SAMPLE } from '../../src/metrics/auth-metrics.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createWhoamiHandler, sessionHeaders } from '../../src/server/whoami.js'
import { authenticate, authenticateWithConfig, clientSetupFromConfig } from '../../src/transport/http-client.js'
import { dashboardExpressions, promtoolCheckMetrics, startPrometheus, type RunningPrometheus } from './prometheus-helpers.js'

const HANDSHAKES = 5
const REQUESTS_PER_SESSION = 3
const REPLAYS = 2
const STRANGERS = 2

let dir: string
let sb: Sandbox
let server: RunningServer
let prometheus: RunningPrometheus | undefined

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-metrics-'))
  sb = await createSandbox(dir, { server: { audit: { enabled: false }, metrics: { enabled: true, port: 0 } } })
  const { config } = await loadConfigFile(sb.serverConfigPath, { env: {} })
  const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
  server = await startServerFromConfig(config, {
    fallback: (req, res) => {
      if (handlers.whoami?.(req, res) !== true) res.writeHead(404).end()
    },
  })
  handlers.whoami = createWhoamiHandler(server.configured.service)
})

after(async () => {
  await prometheus?.stop()
  await server?.close()
  await rm(dir, { recursive: true, force: true })
})

test('metrics listener: its own loopback port, not the public one', async () => {
  const m = server.metrics
  assert.ok(m, 'metrics.enabled starts the listener')
  assert.equal(m.address.address, '127.0.0.1')
  assert.notEqual(m.address.port, server.address.port)
  const onPublic = await fetch(server.authUrl.replace(/\/auth$/, '/metrics'))
  assert.equal(onPublic.status, 404)
  assert.doesNotMatch(await onPublic.text(), /mcp_pki_/)
  const auth = await fetch(m.url.replace(/\/metrics$/, '/auth'), { method: 'POST' })
  assert.equal(auth.status, 404, 'the handshake is not served on the metrics listener')
  const res = await fetch(m.url)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  assert.match(text, /^# TYPE mcp_pki_handshakes_total counter$/m)
  assert.match(text, /^process_cpu_seconds_total /m, 'standard process metrics are there')
})

test('a real Prometheus sees the handshake and request counts of known traffic; promtool accepts the exposition', { timeout: 120_000 }, async () => {
  const target = `127.0.0.1:${server.metrics!.address.port}`
  prometheus = await startPrometheus([target])
  await prometheus.waitFor('up{job="mcp_pki"}', (v) => v === 1)

  const { config: clientConfig } = await loadConfigFile(sb.clientConfigPath, { env: {} })
  const origin = server.authUrl.replace(/\/auth$/, '')
  for (let i = 0; i < HANDSHAKES; i++) {
    const session = await authenticateWithConfig(clientConfig, server.authUrl)
    for (let j = 0; j < REQUESTS_PER_SESSION; j++) {
      const headers = sessionHeaders(session, 'GET', '/whoami')
      assert.equal((await fetch(`${origin}/whoami`, { headers })).status, 200)
      if (i < REPLAYS && j === 0) assert.equal((await fetch(`${origin}/whoami`, { headers })).status, 401, 'the replayed proof is refused')
    }
  }
  const setup = await clientSetupFromConfig(clientConfig, server.authUrl)
  for (let i = 0; i < STRANGERS; i++) {
    await assert.rejects(authenticate({ url: server.authUrl, keyPair: generateKeyPair(), serverTrust: setup.serverTrust, retryAttempts: 0 }))
  }

  const is = (n: number) => (v: number | undefined) => v === n
  assert.equal(await prometheus.waitFor('sum(mcp_pki_handshakes_total{result="success",code="ok"})', is(HANDSHAKES)), HANDSHAKES)
  assert.equal(await prometheus.waitFor('sum(mcp_pki_handshakes_total{result="failure",code="unknown_key"})', is(STRANGERS)), STRANGERS)
  assert.equal(await prometheus.waitFor('sum(mcp_pki_requests_total{result="success"})', is(HANDSHAKES * REQUESTS_PER_SESSION)), HANDSHAKES * REQUESTS_PER_SESSION)
  assert.equal(await prometheus.waitFor('sum(mcp_pki_requests_total{result="failure",code="replay_detected"})', is(REPLAYS)), REPLAYS)
  // every message 3 was timed (mcp-pki/2: strangers get a challenge and are refused at message 3), and one request check in REQUEST_SAMPLE
  assert.equal(await prometheus.waitFor('sum(mcp_pki_handshake_duration_seconds_count{step="auth_response"})', is(HANDSHAKES + STRANGERS)), HANDSHAKES + STRANGERS)
  const sampled = Math.floor((HANDSHAKES * REQUESTS_PER_SESSION + REPLAYS) / REQUEST_SAMPLE)
  assert.ok(sampled >= 1)
  assert.equal(await prometheus.waitFor('mcp_pki_request_verification_duration_seconds_count', is(sampled)), sampled)
  assert.equal(await prometheus.waitFor('mcp_pki_sessions_live', is(HANDSHAKES)), HANDSHAKES)
  assert.equal(await prometheus.waitFor('mcp_pki_allowlist_entries', is(1)), 1)
  assert.equal(await prometheus.waitFor('mcp_pki_nonce_store_capacity{store="handshake"}', is(10000)), 10000)
  assert.equal(await prometheus.waitFor('sum(mcp_pki_nonce_store_operations_total{store="handshake",result="replay"})', is(REPLAYS)), REPLAYS) // mcp-pki/2: one replay memory (handshake nonces and request windows)

  // Every query of the Grafana dashboard is valid PromQL for this Prometheus.
  for (const expr of await dashboardExpressions()) await prometheus.query(expr.replaceAll('$__rate_interval', '1m'))

  const exposition = await (await fetch(server.metrics!.url)).text()
  const check = promtoolCheckMetrics(exposition)
  assert.equal(check.status, 0, check.output)
  // No fingerprint, session id or token in any label or value line.
  assert.ok(!exposition.includes(sb.clientKey.fingerprint))
  assert.doesNotMatch(exposition, /[0-9a-f]{64}/)
})
