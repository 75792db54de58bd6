import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { RedisNonceStore } from '../../src/nonce/redis-nonce-store.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { authenticate } from '../../src/transport/http-client.js'
import { deletePrefix, REDIS_URL, uniquePrefix } from './redis-helpers.js'

const prefix = uniquePrefix('http-shared')
const servers: RunningServer[] = []
let dir: string | undefined
after(async () => {
  for (const s of servers) await s.close()
  if (dir) await rm(dir, { recursive: true, force: true })
  await deletePrefix(prefix)
})

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, unknown> }
}

test('two server instances sharing a Redis nonce store: a message 3 accepted by one is replay_detected at the other', async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-redis-http-'))
  const sb = await createSandbox(dir, {
    server: { audit: { enabled: false }, // A fleet behind one public URL names it in auth.audience (the instances listen on different ports).
    auth: { audience: 'http://127.0.0.1', nonce_store: { type: 'redis', url: REDIS_URL, key_prefix: prefix }, rate_limit: { per_address: 0, per_key: 0 } } },
  })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  // two instances, each with its own Redis connections, same server key (stateless handshake)
  const a = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
  servers.push(a)
  const b = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
  servers.push(b)
  assert.ok(a.configured.nonceStore instanceof RedisNonceStore)
  assert.notEqual(a.configured.nonceStore, b.configured.nonceStore)
  assert.notEqual(a.authUrl, b.authUrl)

  const trust = createServerTrust({ pinnedFingerprint: sb.serverKey.fingerprint })
  const client = createClientHandshake({ keyPair: sb.clientKey, audience: 'http://127.0.0.1', serverTrust: trust })
  // message 1 at A, message 3 at B: any instance can finish what another began
  const m2 = await post(a.authUrl, client.start())
  assert.equal(m2.status, 200)
  const m3 = await client.handleChallenge(m2.body)
  const m4 = await post(b.authUrl, m3)
  assert.equal(m4.status, 200)
  assert.equal(typeof m4.body.session_token, 'string')
  client.handleComplete(m4.body)

  // the same message 3 replayed at A (and at B) is refused
  const replayA = await post(a.authUrl, m3)
  assert.equal(replayA.status, 401)
  assert.equal((replayA.body.error as { code: string }).code, 'replay_detected')
  assert.equal(replayA.body.session_token, undefined)
  const replayB = await post(b.authUrl, m3)
  assert.equal((replayB.body.error as { code: string }).code, 'replay_detected')

  // a session issued by A is accepted by B (same ticket key)
  const s = await authenticate({ url: a.authUrl, audience: 'http://127.0.0.1', keyPair: sb.clientKey, serverTrust: trust, retryAttempts: 0 })
  assert.equal(b.configured.service.verifier.verifyToken(s.token).clientFingerprint, sb.clientKey.fingerprint)
})
