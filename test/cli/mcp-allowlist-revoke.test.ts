// `mcp-allowlist revoke | unrevoke | revoked`: the fleet-wide revocation list in Redis, run as a child
// process from the built CLI (like mcp-allowlist.test.ts), checked against a RedisRevocationList and a
// server service built from the same config. Real Redis on 127.0.0.1:6379, one key prefix per test.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Redis } from 'ioredis'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { writePublicKeyFile } from '../../src/keys/key-file.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { REDIS_URL, deletePrefix, freePort, uniquePrefix } from '../integration/redis-helpers.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-allowlist.js')

interface Run {
  status: number | null
  stdout: string
  stderr: string
  ms: number
}

let root: string
let admin: Redis

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  root = await mkdtemp(join(tmpdir(), 'mcp-allowlist-revoke-'))
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
})
after(async () => {
  await admin.quit()
  await rm(root, { recursive: true, force: true })
})

let dirs = 0

/** A sandbox (server + client keys, allowlists, configs) whose server config uses Redis with a fresh prefix. */
async function fleet(t: TestContext, nonceStore?: Record<string, unknown>): Promise<{ sb: Sandbox; prefix: string }> {
  const prefix = uniquePrefix('cli-revoke')
  t.after(() => deletePrefix(prefix))
  const sb = await createSandbox(join(root, `d${dirs++}`), {
    server: {
      audit: { enabled: false },
      auth: { nonce_store: nonceStore ?? { type: 'redis', url: REDIS_URL, key_prefix: prefix }, rate_limit: { per_address: 0, per_key: 0 } },
    },
    clientMetadata: { role: 'api_client' },
  })
  return { sb, prefix }
}

/** Runs the built CLI in `dir`, without MCP_* variables from the test's environment. */
function cli(dir: string, args: string[], extraEnv: Record<string, string> = {}): Run {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_')) env[k] = v
  Object.assign(env, extraEnv)
  const t0 = Date.now()
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: Date.now() - t0 }
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `exit 0 expected; stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

function failed(r: Run, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit ${code} expected; stdout: ${r.stdout} stderr: ${r.stderr}`)
  assert.match(r.stderr, /^error: /)
  assert.match(r.stderr, message)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
}

async function revocationsAt(t: TestContext, prefix: string): Promise<RedisRevocationList> {
  const list = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  t.after(() => list.close())
  await list.ready()
  return list
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now()
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function keysAt(prefix: string): Promise<string[]> {
  const [, keys] = await admin.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000)
  return keys
}

interface RevokedJson {
  fingerprint: string
  reason: string | null
  revoked_at: string | null
  on_allowlist: boolean
  role?: string | null
  description?: string | null
}

function revokedJson(dir: string): RevokedJson[] {
  return JSON.parse(ok(cli(dir, ['revoked', '--config', 'server_config.yml', '--format', 'json'])).stdout) as RevokedJson[]
}

test('revoke by full fingerprint: in Redis for every process, allowlist file unchanged; a key not on the allowlist is revoked too, with a note', async (t) => {
  const { sb, prefix } = await fleet(t)
  const other = await revocationsAt(t, prefix)
  const allowlistBefore = await readFile(sb.serverAllowlistPath, 'utf8')
  const fp = sb.clientKey.fingerprint

  const r = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp.toUpperCase(), '--reason', 'laptop stolen']))
  assert.match(r.stdout, new RegExp(`^revoked ${fp} \\(role api_client\\)`, 'm'))
  assert.match(r.stdout, /reason: laptop stolen/)
  assert.match(r.stdout, /allowlist file is unchanged/)
  assert.doesNotMatch(r.stdout, /not on the allowlist/)
  await waitFor(() => other.isRevoked(fp), 'another process sees the revocation')
  assert.equal(other.list().find((i) => i.fingerprint === fp)?.reason, 'laptop stolen')
  assert.equal(await readFile(sb.serverAllowlistPath, 'utf8'), allowlistBefore, 'the allowlist file is not touched')

  // Not on the allowlist: revoked anyway, and said so.
  const stranger = generateKeyPair().fingerprint
  const s = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', stranger]))
  assert.match(s.stdout, new RegExp(`^revoked ${stranger}$`, 'm'))
  assert.match(s.stdout, /not on the allowlist .*revoked anyway/)
  await waitFor(() => other.isRevoked(stranger), 'the unlisted key is revoked')

  // Revoking again changes nothing (the first reason and time stay).
  const again = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp, '--reason', 'other']))
  assert.match(again.stdout, /already revoked .*reason: laptop stolen; nothing changed/)
  assert.equal(other.list().find((i) => i.fingerprint === fp)?.reason, 'laptop stolen')
})

test('revoke by unique prefix and by key file; revoked lists them (json and table) with allowlist metadata; unrevoke lifts them', async (t) => {
  const { sb, prefix } = await fleet(t)
  const other = await revocationsAt(t, prefix)
  const fp = sb.clientKey.fingerprint
  // A second listed key, given to revoke as a public key file.
  const second = generateKeyPair()
  await updateAllowlistFile(sb.serverAllowlistPath, (l) => {
    l.add({ publicKeyRaw: second.publicKeyRaw, metadata: { role: 'backup_server' }, description: 'nightly backup' })
  })
  const keyFile = join(sb.dir, 'keys', 'second_public.pem')
  await writePublicKeyFile(keyFile, second.publicKey)

  const byPrefix = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', `${fp.slice(0, 12)}…`, '--reason', 'left the company']))
  assert.match(byPrefix.stdout, new RegExp(`^revoked ${fp} \\(role api_client\\)`, 'm'))
  const byFile = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--key-file', keyFile]))
  assert.match(byFile.stdout, new RegExp(`^revoked ${second.fingerprint} \\(role backup_server, "nightly backup"\\)`, 'm'))
  await waitFor(() => other.isRevoked(fp) && other.isRevoked(second.fingerprint), 'both revocations seen')

  const json = revokedJson(sb.dir)
  assert.deepEqual(json.map((j) => j.fingerprint).sort(), [fp, second.fingerprint].sort())
  const first = json.find((j) => j.fingerprint === fp)
  assert.equal(first?.reason, 'left the company')
  assert.equal(first?.on_allowlist, true)
  assert.equal(first?.role, 'api_client')
  assert.ok(first?.revoked_at !== null && Math.abs(Date.parse(first?.revoked_at ?? '') - Date.now()) < 10 * 60_000, 'revoked_at is a recent ISO time')
  const backup = json.find((j) => j.fingerprint === second.fingerprint)
  assert.equal(backup?.reason, null)
  assert.equal(backup?.description, 'nightly backup')

  const table = ok(cli(sb.dir, ['revoked', '--config', 'server_config.yml'])).stdout
  assert.match(table, /^FINGERPRINT\s+ROLE\s+DESCRIPTION\s+REVOKED\s+REASON$/m)
  assert.match(table, new RegExp(`^${fp.slice(0, 16)}…\\s+api_client\\s+-\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s+left the company$`, 'm'))
  assert.match(table, new RegExp(`^${second.fingerprint.slice(0, 16)}…\\s+backup_server\\s+nightly backup\\s+`, 'm'))
  assert.match(table, /^2 revoked keys in redis:\/\/127\.0\.0\.1:6379 \(key prefix "/m)
  assert.match(ok(cli(sb.dir, ['revoked', '--config', 'server_config.yml', '--wide'])).stdout, new RegExp(`^${fp}\\s`, 'm'))

  // unrevoke by prefix and by key file
  const unrevoked = ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 10)])).stdout
  assert.match(unrevoked, new RegExp(`^unrevoked ${fp}`, 'm'))
  // Issue 11.8: old sessions stay refused after unrevoke, and the CLI must not claim otherwise.
  assert.doesNotMatch(unrevoked, /including its sessions/)
  assert.match(unrevoked, /sessions it had before the revocation stay refused/)
  assert.match(ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--key-file', keyFile])).stdout, new RegExp(`^unrevoked ${second.fingerprint}`, 'm'))
  await waitFor(() => !other.isRevoked(fp) && !other.isRevoked(second.fingerprint), 'both unrevocations seen')
  assert.deepEqual(revokedJson(sb.dir), [])
  assert.match(ok(cli(sb.dir, ['revoked', '--config', 'server_config.yml'])).stdout, /^no revoked keys in /)
  assert.match(ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp])).stdout, /^not revoked: .*nothing changed/)
})

test('unrevoke takes a prefix of a revoked key that is not on the allowlist', async (t) => {
  const { sb, prefix } = await fleet(t)
  const other = await revocationsAt(t, prefix)
  const stranger = generateKeyPair().fingerprint
  ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', stranger]))
  const table = ok(cli(sb.dir, ['revoked', '--config', 'server_config.yml'])).stdout
  assert.match(table, new RegExp(`^${stranger.slice(0, 16)}…\\s+\\(not on allowlist\\)`, 'm'))
  ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', `${stranger.slice(0, 16)}…`]))
  await waitFor(() => !other.isRevoked(stranger), 'unrevoked')
})

test('end to end: a server service built from the config refuses the revoked key\'s handshake and session; after unrevoke the key authenticates again, its old session stays refused', async (t) => {
  const { sb } = await fleet(t)
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const server: ConfiguredAuthService = await createAuthServiceFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
  t.after(() => server.close())
  const { service } = server

  async function handshake(): Promise<{ token?: string; code?: string }> {
    const client = createClientHandshake({
      keyPair: sb.clientKey,
      audience: 'http://127.0.0.1:8443',
      serverTrust: createServerTrust({ pinnedFingerprint: sb.serverKey.fingerprint }),
    })
    const m2 = await service.handleMessage(client.start())
    if (m2.error) return { code: m2.error.code }
    const m4 = await service.handleMessage(await client.handleChallenge(m2.body))
    if (m4.error) return { code: m4.error.code }
    return { token: client.handleComplete(m4.body).token }
  }
  function sessionCode(token: string): string {
    try {
      service.verifier.verifyToken(token)
      return 'ok'
    } catch (err) {
      return err instanceof AuthError ? err.code : `not an AuthError: ${String(err)}`
    }
  }

  const before = await handshake()
  assert.ok(before.token, `handshake before revocation: ${before.code}`)
  const token = before.token
  assert.equal(sessionCode(token), 'ok')

  ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--key-file', 'keys/client_public.pem', '--reason', 'e2e']))
  await waitFor(() => sessionCode(token) === 'session_revoked', 'the live session is refused')
  // A new handshake by the revoked key is refused (folded to authentication_failed on the wire).
  const during = await handshake()
  assert.equal(during.token, undefined)
  assert.equal(during.code, 'unknown_key')

  ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--key-file', 'keys/client_public.pem']))
  // The key may authenticate again; the session the revocation cut off stays over.
  let afterwards: { token?: string; code?: string } = {}
  for (let i = 0; i < 100 && afterwards.token === undefined; i++) {
    afterwards = await handshake()
    if (afterwards.token === undefined) await new Promise((r) => setTimeout(r, 50))
  }
  assert.ok(afterwards.token, `handshake after unrevoke: ${afterwards.code}`)
  assert.equal(sessionCode(afterwards.token), 'ok')
  assert.equal(sessionCode(token), 'session_revoked')
})

test('a config whose nonce store is memory: a clear error pointing to redis and to `mcp-allowlist remove`, exit 1', async (t) => {
  const { sb } = await fleet(t, { type: 'memory' })
  for (const args of [
    ['revoke', '--fingerprint', sb.clientKey.fingerprint],
    ['unrevoke', '--fingerprint', sb.clientKey.fingerprint],
    ['revoked'],
  ]) {
    const r = cli(sb.dir, [...args, '--config', 'server_config.yml'])
    failed(r, 1, /auth\.nonce_store\.type: redis/)
    assert.match(r.stderr, /mcp-allowlist remove/)
    assert.equal(r.stdout, '')
  }
})

test('Redis unreachable: an error naming the URL without its password, exit 1, within seconds', async (t) => {
  const port = await freePort()
  const { sb } = await fleet(t, { type: 'redis', url: `redis://user:secret@127.0.0.1:${port}`, key_prefix: 'mcp-pki-test:unreachable:' })
  for (const args of [['revoke', '--fingerprint', sb.clientKey.fingerprint], ['revoked']]) {
    const r = cli(sb.dir, [...args, '--config', 'server_config.yml'])
    failed(r, 1, new RegExp(`cannot reach Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}`))
    assert.doesNotMatch(r.stderr + r.stdout, /secret/, 'the password is never printed')
    // 3 s to connect, then the process exits; the bound only catches a hang.
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`)
  }
})

test('an ambiguous or unknown prefix is an error and revokes nothing; bad arguments are usage errors', async (t) => {
  const { sb, prefix } = await fleet(t)
  await updateAllowlistFile(sb.serverAllowlistPath, (l) => {
    l.add({ fingerprint: 'abcdef01' + '0'.repeat(56), metadata: {} })
    l.add({ fingerprint: 'abcdef01' + '1'.repeat(56), metadata: {} })
  })
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', 'abcdef01']), 1, /prefix abcdef01 is ambiguous: 2 keys match/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', '0123456789ab']), 1, /no key on the allowlist .* starts with 0123456789ab \(nothing revoked\)/)
  assert.deepEqual(await keysAt(prefix), [], 'nothing written to Redis')
  // the longer prefix is unique
  ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', 'abcdef011']))

  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml']), 2, /exactly one of --fingerprint/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', sb.clientKey.fingerprint, '--key-file', 'keys/client_public.pem']), 2, /exactly one of/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', 'abc']), 2, /too short/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', 'not-hex-at-all']), 2, /must be hex/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', sb.clientKey.fingerprint, '--reason', 'two\nlines']), 2, /--reason must be one line/)
  failed(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--key-file', 'keys/client_private.pem']), 1, /private key/)
})

test('--dry-run writes nothing to Redis', async (t) => {
  const { sb, prefix } = await fleet(t)
  const other = await revocationsAt(t, prefix)
  const fp = sb.clientKey.fingerprint
  const r = ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp, '--reason', 'maybe', '--dry-run']))
  assert.match(r.stdout, new RegExp(`^would revoke ${fp}`, 'm'))
  assert.match(r.stdout, /dry run: nothing written/)
  assert.deepEqual(await keysAt(prefix), [])
  assert.equal(other.isRevoked(fp), false)
  assert.deepEqual(revokedJson(sb.dir), [])

  // and an unrevoke dry run leaves a revocation in place
  ok(cli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp]))
  assert.match(ok(cli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp, '--dry-run'])).stdout, /^would unrevoke /m)
  assert.deepEqual(revokedJson(sb.dir).map((j) => j.fingerprint), [fp])
})

test('MCP_REDIS_URL and MCP_NONCE_STORE override the config as loadConfig does', async (t) => {
  const { sb, prefix } = await fleet(t)
  const port = await freePort()
  const r = cli(sb.dir, ['revoked', '--config', 'server_config.yml'], { MCP_REDIS_URL: `redis://:hunter2@127.0.0.1:${port}` })
  failed(r, 1, new RegExp(`cannot reach Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}`))
  assert.doesNotMatch(r.stderr + r.stdout, /hunter2/)
  // MCP_NONCE_STORE=redis turns a memory config into a Redis one
  const mem = await fleet(t, { type: 'memory', url: REDIS_URL, key_prefix: prefix })
  ok(cli(mem.sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', mem.sb.clientKey.fingerprint], { MCP_NONCE_STORE: 'redis' }))
  assert.deepEqual(revokedJson(sb.dir).map((j) => j.fingerprint), [mem.sb.clientKey.fingerprint])
})
