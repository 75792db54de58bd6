import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { makeCerts } from '../../bench/certs.js'

const BIN = path.resolve('dist/bin/mcp-config-validate.js')
let dir = ''

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  // A clean environment: MCP_* variables of the developer must not leak into the test.
  const clean: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...env }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: clean, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

function newKeyPair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    raw,
    fingerprint: createHash('sha256').update(raw).digest('hex'),
  }
}

async function writeKeys(sub: string, priv: string, pub: string, mode = 0o600): Promise<void> {
  await mkdir(path.join(dir, sub, 'keys'), { recursive: true })
  const privPath = path.join(dir, sub, 'keys', 'server_private.pem')
  await writeFile(privPath, priv, { mode })
  await chmod(privPath, mode)
  await writeFile(path.join(dir, sub, 'keys', 'server_public.pem'), pub, { mode: 0o644 })
}

async function writeConfig(sub: string, body: string): Promise<string> {
  await mkdir(path.join(dir, sub), { recursive: true })
  const file = path.join(sub, 'server_config.yml')
  await writeFile(path.join(dir, file), body)
  return file
}

const KEYS_YAML = `keys:
  private_key_path: ./keys/server_private.pem
  public_key_path: ./keys/server_public.pem
acl:
  allowlist_path: ./keys/server_allowlist.json
  auto_create: false
`

function allowlistJson(entries: { raw: Buffer; fingerprint?: string; description?: string; not_after?: string }[]): string {
  const keys: Record<string, unknown> = {}
  for (const e of entries) {
    const fp = e.fingerprint ?? createHash('sha256').update(e.raw).digest('hex')
    keys[fp] = {
      fingerprint: fp,
      public_key: e.raw.toString('base64url'),
      description: e.description ?? null,
      added_at: '2024-01-01T00:00:00.000Z',
      added_by: null,
      metadata: { role: 'trusted_client' },
      ...(e.not_after ? { not_after: e.not_after } : {}),
    }
  }
  return JSON.stringify({ version: 1, keys }, null, 2) + '\n'
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mcp-config-validate-'))
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

test('a valid file: ok line, exit 0 (positional and --config forms)', async () => {
  const file = await writeConfig('valid', 'auth:\n  timestamp_tolerance: 120\ntransport:\n  host: 0.0.0.0\n')
  for (const args of [[file], ['--config', file]]) {
    const r = await run(args)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `ok: ${file} is valid\n`)
    assert.equal(r.stderr, '')
  }
})

test('the example configs validate', async () => {
  for (const name of ['server_config.yml', 'client_config.yml']) {
    const r = await run([path.resolve('examples', name)])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^ok: .* is valid\n$/)
  }
})

test('warnings are printed but the file is valid', async () => {
  const file = await writeConfig('warn', 'auth:\n  session_binding: bearer\n')
  const r = await run([file])
  assert.equal(r.code, 0)
  assert.match(r.stderr, /^warning: auth\.session_binding: "bearer" with transport\.type "http"/m)
  assert.match(r.stdout, /ok: .* is valid/)
})

test('bad YAML: error with file, line and column, exit 1', async () => {
  const file = await writeConfig('badyaml', 'auth:\n  timestamp_tolerance: 300\n  x: a: b\n')
  const r = await run([file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, new RegExp(`^error: ${file.replace(/[.]/g, '\\.')}: line 3, column 6: invalid YAML`, 'm'))
  assert.equal(r.stdout, '')
})

test('unknown key and wrong type: one error line each', async () => {
  const file = await writeConfig('unknown', 'auth:\n  nonce_cache_sise: 5\n  timestamp_tolerance: "5m"\n')
  const r = await run([file])
  assert.equal(r.code, 1)
  const lines = r.stderr.trim().split('\n')
  assert.deepEqual(lines, [
    `error: ${file}: auth.timestamp_tolerance: expected a positive integer, got "5m"`,
    `error: ${file}: unknown key "auth.nonce_cache_sise" (did you mean "nonce_cache_size"?)`,
  ])
})

test('missing file: error, exit 1', async () => {
  const r = await run(['nope.yml'])
  assert.equal(r.code, 1)
  assert.equal(r.stderr, 'error: nope.yml: no such file (write a starting one with: mcp-config-validate --init server nope.yml)\n')
})

test('environment overrides are validated too', async () => {
  const file = await writeConfig('envbad', '')
  const r = await run([file], { MCP_TRANSPORT_PORT: 'eighty' })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /error: .*environment variable MCP_TRANSPORT_PORT: expected a port number 0-65535, got "eighty"/)
})

test('usage errors exit 2', async () => {
  assert.equal((await run([])).code, 2)
  const r = await run(['a.yml', '--config', 'b.yml'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /two different configuration files/)
})

test('--check-keys with a good pair prints the fingerprint', async () => {
  const kp = newKeyPair()
  await writeKeys('goodkeys', kp.privatePem, kp.publicPem)
  const file = await writeConfig('goodkeys', KEYS_YAML)
  const r = await run(['--check-keys', '--config', file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`^fingerprint: ${kp.fingerprint}$`, 'm'))
  assert.match(r.stdout, /^ok: .* is valid$/m)

  const j = await run(['--check-keys', file, '--format', 'json'])
  assert.equal(j.code, 0)
  const report = JSON.parse(j.stdout) as { valid: boolean; keys: { fingerprint: string } }
  assert.equal(report.valid, true)
  assert.equal(report.keys.fingerprint, kp.fingerprint)
})

test('--check-keys with a 0644 private key reports the chmod fix', async () => {
  const kp = newKeyPair()
  await writeKeys('openkeys', kp.privatePem, kp.publicPem, 0o644)
  const file = await writeConfig('openkeys', KEYS_YAML)
  const r = await run(['--check-keys', '--config', file])
  assert.equal(r.code, 1)
  const priv = path.join(dir, 'openkeys', 'keys', 'server_private.pem')
  assert.match(r.stderr, /error: keys\.private_key_path: .*permissions 0644 are too open/)
  assert.ok(r.stderr.includes(`chmod 600 ${priv}`), r.stderr)
  assert.doesNotMatch(r.stdout, /ok:/)
})

test('--check-keys with a mismatched pair fails', async () => {
  const a = newKeyPair()
  const b = newKeyPair()
  await writeKeys('mismatch', a.privatePem, b.publicPem)
  const file = await writeConfig('mismatch', KEYS_YAML)
  const r = await run(['--check-keys', '--config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /error: keys\.public_key_path: .*does not match the private key/)
})

test('--check-keys with missing key files fails naming them', async () => {
  const file = await writeConfig('nokeys', KEYS_YAML)
  const r = await run(['--check-keys', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /error: keys\.private_key_path: .*server_private\.pem: no such file/)
  assert.match(r.stderr, /error: keys\.public_key_path: .*server_public\.pem: no such file/)
})

test('--check-allowlist with a good file counts entries', async () => {
  const file = await writeConfig('goodacl', KEYS_YAML)
  await mkdir(path.join(dir, 'goodacl', 'keys'), { recursive: true })
  await writeFile(path.join(dir, 'goodacl', 'keys', 'server_allowlist.json'), allowlistJson([{ raw: newKeyPair().raw }, { raw: newKeyPair().raw }]))
  const r = await run(['--check-allowlist', '--config', file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^allowlist: .*server_allowlist\.json: 2 entries \(0 expired, 0 fingerprint-only\)$/m)
  assert.match(r.stdout, /^ok: /m)
  assert.equal(r.stderr, '')
})

test('--check-allowlist with an expired entry warns with its fingerprint prefix and expiry', async () => {
  const file = await writeConfig('expiredacl', KEYS_YAML)
  await mkdir(path.join(dir, 'expiredacl', 'keys'), { recursive: true })
  const old = newKeyPair()
  await writeFile(
    path.join(dir, 'expiredacl', 'keys', 'server_allowlist.json'),
    allowlistJson([{ raw: newKeyPair().raw }, { raw: old.raw, description: 'old laptop', not_after: '2020-01-01T00:00:00Z' }]),
  )
  const r = await run(['--check-allowlist', '--config', file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, new RegExp(`^warning: allowlist entry ${old.fingerprint.slice(0, 16)}… \\(old laptop\\) expired 2020-01-01T00:00:00\\.000Z$`, 'm'))
  assert.match(r.stdout, /2 entries \(1 expired, 0 fingerprint-only\)/)

  const j = await run(['--check-allowlist', '--config', file, '--format', 'json'])
  const report = JSON.parse(j.stdout) as { allowlist: { entries: number; expired: { fingerprint: string }[] } }
  assert.equal(report.allowlist.entries, 2)
  assert.deepEqual(report.allowlist.expired.map((e) => e.fingerprint), [old.fingerprint])
})

test('--check-allowlist with a corrupt file fails', async () => {
  const file = await writeConfig('corruptacl', KEYS_YAML)
  await mkdir(path.join(dir, 'corruptacl', 'keys'), { recursive: true })
  await writeFile(path.join(dir, 'corruptacl', 'keys', 'server_allowlist.json'), '{ "version": 1, "keys": { oops')
  const r = await run(['--check-allowlist', '--config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error: acl\.allowlist_path: .*server_allowlist\.json/m)
  assert.doesNotMatch(r.stdout, /ok:/)
})

test('--check-allowlist with an entry whose fingerprint does not match its key fails', async () => {
  const file = await writeConfig('badfpacl', KEYS_YAML)
  await mkdir(path.join(dir, 'badfpacl', 'keys'), { recursive: true })
  await writeFile(
    path.join(dir, 'badfpacl', 'keys', 'server_allowlist.json'),
    allowlistJson([{ raw: newKeyPair().raw, fingerprint: newKeyPair().fingerprint }]),
  )
  const r = await run(['--check-allowlist', '--config', file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /fingerprint does not match/)
})

test('--check-allowlist with a missing file: error unless auto_create', async () => {
  const strict = await writeConfig('noacl', KEYS_YAML)
  const r = await run(['--check-allowlist', strict])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /error: acl\.allowlist_path: .*no such file \(acl\.auto_create is false\)/)
  const lenient = await writeConfig('noacl2', '')
  const r2 = await run(['--check-allowlist', lenient])
  assert.equal(r2.code, 0, r2.stderr)
  assert.match(r2.stderr, /warning: acl\.allowlist_path: .*will be created on first start/)
})

// ---------- what the server would refuse at start (issue 11 item 7) ----------

test('--check-allowlist: an allowlist writable by group is refused as the server refuses it, with the chmod fix', async () => {
  const file = await writeConfig('groupacl', KEYS_YAML)
  const acl = path.join(dir, 'groupacl', 'keys', 'server_allowlist.json')
  await mkdir(path.dirname(acl), { recursive: true })
  await writeFile(acl, allowlistJson([{ raw: newKeyPair().raw }]))
  await chmod(acl, 0o664)
  const r = await run(['--check-allowlist', '--config', file])
  assert.equal(r.code, 1, r.stdout)
  assert.match(r.stderr, /^error: acl\.allowlist_path: .*server_allowlist\.json: permissions 0664 let other users add keys; refusing it\. Fix: chmod go-w /m)
  await chmod(acl, 0o644)
  assert.equal((await run(['--check-allowlist', '--config', file])).code, 0)
})

test('https with missing certificate files: one error per file, naming the key', async () => {
  const file = await writeConfig('nocerts', 'transport:\n  type: https\n  ssl: { cert_file: ./certs/server.crt, key_file: ./certs/server.key }\n')
  const r = await run([file])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error: transport\.ssl\.cert_file: .*certs\/server\.crt: no such file; /m)
  assert.match(r.stderr, /^error: transport\.ssl\.key_file: .*certs\/server\.key: no such file; /m)
  assert.doesNotMatch(r.stdout, /ok:/)
})

test('https certificate files: a good pair passes, a key that is not the certificate\'s fails', async () => {
  const certDir = path.join(dir, 'tlsfiles', 'certs')
  await mkdir(certDir, { recursive: true })
  const certs = makeCerts(certDir)
  const good = await writeConfig('tlsfiles', `transport:\n  type: https\n  ssl: { cert_file: ${certs.serverCert}, key_file: ${certs.serverKey}, ca_file: ${certs.ca}, verify_mode: required }\n`)
  const ok = await run([good])
  assert.equal(ok.code, 0, ok.stderr)
  assert.match(ok.stdout, /verify_mode required: every client must present a TLS client certificate/)

  await mkdir(path.join(dir, 'tlsmismatch'), { recursive: true })
  const bad = await writeConfig('tlsmismatch', `transport:\n  type: https\n  ssl: { cert_file: ${certs.serverCert}, key_file: ${certs.clientKey} }\n`)
  const r = await run([bad])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error: transport\.ssl: Node cannot use these files: .*key values mismatch.*\(key_file is not the key of cert_file\)/m)
})

test('a client config with a client certificate: no "ssl ignored" warning, and its files are checked', async () => {
  const certDir = path.join(dir, 'clientcert', 'certs')
  await mkdir(certDir, { recursive: true })
  const certs = makeCerts(certDir)
  const body = (cert: string) =>
    `servers:\n  prod: { url: "https://127.0.0.1:8443/auth" }\ntransport:\n  ssl: { ca_file: ${certs.ca}, cert_file: ${cert}, key_file: ${certs.clientKey} }\n`
  const file = await writeConfig('clientcert', body(certs.clientCert))
  const r = await run([file])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stderr, '', 'no warning for a client certificate')

  const missing = await writeConfig('clientcert-missing', body('./certs/nope.crt'))
  const m = await run([missing])
  assert.equal(m.code, 1)
  assert.match(m.stderr, /^error: transport\.ssl\.cert_file: .*nope\.crt: no such file/m)
})

const REDIS_PREFIX = `test-ux2-config-validate-${process.pid}:`

async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

test('--check-redis and --check-keys: an unreachable Redis is an error naming the url (password cut) and the fix', async () => {
  const port = await closedPort()
  const file = await writeConfig('noredis', `auth:\n  nonce_store: { type: redis, url: "redis://:hunter2@127.0.0.1:${port}", key_prefix: "${REDIS_PREFIX}" }\n`)
  for (const flag of ['--check-redis', '--check-keys']) {
    const r = await run([flag, '--config', file])
    assert.equal(r.code, 1, `${flag}: ${r.stdout}`)
    assert.match(r.stderr, new RegExp(`^error: auth\\.nonce_store\\.url: cannot use Redis at redis://\\*\\*\\*@127\\.0\\.0\\.1:${port}.*start Redis there, or fix the url`, 'm'))
    assert.doesNotMatch(r.stderr, /hunter2/)
  }
  // Without a check flag, no connection is attempted.
  assert.equal((await run([file])).code, 0)
})

test('--check-redis: a running Redis answers', async (t) => {
  t.after(() => {
    spawnSync('sh', ['-c', `redis-cli -h 127.0.0.1 -p 6379 --scan --pattern '${REDIS_PREFIX}*' | xargs -r redis-cli -h 127.0.0.1 -p 6379 del`])
  })
  const file = await writeConfig('redisok', `auth:\n  nonce_store: { type: redis, url: "redis://127.0.0.1:6379", key_prefix: "${REDIS_PREFIX}" }\n`)
  const r = await run(['--check-redis', '--config', file])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^redis: redis:\/\/127\.0\.0\.1:6379 answers$/m)
})

// ---------- a starting config (issue 11 item 14) ----------

test('--init server|client writes a starting config that validates, prints the next steps, and never overwrites', async () => {
  await mkdir(path.join(dir, 'init'), { recursive: true })
  for (const role of ['server', 'client']) {
    const file = path.join('init', `${role}_config.yml`)
    const r = await run(['--init', role, file])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`^wrote ${file.replace('.', '\\.')} \\(a starting ${role} configuration\\)$`, 'm'))
    assert.match(r.stdout, new RegExp(`^  mcp-keygen --output-dir init/keys --key-name ${role}$`, 'm'))
    const check = await run([file])
    assert.equal(check.code, 0, check.stderr)
    assert.equal(check.stderr, '')
    const again = await run(['--init', role, file])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already exists; not replacing it/)
    assert.equal((await run(['--init', role, '--force', file])).code, 0)
  }
  const usage = await run(['--init', 'proxy', 'x.yml'])
  assert.equal(usage.code, 2)
})

test('auth.revoked_keys_file: missing or not a KRL is an error naming the fix; a KRL from ssh-keygen -k is reported', async () => {
  await writeFile(path.join(dir, 'krl.yml'), 'auth:\n  revoked_keys_file: ./revoked.krl\n')
  const missing = await run(['krl.yml'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /auth\.revoked_keys_file: .*revoked\.krl: no such file.*ssh-keygen -k -f/)
  await writeFile(path.join(dir, 'revoked.krl'), 'nonsense')
  const bad = await run(['krl.yml'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /not an OpenSSH KRL/)
  const { publicKey } = generateKeyPairSync('ed25519')
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')
  const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), raw])
  await writeFile(path.join(dir, 'lost.pub'), `ssh-ed25519 ${blob.toString('base64')} lost\n`)
  spawnSync('ssh-keygen', ['-q', '-k', '-f', 'revoked.krl', 'lost.pub'], { cwd: dir, stdio: 'ignore' })
  const ok = await run(['krl.yml'])
  assert.equal(ok.code, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, /revoked keys: .*revoked\.krl: KRL version \d+, 1 key listed explicitly/)
})
