import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { chmod, copyFile, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuthError } from '../../../src/errors.js'
import {
  encodePrivateKeyPem,
  formatOpenSshPublicKey,
  loadPrivateKeyFile,
  loadPublicKeyFile,
  parsePrivateKey,
  parsePublicKey,
  writePrivateKeyFile,
  writePublicKeyFile,
} from '../../../src/keys/key-file.js'
import { generateKeyPair, opensshFingerprintOf, signBytes, verifyBytes } from '../../../src/keys/key-pair.js'

const LEGACY = '/work/shared/fixtures/reference-python-format'
const FIXTURES = join(import.meta.dirname, '..', '..', 'fixtures', 'keys')
const LEGACY_CLIENT_FP = '5b42e8394b271dcd898d6fec4b321e1bfed5fb676bcdf23faf539890a0083788'
// From test/fixtures/keys/README.md (`ssh-keygen -lf openssh_ed25519.pub`).
const OPENSSH_FIXTURE_SHA256 = 'SHA256:c+yRFMbpfbmo+UnwgxwEnuHHh32iY8bWoowmh2BJ7zM'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-keyfile-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

let n = 0
function tmp(name: string): string {
  return join(dir, `${n++}-${name}`)
}

async function privateFile(name: string, contents: string, mode = 0o600): Promise<string> {
  const p = tmp(name)
  await writeFile(p, contents)
  await chmod(p, mode)
  return p
}

async function copyPrivate(src: string, mode = 0o600): Promise<string> {
  const p = tmp(src.split('/').pop()!)
  await copyFile(src, p)
  await chmod(p, mode)
  return p
}

async function rejectsWith(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof AuthError, `expected AuthError, got ${String(err)}`)
    assert.equal(err.code, code)
    assert.match(err.message, message)
    return true
  })
}

function throwsWith(fn: () => unknown, code: string, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof AuthError)
    assert.equal(err.code, code)
    assert.match(err.message, message)
    return true
  })
}

describe('writing key files', () => {
  test('private key: PKCS#8 PEM, mode 0600 even with umask 000, round-trips', async () => {
    const pair = generateKeyPair()
    const p = tmp('priv.pem')
    const old = process.umask(0)
    try {
      await writePrivateKeyFile(p, pair.privateKey)
    } finally {
      process.umask(old)
    }
    assert.equal((await stat(p)).mode & 0o777, 0o600)
    const text = await readFile(p, 'utf8')
    assert.match(text, /^-----BEGIN PRIVATE KEY-----\n/)
    const loaded = await loadPrivateKeyFile(p)
    assert.equal(loaded.format, 'pkcs8')
    assert.equal(loaded.fingerprint, pair.fingerprint)
  })

  test('public key: SPKI PEM, mode 0644', async () => {
    const pair = generateKeyPair()
    const p = tmp('pub.pem')
    await writePublicKeyFile(p, pair.publicKey)
    assert.equal((await stat(p)).mode & 0o777, 0o644)
    assert.match(await readFile(p, 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/)
    const loaded = await loadPublicKeyFile(p)
    assert.equal(loaded.format, 'spki')
    assert.equal(loaded.fingerprint, pair.fingerprint)
  })

  test('never overwrites without force; force replaces and resets the mode', async () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    const p = tmp('exists.pem')
    await writeFile(p, 'precious')
    await chmod(p, 0o644)
    await rejectsWith(writePrivateKeyFile(p, a.privateKey), 'key_file_exists', /exists; use --force to replace it/)
    assert.equal(await readFile(p, 'utf8'), 'precious')
    await writePrivateKeyFile(p, b.privateKey, { force: true })
    assert.equal((await stat(p)).mode & 0o777, 0o600)
    assert.equal((await loadPrivateKeyFile(p)).fingerprint, b.fingerprint)
    await rejectsWith(writePublicKeyFile(p, a.publicKey), 'key_file_exists', /exists/)
  })

  test('does not write through a symlink', async () => {
    const target = tmp('target')
    await writeFile(target, 'keep')
    const link = tmp('link.pem')
    await symlink(target, link)
    await rejectsWith(writePrivateKeyFile(link, generateKeyPair().privateKey), 'key_file_exists', /exists/)
    assert.equal(await readFile(target, 'utf8'), 'keep')
  })

  test('missing parent directory is key_file_invalid naming the path', async () => {
    const p = join(dir, 'no-such-dir', 'k.pem')
    await rejectsWith(writePrivateKeyFile(p, generateKeyPair().privateKey), 'key_file_invalid', /no-such-dir\/k\.pem: no such file/)
  })

  test('encrypted PKCS#8: passphrase from option or MCP_KEY_PASSPHRASE; wrong or missing passphrase refused', async () => {
    const pair = generateKeyPair()
    const p = tmp('enc.pem')
    await writePrivateKeyFile(p, pair.privateKey, { passphrase: 'correct horse' })
    const text = await readFile(p, 'utf8')
    assert.match(text, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/)
    assert.equal((await loadPrivateKeyFile(p, { passphrase: 'correct horse' })).format, 'pkcs8-encrypted')
    await rejectsWith(loadPrivateKeyFile(p, { passphrase: 'wrong' }), 'key_file_invalid', /wrong passphrase/)
    const saved = process.env.MCP_KEY_PASSPHRASE
    try {
      delete process.env.MCP_KEY_PASSPHRASE
      await rejectsWith(loadPrivateKeyFile(p, { noPrompt: true }), 'key_file_invalid', /encrypted private key: set MCP_KEY_PASSPHRASE/)
      process.env.MCP_KEY_PASSPHRASE = 'correct horse'
      assert.equal((await loadPrivateKeyFile(p)).fingerprint, pair.fingerprint)
    } finally {
      if (saved === undefined) delete process.env.MCP_KEY_PASSPHRASE
      else process.env.MCP_KEY_PASSPHRASE = saved
    }
  })

  test('OpenSSL reads both files', async (t) => {
    const pair = generateKeyPair()
    const priv = tmp('ossl_private.pem')
    const pub = tmp('ossl_public.pem')
    const enc = tmp('ossl_enc.pem')
    await writePrivateKeyFile(priv, pair.privateKey)
    await writePublicKeyFile(pub, pair.publicKey)
    await writePrivateKeyFile(enc, pair.privateKey, { passphrase: 'pw' })
    t.diagnostic('openssl pkey')
    execFileSync('openssl', ['pkey', '-in', priv, '-noout'])
    execFileSync('openssl', ['pkey', '-pubin', '-in', pub, '-noout'])
    execFileSync('openssl', ['pkey', '-in', enc, '-passin', 'pass:pw', '-noout'])
    const derived = execFileSync('openssl', ['pkey', '-in', priv, '-pubout']).toString()
    assert.equal(derived, await readFile(pub, 'utf8'))
  })

  test('caller misuse (non-ed25519 KeyObject) is a TypeError', async () => {
    const { privateKey } = generateKeyPairSync('x25519')
    await assert.rejects(writePrivateKeyFile(tmp('x.pem'), privateKey), TypeError)
  })
})

describe('loading private keys', () => {
  test('legacy MCP private key: public key equals the .pub and fingerprint matches the allowlist', async () => {
    const p = await copyPrivate(join(LEGACY, 'client-test.pem'))
    const key = await loadPrivateKeyFile(p)
    assert.equal(key.format, 'legacy-mcp')
    assert.equal(key.fingerprint, LEGACY_CLIENT_FP)
    const pub = await loadPublicKeyFile(join(LEGACY, 'client-test.pub'))
    assert.equal(pub.format, 'legacy-mcp')
    assert.ok(pub.publicKeyRaw.equals(key.publicKeyRaw))
    assert.equal(pub.fingerprint, LEGACY_CLIENT_FP)
    const sig = signBytes(key.privateKey, Buffer.from('hello'))
    assert.ok(verifyBytes(pub.publicKey, Buffer.from('hello'), sig))
    const server = await loadPrivateKeyFile(await copyPrivate(join(LEGACY, 'test-server.pem')))
    const serverPub = await loadPublicKeyFile(join(LEGACY, 'test-server.pub'))
    assert.equal(server.fingerprint, serverPub.fingerprint)
  })

  test('refuses a private key readable by group or others, with the chmod fix', async () => {
    for (const mode of [0o644, 0o640, 0o604]) {
      const p = await copyPrivate(join(LEGACY, 'client-test.pem'), mode)
      const shown = mode.toString(8).padStart(4, '0')
      await rejectsWith(
        loadPrivateKeyFile(p),
        'key_file_permissions',
        new RegExp(`permissions ${shown} are too open; a private key must be readable only by its owner\\. Fix: chmod 600 `),
      )
      assert.equal((await loadPrivateKeyFile(p, { allowInsecurePermissions: true })).fingerprint, LEGACY_CLIENT_FP)
    }
    await loadPrivateKeyFile(await copyPrivate(join(LEGACY, 'client-test.pem'), 0o400))
  })

  test('OpenSSH ed25519 private key (ssh-keygen) loads with its comment; fingerprints match ssh-keygen', async () => {
    const p = await copyPrivate(join(FIXTURES, 'openssh_ed25519'))
    const key = await loadPrivateKeyFile(p)
    assert.equal(key.format, 'openssh')
    assert.equal(key.comment, 'fixture@mcp-pki-auth')
    assert.equal(opensshFingerprintOf(key.publicKeyRaw), OPENSSH_FIXTURE_SHA256)
    const pub = await loadPublicKeyFile(join(FIXTURES, 'openssh_ed25519.pub'))
    assert.equal(pub.format, 'openssh')
    assert.equal(pub.comment, 'fixture@mcp-pki-auth')
    assert.equal(pub.fingerprint, key.fingerprint)
    // Our own encoder produces the same line ssh-keygen wrote.
    const line = (await readFile(join(FIXTURES, 'openssh_ed25519.pub'), 'utf8')).trim()
    assert.equal(formatOpenSshPublicKey(key.publicKeyRaw, key.comment), line)
  })

  test('a freshly generated ssh-keygen key agrees with `ssh-keygen -lf`', async () => {
    const p = tmp('fresh')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fresh', '-f', p])
    const printed = execFileSync('ssh-keygen', ['-lf', `${p}.pub`]).toString().split(' ')[1]
    const key = await loadPrivateKeyFile(p)
    assert.equal(opensshFingerprintOf(key.publicKeyRaw), printed)
  })

  test('OpenSSH RSA and passphrase-protected OpenSSH keys are refused clearly', async () => {
    const rsa = await copyPrivate(join(FIXTURES, 'openssh_rsa'))
    await rejectsWith(loadPrivateKeyFile(rsa), 'key_file_invalid', /expected an ed25519 private key, got an rsa OpenSSH key/)
    const enc = tmp('ssh-enc')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'secret-pass', '-f', enc])
    await rejectsWith(loadPrivateKeyFile(enc), 'key_file_invalid', /passphrase-protected OpenSSH keys \(cipher aes256-ctr\) are not supported/)
  })

  test('corrupted OpenSSH keys are refused', async () => {
    const text = await readFile(join(FIXTURES, 'openssh_ed25519'), 'utf8')
    const body = text.split('\n').slice(1, -2).join('')
    const data = Buffer.from(body, 'base64')
    const wrap = (buf: Buffer): string =>
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${buf.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`
    throwsWith(() => parsePrivateKey(wrap(data.subarray(0, 100)), 'trunc'), 'key_file_invalid', /^trunc: truncated OpenSSH key data/)
    const badMagic = Buffer.from(data)
    badMagic[0] = 0x78
    throwsWith(() => parsePrivateKey(wrap(badMagic), 'magic'), 'key_file_invalid', /bad magic/)
    // Flip a byte of the first check integer (after magic, 3 strings, count, pub string, section length).
    const check = Buffer.from(data)
    const pubLen = check.readUInt32BE(15 + 4 + 4 + 4 + 4 + 4 + 4)
    const sectionStart = 15 + 8 + 8 + 4 + 4 + 4 + pubLen + 4
    check[sectionStart] = check[sectionStart]! ^ 0xff
    throwsWith(() => parsePrivateKey(wrap(check), 'check'), 'key_file_invalid', /check integers differ/)
  })

  test('wrong key types name what was found', async () => {
    const cases: [string, string][] = [
      [generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'an rsa private key'],
      [generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }) as string, 'an rsa private key'],
      [generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'an ec private key'],
      [generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'sec1', format: 'pem' }) as string, 'an ec private key'],
      [generateKeyPairSync('x25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'an x25519 private key'],
      [generateKeyPairSync('ed448').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, 'an ed448 private key'],
    ]
    for (const [pem, what] of cases) {
      const p = await privateFile('wrong.pem', pem)
      await rejectsWith(loadPrivateKeyFile(p), 'key_file_invalid', new RegExp(`^${p}: expected an ed25519 private key, got ${what}$`))
    }
  })

  test('missing, empty, truncated, garbage and public files are key_file_invalid with the path', async () => {
    const missing = join(dir, 'nope.pem')
    await rejectsWith(loadPrivateKeyFile(missing), 'key_file_invalid', new RegExp(`^${missing}: no such file$`))
    await rejectsWith(loadPrivateKeyFile(dir), 'key_file_invalid', /is a directory/)
    await rejectsWith(loadPrivateKeyFile(await privateFile('empty.pem', '')), 'key_file_invalid', /file is empty/)
    const pem = encodePrivateKeyPem(generateKeyPair().privateKey)
    await rejectsWith(loadPrivateKeyFile(await privateFile('trunc.pem', pem.slice(0, 50))), 'key_file_invalid', /truncated PEM: the -----END …----- line is missing/)
    const lines = pem.split('\n')
    const shortBody = `${lines[0]}\n${lines[1]!.slice(0, 20)}\n${lines[2]}\n`
    await rejectsWith(loadPrivateKeyFile(await privateFile('short.pem', shortBody)), 'key_file_invalid', /corrupt or truncated PEM/)
    await rejectsWith(
      loadPrivateKeyFile(await privateFile('garbage.pem', '-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n')),
      'key_file_invalid',
      /garbage\.pem: corrupt or truncated PEM/,
    )
    await rejectsWith(
      loadPrivateKeyFile(await privateFile('garbage-legacy.pem', '-----BEGIN MCP PRIVATE KEY-----\n!!!!\n-----END MCP PRIVATE KEY-----\n')),
      'key_file_invalid',
      /corrupt PEM: the body is not valid base64/,
    )
    await rejectsWith(loadPrivateKeyFile(await privateFile('text.pem', 'hello world\n')), 'key_file_invalid', /not a private key file/)
    await rejectsWith(loadPrivateKeyFile(await privateFile('bin.pem', '\0\0\x01')), 'key_file_invalid', /binary data/)
    const pubPem = await privateFile('pub-as-priv.pem', generateKeyPair().publicKey.export({ type: 'spki', format: 'pem' }) as string)
    await rejectsWith(loadPrivateKeyFile(pubPem), 'key_file_invalid', /this is a public key, not a private key/)
    const legacyShort = '-----BEGIN MCP PRIVATE KEY-----\nAAAA\n-----END MCP PRIVATE KEY-----'
    await rejectsWith(loadPrivateKeyFile(await privateFile('legacy-short.pem', legacyShort)), 'key_file_invalid', /must hold 32 bytes, found 3/)
  })

  test('error messages never contain key material', async () => {
    const pem = await readFile(join(LEGACY, 'client-test.pem'), 'utf8')
    const seedB64 = pem.split('\n')[1]!
    const p = await copyPrivate(join(LEGACY, 'client-test.pem'), 0o644)
    await assert.rejects(loadPrivateKeyFile(p), (err: Error) => !err.message.includes(seedB64))
  })
})

describe('parsing public keys', () => {
  const pair = generateKeyPair()
  const raw = pair.publicKeyRaw

  test('every supported format yields the same key and fingerprint', () => {
    const forms = [
      pair.publicKey.export({ type: 'spki', format: 'pem' }) as string,
      formatOpenSshPublicKey(raw, 'alice@example'),
      `# a comment line\n${formatOpenSshPublicKey(raw)}\n`,
      `from="127.0.0.1" ${formatOpenSshPublicKey(raw, 'with options')}`,
      `-----BEGIN MCP PUBLIC KEY-----\n${raw.toString('base64')}\n-----END MCP PUBLIC KEY-----`,
      raw.toString('base64'),
    ]
    const formats = forms.map((f) => {
      const k = parsePublicKey(f, 'x')
      assert.equal(k.fingerprint, pair.fingerprint)
      assert.ok(k.publicKeyRaw.equals(raw))
      return k.format
    })
    assert.deepEqual(formats, ['spki', 'openssh', 'openssh', 'openssh', 'legacy-mcp', 'raw-base64'])
    assert.equal(parsePublicKey(forms[1]!).comment, 'alice@example')
    assert.equal(parsePublicKey(forms[3]!).comment, 'with options')
  })

  test('refuses private keys with an --extract-public hint', () => {
    throwsWith(() => parsePublicKey(encodePrivateKeyPem(pair.privateKey), 'k.pem'), 'key_file_invalid', /^k\.pem: this is a private key.*mcp-keygen --extract-public/)
  })

  test('wrong types and corrupt input', async () => {
    const rsaPub = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string
    throwsWith(() => parsePublicKey(rsaPub, 'r'), 'key_file_invalid', /expected an ed25519 public key, got an rsa public key/)
    const x = generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }) as string
    throwsWith(() => parsePublicKey(x, 'x'), 'key_file_invalid', /got an x25519 public key/)
    const sshRsa = await readFile(join(FIXTURES, 'openssh_rsa.pub'), 'utf8')
    throwsWith(() => parsePublicKey(sshRsa, 's'), 'key_file_invalid', /got an rsa OpenSSH key/)
    throwsWith(() => parsePublicKey('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==', 't'), 'key_file_invalid', /truncated OpenSSH key data/)
    throwsWith(() => parsePublicKey('ssh-ed25519', 't'), 'key_file_invalid', /no base64 key/)
    throwsWith(() => parsePublicKey('', 'e'), 'key_file_invalid', /no public key found/)
    throwsWith(() => parsePublicKey('hello', 'h'), 'key_file_invalid', /not a recognised public key/)
    throwsWith(() => parsePublicKey(`${formatOpenSshPublicKey(raw)}\n${formatOpenSshPublicKey(raw)}`, 'two'), 'key_file_invalid', /expected one public key, found 2 lines/)
    const spki = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string
    throwsWith(() => parsePublicKey(spki.slice(0, 40), 'cut'), 'key_file_invalid', /truncated PEM/)
    throwsWith(
      () => parsePublicKey('-----BEGIN MCP PUBLIC KEY-----\nAAAA\n-----END MCP PUBLIC KEY-----', 'short'),
      'key_file_invalid',
      /an ed25519 public key is 32 bytes, found 3/,
    )
    await rejectsWith(loadPublicKeyFile(join(dir, 'missing.pub')), 'key_file_invalid', /missing\.pub: no such file$/)
  })
})
