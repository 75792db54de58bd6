/**
 * Secrets not leaked: credentials (here a Redis password and user) never reach CLI output or the
 * audit log, even when Redis quotes them back in its own error text.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createAuthServiceFromConfig } from '../../src/server/from-config.js'
import { freePort } from '../integration/redis-helpers.js'
import { onCleanup } from './helpers/cleanup.js'
import { waitFor } from './helpers/loopback-http.js'
import { allowlistCli, capturingAudit, redisFleet } from './helpers/redis-fleet.js'

/** A private redis-server whose AUTH is renamed away: it answers AUTH with an error quoting the arguments. */
async function echoingRedis(): Promise<{ url: (user: string, password: string) => string }> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--rename-command', 'AUTH', ''], { stdio: 'ignore' })
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
  })
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => undefined)
  await waitFor(async () => {
    try {
      if (probe.status !== 'ready') await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      probe.disconnect()
      return false
    }
  }, 'redis-server with AUTH renamed')
  const auth = (await probe.call('AUTH', 'u', 'p').catch((e: Error) => e.message)) as string
  assert.match(auth, /unknown command .*'p'/, 'this Redis quotes AUTH arguments in its error')
  probe.disconnect()
  return { url: (user, password) => `redis://${user}:${password}@127.0.0.1:${port}` }
}

const SECRET = 'Hunter2-s3cr3t-pw'

// From the red-team round 4 (held).
test('mcp-allowlist revoke/revoked/unrevoke never print the Redis password or user, even when Redis quotes them back in its error', async () => {
  const redis = await echoingRedis()
  const { sb } = await redisFleet()
  const url = redis.url('opsadmin', SECRET)
  for (const args of [['revoked'], ['revoke', '--fingerprint', sb.clientKey.fingerprint, '--reason', 'x'], ['unrevoke', '--fingerprint', sb.clientKey.fingerprint]]) {
    const r = await allowlistCli(sb.dir, [...args, '--config', 'server_config.yml'], { env: { MCP_REDIS_URL: url } })
    assert.notEqual(r.status, 0, `${args[0]}: must fail`)
    const out = r.stdout + r.stderr
    assert.match(r.stderr, /cannot reach Redis at redis:\/\/\*\*\*@127\.0\.0\.1/)
    assert.ok(!out.includes(SECRET) && !out.includes('opsadmin'), `${args[0]} printed a credential: ${out}`)
    assert.doesNotMatch(out, /\n\s+at /, 'no stack trace')
  }
})

// From the red-team round 4, finding 4 (fixed).
test('a server whose Redis quotes AUTH arguments in its error does not write the Redis password into the audit log', async () => {
  const redis = await echoingRedis()
  const { sb } = await redisFleet()
  const { audit, lines } = capturingAudit()
  const config = await loadConfig(sb.serverConfigPath, { env: { MCP_REDIS_URL: redis.url('opsadmin', SECRET) } })
  await assert.rejects(createAuthServiceFromConfig(config, { audit }), (err: unknown) => err instanceof AuthError && err.code === 'server_busy')
  await audit.close()
  assert.ok(lines().length > 0, 'the failure is audited')
  assert.ok(!lines().includes(SECRET), `the audit log holds the Redis password: ${lines().split('\n')[0]}`)
})
