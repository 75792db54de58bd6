// `mcp-allowlist add --cert-authority`, `list`, `remove`, and `revoke --serial/--key-id --ca`: the built
// CLI against a sandbox config whose revocations live in the real Redis (own key prefix), with CA keys
// and certificates from the real ssh-keygen.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Redis } from 'ioredis'
import { loadAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { checkClientCertificate } from '../../src/allowlist/cert-authority.js'
import { fingerprintOf } from '../../src/keys/key-pair.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { REDIS_URL, deletePrefix, uniquePrefix } from '../integration/redis-helpers.js'
import { rawKeyOfPub, sshCertify, sshKeygenKey } from '../helpers/openssh.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-allowlist.js')

let root: string
let n = 0
before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  root = await mkdtemp(join(tmpdir(), 'mcp-allowlist-ca-'))
})
after(async () => {
  await rm(root, { recursive: true, force: true })
})

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

function cli(dir: string, args: string[]): Run {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_')) env[k] = v
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

async function setup(t: TestContext): Promise<{ sb: Sandbox; prefix: string; caRaw: Buffer; caFp: string; dir: string }> {
  const prefix = uniquePrefix('cli-ca')
  t.after(() => deletePrefix(prefix))
  const dir = join(root, `d${n++}`)
  const sb = await createSandbox(dir, {
    server: { audit: { enabled: false }, auth: { nonce_store: { type: 'redis', url: REDIS_URL, key_prefix: prefix } } },
    clientMetadata: { role: 'api_client' },
  })
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'user')
  const caRaw = rawKeyOfPub(join(dir, 'ca.pub'))
  return { sb, prefix, caRaw, caFp: fingerprintOf(caRaw), dir }
}

test('add --cert-authority, list (table and json), remove', async (t) => {
  const { sb, caFp, dir } = await setup(t)
  const add = ok(cli(dir, ['add', '--config', sb.serverConfigPath, '--cert-authority', '--key-file', 'ca.pub', '--metadata', '{"org": "acme"}', '--principals', 'alice,deploy', '--role-from', 'principal']))
  assert.match(add.stdout, new RegExp(`added certificate authority ${caFp} \\(principals alice,deploy; role from principal; metadata \\{"org":"acme"\\}\\)`))
  const again = cli(dir, ['add', '--config', sb.serverConfigPath, '--cert-authority', '--key-file', 'ca.pub'])
  assert.equal(again.status, 1)
  assert.match(again.stderr, /already on the allowlist/)

  const table = ok(cli(dir, ['list', '--config', sb.serverConfigPath, '--wide'])).stdout
  assert.match(table, /CERTIFICATE AUTHORITY +PRINCIPALS +ROLE FROM/)
  assert.match(table, new RegExp(`${caFp} +alice,deploy +principal +- +\\{"org":"acme"\\}`))
  assert.match(table, /1 certificate authority\n/)
  assert.match(table, /1 key in /, 'the client key entry is still listed')
  const json = JSON.parse(ok(cli(dir, ['list', '--config', sb.serverConfigPath, '--format', 'json'])).stdout) as Record<string, unknown>[]
  const ca = json.find((e) => e.kind === 'cert_authority')
  assert.deepEqual({ fp: ca?.fingerprint, principals: ca?.principals, role_from: ca?.role_from }, { fp: caFp, principals: ['alice', 'deploy'], role_from: 'principal' })
  assert.equal(json.filter((e) => e.kind === undefined).length, 1)

  const list = await loadAllowlistFile(sb.serverAllowlistPath)
  const blob = sshCertify(dir, 'ca', 'user', ['-I', 'alice', '-n', 'alice', '-V', '-5m:+1h'])
  const r = checkClientCertificate(list, blob, { now: Date.now(), toleranceSeconds: 60, subjectPublicKey: rawKeyOfPub(join(dir, 'user.pub')) })
  assert.ok(r.ok && r.role === 'alice')

  ok(cli(dir, ['remove', '--config', sb.serverConfigPath, '--fingerprint', caFp.slice(0, 12)]))
  assert.equal((await loadAllowlistFile(sb.serverAllowlistPath)).certAuthorities().length, 0)
  assert.equal((await loadAllowlistFile(sb.serverAllowlistPath)).size, 1)
})

test('usage errors: --cert-authority without a key file, a bad --role-from, --principals without --cert-authority', async (t) => {
  const { sb, dir } = await setup(t)
  const noFile = cli(dir, ['add', '--config', sb.serverConfigPath, '--cert-authority'])
  assert.equal(noFile.status, 2)
  assert.match(noFile.stderr, /--cert-authority needs --key-file/)
  const badRole = cli(dir, ['add', '--config', sb.serverConfigPath, '--cert-authority', '--key-file', 'ca.pub', '--role-from', 'group'])
  assert.equal(badRole.status, 2)
  assert.match(badRole.stderr, /--role-from must be "principal" or "extension:NAME"/)
  const stray = cli(dir, ['add', '--config', sb.serverConfigPath, '--key-file', 'user.pub', '--principals', 'a'])
  assert.equal(stray.status, 2)
})

test('revoke --serial / --key-id --ca: a server sharing the Redis refuses exactly those certificates; unrevoke lifts it', async (t) => {
  const { sb, prefix, caFp, dir } = await setup(t)
  ok(cli(dir, ['add', '--config', sb.serverConfigPath, '--cert-authority', '--key-file', 'ca.pub']))
  const userRaw = rawKeyOfPub(join(dir, 'user.pub'))
  const bySerial = sshCertify(dir, 'ca', 'user', ['-I', 'laptop-1', '-n', 'alice', '-V', '-5m:+1h', '-z', '501'])
  const byKeyId = sshCertify(dir, 'ca', 'user', ['-I', 'laptop-2', '-n', 'alice', '-V', '-5m:+1h', '-z', '502'])
  const untouched = sshCertify(dir, 'ca', 'user', ['-I', 'laptop-3', '-n', 'alice', '-V', '-5m:+1h', '-z', '503'])

  const rev = ok(cli(dir, ['revoke', '--config', sb.serverConfigPath, '--serial', '501', '--ca', caFp.slice(0, 10), '--reason', 'stolen']))
  assert.match(rev.stdout, new RegExp(`revoked [0-9a-f]{64} \\(certificate serial 501 of CA ${caFp}\\)`))
  assert.match(rev.stdout, /now refuses this certificate \(cert_revoked\)/)
  ok(cli(dir, ['revoke', '--config', sb.serverConfigPath, '--key-id', 'laptop-2', '--ca', caFp]))

  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  const revocations = new RedisRevocationList({ redis, keyPrefix: prefix })
  t.after(async () => {
    await revocations.close()
    await redis.quit()
  })
  await revocations.ready(5000)
  const list = await loadAllowlistFile(sb.serverAllowlistPath)
  const code = (blob: Buffer): string => {
    const r = checkClientCertificate(list, blob, { now: Date.now(), toleranceSeconds: 60, subjectPublicKey: userRaw, isRevoked: (id) => revocations.isRevoked(id) })
    return r.ok ? 'ok' : r.code
  }
  assert.equal(code(bySerial), 'cert_revoked')
  assert.equal(code(byKeyId), 'cert_revoked')
  assert.equal(code(untouched), 'ok')
  assert.ok(revocations.list().some((i) => i.reason === `certificate serial 501 of CA ${caFp}: stolen`))

  const shown = ok(cli(dir, ['revoked', '--config', sb.serverConfigPath])).stdout
  assert.match(shown, /\(certificate\) .* certificate serial 501 of CA/)

  ok(cli(dir, ['unrevoke', '--config', sb.serverConfigPath, '--serial', '501', '--ca', caFp]))
  const deadline = Date.now() + 10_000
  while (code(bySerial) !== 'ok') {
    assert.ok(Date.now() < deadline, 'the unrevoke reaches the subscribed list')
    await new Promise((r) => setTimeout(r, 20))
  }
  assert.equal(code(byKeyId), 'cert_revoked')

  const zero = cli(dir, ['revoke', '--config', sb.serverConfigPath, '--serial', '0', '--ca', caFp])
  assert.equal(zero.status, 2)
  assert.match(zero.stderr, /serial 0 means "no serial"/)
  const unknownCa = cli(dir, ['revoke', '--config', sb.serverConfigPath, '--serial', '5', '--ca', 'deadbeefdead'])
  assert.equal(unknownCa.status, 1)
  assert.match(unknownCa.stderr, /no certificate authority on the allowlist/)
})
