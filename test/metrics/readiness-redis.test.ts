/**
 * Issue 12: `/ready` is 503 while the Redis nonce store is down and 200 again once it is back;
 * `/health` (liveness) stays 200 throughout. Uses a private redis-server on a free port (the
 * shared one is never stopped).
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { loadConfigFile } from '../../src/config/load-config.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { startPrivateRedis } from '../integration/redis-helpers.js'

const cleanup: Array<() => Promise<unknown>> = []
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => undefined)
})

async function readyStatus(server: RunningServer): Promise<{ status: number; body: { status: string; checks: Record<string, string> } }> {
  const res = await fetch(server.readyUrl)
  return { status: res.status, body: (await res.json()) as { status: string; checks: Record<string, string> } }
}

async function waitForReady(server: RunningServer, status: number, timeoutMs = 30_000): Promise<{ status: string; checks: Record<string, string> }> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const r = await readyStatus(server)
    if (r.status === status) return r.body
    if (Date.now() > end) throw new Error(`/ready stayed ${r.status} ${JSON.stringify(r.body)}`)
    await new Promise((res) => setTimeout(res, 100))
  }
}

/** redis-server again on the same port (the server's client reconnects to it). */
function restartRedis(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
}

test('/ready turns 503 when Redis stops and 200 when it is back; /health stays 200', { timeout: 120_000 }, async () => {
  const redis = await startPrivateRedis()
  cleanup.push(() => redis.stop())
  const dir = await mkdtemp(join(tmpdir(), 'mcp-ready-'))
  cleanup.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, { server: { audit: { enabled: false }, auth: { nonce_store: { type: 'redis', url: redis.url, key_prefix: 'mcp-ready-test:' } } } })
  const { config } = await loadConfigFile(sb.serverConfigPath, { env: {} })
  const server = await startServerFromConfig(config, { metricsPort: 0 })
  cleanup.push(() => server.close())

  const up = await waitForReady(server, 200)
  assert.deepEqual(up, { status: 'ready', checks: { allowlist: 'ok', nonce_store: 'ok', revocation_list: 'ok' } })

  await redis.stop()
  const down = await waitForReady(server, 503)
  assert.equal(down.status, 'not_ready')
  assert.equal(down.checks.nonce_store, 'unavailable')
  assert.equal(down.checks.allowlist, 'ok')
  assert.doesNotMatch(JSON.stringify(down), /redis:\/\//, 'no store address in a public answer')
  assert.equal((await fetch(server.healthUrl)).status, 200, '/health is liveness: the process still runs')
  const metrics = await (await fetch(server.metrics!.url)).text()
  assert.match(metrics, /^mcp_pki_redis_errors_total [1-9]/m, 'the lost connection is counted')

  const again = restartRedis(redis.port)
  const exited = new Promise<void>((resolve) => again.once('exit', () => resolve()))
  cleanup.push(async () => {
    if (again.exitCode === null && again.signalCode === null) again.kill('SIGTERM')
    await exited
  })
  const back = await waitForReady(server, 200)
  assert.equal(back.status, 'ready')
})
