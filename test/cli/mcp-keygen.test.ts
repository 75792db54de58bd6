import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { chmod, copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-keygen.js')
const FIXTURES = resolve(import.meta.dirname, '..', 'fixtures', 'keys')
const LEGACY = '/work/shared/fixtures/reference-python-format'
const HEX64 = /^[0-9a-f]{64}$/

let dir: string
before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  dir = await mkdtemp(join(tmpdir(), 'mcp-keygen-cli-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

function keygen(args: string[], opts: { env?: NodeJS.ProcessEnv; umask000?: boolean } = {}): Run {
  const env = { ...process.env, MCP_DEBUG: '', ...opts.env }
  const r = opts.umask000
    ? spawnSync('sh', ['-c', 'umask 000; exec node "$0" "$@"', BIN, ...args], { cwd: dir, env, encoding: 'utf8' })
    : spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function assertFailure(r: Run, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit code; stderr: ${r.stderr}`)
  assert.match(r.stderr, /^error: /)
  assert.match(r.stderr, message)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
  assert.equal(r.stdout, '')
}

const mode = async (p: string): Promise<number> => (await stat(join(dir, p))).mode & 0o777

describe('mcp-keygen generate', () => {
  test('--output-dir ./keys --key-name server writes both files with safe modes (umask 000)', async () => {
    const r = keygen(['--output-dir', './keys', '--key-name', 'server'], { umask000: true })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stderr, '')
    assert.match(r.stdout, /wrote private key: keys\/server_private\.pem \(mode 0600\)/)
    assert.match(r.stdout, /wrote public key: {2}keys\/server_public\.pem/)
    const fp = /fingerprint: +([0-9a-f]{64})/.exec(r.stdout)?.[1]
    assert.ok(fp, r.stdout)
    assert.match(r.stdout, /fingerprint_sha256: SHA256:[A-Za-z0-9+/]{43}\n/)
    assert.equal(await mode('keys'), 0o700)
    assert.equal(await mode('keys/server_private.pem'), 0o600)
    assert.equal(await mode('keys/server_public.pem'), 0o644)
    // OpenSSL reads both, and the public key it derives is the one written.
    execFileSync('openssl', ['pkey', '-in', join(dir, 'keys/server_private.pem'), '-noout'])
    execFileSync('openssl', ['pkey', '-pubin', '-in', join(dir, 'keys/server_public.pem'), '-noout'])
    const derived = execFileSync('openssl', ['pkey', '-in', join(dir, 'keys/server_private.pem'), '-pubout']).toString()
    assert.equal(derived, await readFile(join(dir, 'keys/server_public.pem'), 'utf8'))
    // --show-fingerprint agrees with what generation printed.
    const s = keygen(['--show-fingerprint', './keys/server_public.pem'])
    assert.equal(s.status, 0, s.stderr)
    assert.match(s.stdout, new RegExp(`fingerprint: +${fp}\n`))
  })

  test('defaults: current directory, key name "mcp"', async () => {
    const r = keygen([])
    assert.equal(r.status, 0, r.stderr)
    assert.equal(await mode('mcp_private.pem'), 0o600)
    assert.equal(await mode('mcp_public.pem'), 0o644)
  })

  test('--comment and --format json', async () => {
    const r = keygen(['--output-dir', './keys', '--key-name', 'jsonkey', '--comment', 'Production server key - 2024', '--format', 'json'])
    assert.equal(r.status, 0, r.stderr)
    const info = JSON.parse(r.stdout) as Record<string, unknown>
    assert.equal(info.private_key_path, 'keys/jsonkey_private.pem')
    assert.equal(info.public_key_path, 'keys/jsonkey_public.pem')
    assert.match(String(info.fingerprint), HEX64)
    assert.match(String(info.fingerprint_sha256), /^SHA256:/)
    assert.equal(info.comment, 'Production server key - 2024')
    assert.ok(!Number.isNaN(Date.parse(String(info.created_at))))
    assert.match(String(info.openssh_public_key), /^ssh-ed25519 AAAA\S+ Production server key - 2024$/)
    const s = JSON.parse(keygen(['--show-fingerprint', 'keys/jsonkey_private.pem', '--format', 'json']).stdout) as Record<string, unknown>
    assert.equal(s.fingerprint, info.fingerprint)
    assert.equal(s.key_type, 'private')
  })

  test('refuses to overwrite; --force replaces both files', async () => {
    assert.equal(keygen(['--key-name', 'dup']).status, 0)
    const before = await readFile(join(dir, 'dup_private.pem'), 'utf8')
    const r = keygen(['--key-name', 'dup'])
    assertFailure(r, 1, /dup_private\.pem exists; use --force to replace it/)
    assert.equal(await readFile(join(dir, 'dup_private.pem'), 'utf8'), before)
    const f = keygen(['--key-name', 'dup', '--force'], { umask000: true })
    assert.equal(f.status, 0, f.stderr)
    assert.notEqual(await readFile(join(dir, 'dup_private.pem'), 'utf8'), before)
    assert.equal(await mode('dup_private.pem'), 0o600)
  })

  test('refuses when only the public file exists, writing nothing', async () => {
    await writeFile(join(dir, 'half_public.pem'), 'x')
    assertFailure(keygen(['--key-name', 'half']), 1, /half_public\.pem exists/)
    assert.equal(existsSync(join(dir, 'half_private.pem')), false)
  })

  test('--dry-run writes nothing', async () => {
    const r = keygen(['--output-dir', 'dry', '--key-name', 'k', '--dry-run'])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /would write private key: dry\/k_private\.pem \(mode 0600\)/)
    assert.match(r.stdout, /would create directory: dry/)
    assert.equal(existsSync(join(dir, 'dry')), false)
  })

  test('--encrypt uses MCP_KEY_PASSPHRASE; loading needs it; OpenSSL decrypts it', async () => {
    const env = { MCP_KEY_PASSPHRASE: 'tr0ub4dor' }
    const r = keygen(['--key-name', 'enc', '--encrypt'], { env })
    assert.equal(r.status, 0, r.stderr)
    assert.match(await readFile(join(dir, 'enc_private.pem'), 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/)
    execFileSync('openssl', ['pkey', '-in', join(dir, 'enc_private.pem'), '-passin', 'pass:tr0ub4dor', '-noout'])
    assert.equal(keygen(['--show-fingerprint', 'enc_private.pem'], { env }).status, 0)
    assertFailure(keygen(['--show-fingerprint', 'enc_private.pem'], { env: { MCP_KEY_PASSPHRASE: '' } }), 1, /encrypted private key: set MCP_KEY_PASSPHRASE/)
    assertFailure(keygen(['--show-fingerprint', 'enc_private.pem'], { env: { MCP_KEY_PASSPHRASE: 'nope' } }), 1, /wrong passphrase/)
    // Without a passphrase source and no terminal, --encrypt is refused.
    assertFailure(keygen(['--key-name', 'enc2', '--encrypt'], { env: { MCP_KEY_PASSPHRASE: '' } }), 2, /--encrypt needs a passphrase/)
  })

  test('bad key names and usage errors exit 2', () => {
    assertFailure(keygen(['--key-name', '../evil']), 2, /invalid --key-name/)
    assertFailure(keygen(['--bogus']), 2, /unknown option '--bogus'/)
    assertFailure(keygen(['--format', 'yaml']), 2, /Allowed choices are text, json/)
    assertFailure(keygen(['--show-fingerprint', 'x', '--extract-public']), 2, /cannot be combined/)
    assertFailure(keygen(['--extract-public']), 2, /--extract-public needs --private-key/)
    assertFailure(keygen(['--private-key', 'x']), 2, /only used with --extract-public/)
  })

  test('--help documents the defaults', () => {
    const r = keygen(['--help'])
    assert.equal(r.status, 0)
    assert.match(r.stdout, /--key-name <name>.*\(default: "mcp"\)/s)
    assert.match(r.stdout, /--show-fingerprint/)
  })
})

describe('mcp-keygen --show-fingerprint', () => {
  test('OpenSSH key and .pub: same fingerprint as ssh-keygen -lf', async () => {
    const priv = join(dir, 'id_ed25519')
    await copyFile(join(FIXTURES, 'openssh_ed25519'), priv)
    await chmod(priv, 0o600)
    const expected = execFileSync('ssh-keygen', ['-lf', join(FIXTURES, 'openssh_ed25519.pub')]).toString().split(' ')[1]!
    for (const file of [priv, join(FIXTURES, 'openssh_ed25519.pub')]) {
      const r = keygen(['--show-fingerprint', file])
      assert.equal(r.status, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`fingerprint_sha256: ${expected.replace(/[+/]/g, '\\$&')}\n`))
      assert.match(r.stdout, /comment: +fixture@mcp-pki-auth/)
    }
  })

  test('legacy MCP keys show the allowlist fingerprint', async () => {
    const priv = join(dir, 'client-test.pem')
    await copyFile(join(LEGACY, 'client-test.pem'), priv)
    await chmod(priv, 0o600)
    for (const file of [priv, join(LEGACY, 'client-test.pub')]) {
      const r = keygen(['--show-fingerprint', file, '--format', 'json'])
      assert.equal(r.status, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { fingerprint: string }).fingerprint, '5b42e8394b271dcd898d6fec4b321e1bfed5fb676bcdf23faf539890a0083788')
    }
  })

  test('failures: missing file, RSA, X25519, truncated PEM, 0644 private key', async () => {
    assertFailure(keygen(['--show-fingerprint', 'missing.pem']), 1, /^error: missing\.pem: no such file\n/)

    const rsa = join(dir, 'rsa.pem')
    await writeFile(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    assertFailure(keygen(['--show-fingerprint', rsa]), 1, /expected an ed25519 private key, got an rsa private key/)

    const x = join(dir, 'x25519.pem')
    await writeFile(x, generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 })
    assertFailure(keygen(['--show-fingerprint', x]), 1, /expected an ed25519 private key, got an x25519 private key/)
    const xpub = join(dir, 'x25519_pub.pem')
    await writeFile(xpub, generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }))
    assertFailure(keygen(['--show-fingerprint', xpub]), 1, /expected an ed25519 public key, got an x25519 public key/)

    assert.equal(keygen(['--key-name', 'cut']).status, 0)
    const pem = await readFile(join(dir, 'cut_public.pem'), 'utf8')
    await writeFile(join(dir, 'cut_public.pem'), pem.slice(0, 30))
    assertFailure(keygen(['--show-fingerprint', 'cut_public.pem']), 1, /cut_public\.pem: truncated PEM/)

    await chmod(join(dir, 'cut_private.pem'), 0o644)
    assertFailure(
      keygen(['--show-fingerprint', 'cut_private.pem']),
      1,
      /cut_private\.pem: permissions 0644 are too open; a private key must be readable only by its owner\. Fix: chmod 600 cut_private\.pem/,
    )
  })
})

describe('mcp-keygen --extract-public', () => {
  test('writes the matching public key (0644), refuses overwrite, honours --force and --dry-run', async () => {
    assert.equal(keygen(['--output-dir', './ex', '--key-name', 'server']).status, 0)
    const args = ['--extract-public', '--private-key', './ex/server_private.pem', '--output-file', './ex/server_public_extracted.pem']
    const dry = keygen([...args, '--dry-run'])
    assert.equal(dry.status, 0, dry.stderr)
    assert.match(dry.stdout, /would write public key/)
    assert.equal(existsSync(join(dir, 'ex/server_public_extracted.pem')), false)

    const r = keygen(args, { umask000: true })
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /wrote public key: \.\/ex\/server_public_extracted\.pem/)
    assert.equal(await readFile(join(dir, 'ex/server_public_extracted.pem'), 'utf8'), await readFile(join(dir, 'ex/server_public.pem'), 'utf8'))
    assert.equal(await mode('ex/server_public_extracted.pem'), 0o644)

    assertFailure(keygen(args), 1, /server_public_extracted\.pem exists; use --force/)
    assert.equal(keygen([...args, '--force']).status, 0)
  })

  test('without --output-file prints the PEM; from an OpenSSH key too', async () => {
    const priv = join(dir, 'ssh_key')
    await copyFile(join(FIXTURES, 'openssh_ed25519'), priv)
    await chmod(priv, 0o600)
    const r = keygen(['--extract-public', '--private-key', priv])
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+-----END PUBLIC KEY-----\n$/)
    const fromPub = keygen(['--show-fingerprint', join(FIXTURES, 'openssh_ed25519.pub'), '--format', 'json'])
    const pemFile = join(dir, 'from_ssh.pem')
    await writeFile(pemFile, r.stdout)
    const fromPem = keygen(['--show-fingerprint', pemFile, '--format', 'json'])
    assert.equal((JSON.parse(fromPem.stdout) as { fingerprint: string }).fingerprint, (JSON.parse(fromPub.stdout) as { fingerprint: string }).fingerprint)
  })

  test('a public key given as --private-key is refused', () => {
    assertFailure(
      keygen(['--extract-public', '--private-key', join(FIXTURES, 'openssh_ed25519.pub'), '--output-file', 'out.pem']),
      1,
      /this is a public key, not a private key/,
    )
  })
})
