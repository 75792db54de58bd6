/**
 * Redis eviction policy (issue 9, mcp-pki/2 attack): every replay entry in Redis carries a TTL, so a
 * Redis with `maxmemory` set and a volatile-* or allkeys-* policy can evict live entries under memory
 * pressure, and a replayed message or request would then be accepted. The Redis nonce store reads
 * `CONFIG GET maxmemory-policy` / `maxmemory` at start and on every reconnect and refuses to work
 * unless eviction cannot happen; where CONFIG is disabled (managed Redis) it refuses unless
 * `auth.nonce_store.eviction_checked: true`. The server refuses to start, mcp-config-validate
 * --check-redis reports it. Every Redis here is a private redis-server on a free loopback port (the
 * shared one at 6379 is never reconfigured).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Redis } from 'ioredis'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig, parseConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { RedisNonceStore } from '../../src/nonce/redis-nonce-store.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig } from '../../src/server/start-server.js'
import { freePort } from '../integration/redis-helpers.js'

const VALIDATE_BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-config-validate.js')
const EVICTING = ['volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random']
const PREFIX = 'evict-test:'

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

interface PrivateRedis {
  url: string
  /** A client on it; CONFIG is `configCommand` (renamed when CONFIG is disabled for everyone else). */
  admin: Redis
  configCommand: string
}

/** A private redis-server; with `disableConfig`, CONFIG is renamed to a secret name (as managed services do). */
async function startRedis(disableConfig = false): Promise<PrivateRedis> {
  const port = await freePort()
  const configCommand = disableConfig ? `CONFIG_${Math.random().toString(36).slice(2)}` : 'CONFIG'
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...(disableConfig ? ['--rename-command', 'CONFIG', configCommand] : [])]
  const proc: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' })
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  cleanups.push(async () => {
    proc.kill('SIGTERM')
    await exited
  })
  const admin = new Redis({ port, host: '127.0.0.1', retryStrategy: (n: number) => (n > 100 ? null : 50), maxRetriesPerRequest: 50 })
  admin.on('error', () => undefined)
  cleanups.push(() => admin.quit())
  await admin.ping()
  return { url: `redis://127.0.0.1:${port}`, admin, configCommand }
}

async function setPolicy(r: PrivateRedis, policy: string, maxmemory: string): Promise<void> {
  await r.admin.call(r.configCommand, 'SET', 'maxmemory-policy', policy)
  await r.admin.call(r.configCommand, 'SET', 'maxmemory', maxmemory)
}

function store(r: PrivateRedis, o: { evictionChecked?: boolean; errors?: string[] } = {}): RedisNonceStore {
  const s = new RedisNonceStore({ redis: r.url, keyPrefix: PREFIX, evictionChecked: o.evictionChecked ?? false, onError: (e) => o.errors?.push(e.message) })
  cleanups.push(() => s.close())
  return s
}

const isRefusal = (policy: string) => (err: unknown): boolean =>
  err instanceof AuthError &&
  err.code === 'config_invalid' &&
  err.path === 'auth.nonce_store' &&
  err.message.includes(`maxmemory-policy is ${policy}`) &&
  err.message.includes('CONFIG SET maxmemory-policy noeviction') &&
  err.message.includes('CONFIG SET maxmemory 0')
const isBusy = (err: unknown): boolean => err instanceof AuthError && err.code === 'server_busy'

test('every evicting policy with maxmemory set is refused at start (even with eviction_checked), and nothing is written', async () => {
  const r = await startRedis()
  for (const policy of EVICTING) {
    await setPolicy(r, policy, '1gb')
    for (const evictionChecked of [false, true]) {
      const s = store(r, { evictionChecked })
      await assert.rejects(s.ready(), isRefusal(policy), `${policy}, eviction_checked ${evictionChecked}`)
      await assert.rejects(s.checkAndInsert(`n-${policy}`, Date.now() + 60_000), isBusy)
      await assert.rejects(s.checkSequence('session', 1, Date.now() + 60_000, s.epoch()), isBusy)
      assert.equal(await r.admin.exists(`${PREFIX}n:n-${policy}`), 0, 'no entry written')
      await s.close()
    }
  }
  // The safe settings: noeviction with a limit, or any policy without a limit (maxmemory 0).
  for (const [policy, maxmemory] of [['noeviction', '1gb'], ['allkeys-lru', '0'], ['volatile-ttl', '0']] as const) {
    await setPolicy(r, policy, maxmemory)
    const s = store(r)
    await s.ready()
    assert.equal(await s.checkAndInsert(`ok-${policy}`, Date.now() + 60_000), 'ok', `${policy} / ${maxmemory}`)
    assert.equal(await s.checkAndInsert(`ok-${policy}`, Date.now() + 60_000), 'replay')
  }
})

test('a reconnect to a Redis that now evicts: every check fails closed until the policy is fixed and it reconnects again', async () => {
  const r = await startRedis()
  await setPolicy(r, 'noeviction', '1gb')
  const errors: string[] = []
  const s = store(r, { errors })
  await s.ready()
  assert.equal(await s.checkAndInsert('before', Date.now() + 60_000), 'ok')
  await setPolicy(r, 'volatile-lru', '1gb')
  await r.admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') // the store's connection drops and comes back
  while (!errors.some((e) => e.includes('maxmemory-policy is volatile-lru'))) await new Promise((res) => setTimeout(res, 20))
  await assert.rejects(s.checkAndInsert('after', Date.now() + 60_000), isBusy)
  await assert.rejects(s.checkAndInsert('before', Date.now() + 60_000), isBusy, 'never "ok", not even for a replay')
  await assert.rejects(s.ready(), isRefusal('volatile-lru'))
  assert.equal(await r.admin.exists(`${PREFIX}n:after`), 0)
  await setPolicy(r, 'noeviction', '1gb')
  await r.admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  // Once reconnected (ready waits for the new connection's check), checks work again.
  for (;;) {
    try {
      await s.ready()
      break
    } catch {
      await new Promise((res) => setTimeout(res, 20))
    }
  }
  assert.equal(await s.checkAndInsert('before', Date.now() + 60_000), 'replay')
  assert.equal(await s.checkAndInsert('after', Date.now() + 60_000), 'ok')
})

test('CONFIG disabled (managed Redis): refused with an error naming auth.nonce_store.eviction_checked; accepted once the operator sets it', async () => {
  const r = await startRedis(true)
  const plain = new Redis(r.url)
  cleanups.push(() => plain.quit())
  await assert.rejects(plain.call('CONFIG', 'GET', 'maxmemory-policy'), /unknown command/i, 'CONFIG really is disabled')
  const s = store(r)
  await assert.rejects(
    s.ready(),
    (err: unknown) => err instanceof AuthError && err.code === 'config_invalid' && /cannot read this Redis's eviction policy/.test(err.message) && /auth\.nonce_store\.eviction_checked: true/.test(err.message) && /noeviction/.test(err.message),
  )
  await assert.rejects(s.checkAndInsert('x', Date.now() + 60_000), isBusy)
  const vouched = store(r, { evictionChecked: true })
  await vouched.ready()
  assert.equal(await vouched.checkAndInsert('x', Date.now() + 60_000), 'ok')
})

test('the server refuses to start on an evicting Redis; the config key is in the schema; mcp-config-validate --check-redis reports both cases', async () => {
  const r = await startRedis()
  await setPolicy(r, 'allkeys-lru', '1gb')
  const dir = await mkdtemp(join(tmpdir(), 'mcp-evict-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, { server: { auth: { nonce_store: { type: 'redis', url: r.url, key_prefix: PREFIX } } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  assert.equal(config.auth.nonce_store.eviction_checked, false, 'default false')
  await assert.rejects(startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }), allowlistPollMs: 60_000 }), isRefusal('allkeys-lru'))

  assert.equal(parseConfig('auth:\n  nonce_store:\n    eviction_checked: true\n', { env: {} }).config.auth.nonce_store.eviction_checked, true)
  assert.throws(() => parseConfig('auth:\n  nonce_store:\n    eviction_checked: "yes"\n', { env: {} }), /eviction_checked/)

  assert.ok(existsSync(VALIDATE_BIN), `${VALIDATE_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const bad = await runValidate(['--check-redis', '--config', sb.serverConfigPath])
  assert.equal(bad.code, 1, bad.stdout)
  assert.match(bad.stderr, /auth\.nonce_store: Redis at redis:\/\/127\.0\.0\.1:\d+: this Redis may evict replay-protection entries: maxmemory-policy is allkeys-lru.*CONFIG SET maxmemory-policy noeviction/)
  await setPolicy(r, 'noeviction', '1gb')
  const good = await runValidate(['--check-redis', '--config', sb.serverConfigPath])
  assert.equal(good.code, 0, good.stderr)
  assert.match(good.stdout, /^redis: replay entries cannot be evicted/m)
  // And the server starts.
  const running = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }), allowlistPollMs: 60_000 })
  await running.close()
  assert.match(await readFile(sb.serverConfigPath, 'utf8'), /redis/)
})

function runValidate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [VALIDATE_BIN, ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', rej)
    child.on('close', (code) => res({ code, stdout, stderr }))
  })
}
