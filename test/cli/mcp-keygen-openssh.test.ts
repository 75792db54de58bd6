import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { encodeOpenSshPrivateKey, loadCertificateFile, loadPrivateKeyFile, loadPublicKeyFile, parsePrivateKey } from '../../src/keys/key-file.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { verifyOpenSshCertificate } from '../../src/keys/openssh-cert.js'
import { rawKeyOfPub, sshAdd, sshKeygen, sshKeygenKey, startSshAgent, type RunningAgent } from '../helpers/openssh.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-keygen.js')

let dir: string
let agent: RunningAgent
before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  dir = await mkdtemp(join(tmpdir(), 'mcp-keygen-ssh-'))
  agent = await startSshAgent(dir)
})
after(async () => {
  await agent?.stop()
  await rm(dir, { recursive: true, force: true })
})

function keygen(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', ['-c', 'umask 000; exec node "$0" "$@"', BIN, ...args], { cwd: dir, env: { ...process.env, MCP_DEBUG: '' }, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('mcp-keygen --key-format openssh', () => {
  test('writes <name> (openssh-key-v1, 0600) and <name>.pub that ssh-keygen reads, certifies and ssh-add loads', async () => {
    const r = keygen(['--output-dir', 'keys', '--key-name', 'client', '--key-format', 'openssh', '--comment', 'alice@laptop', '--format', 'json'])
    assert.equal(r.status, 0, r.stderr)
    const info = JSON.parse(r.stdout) as { private_key_path: string; public_key_path: string; fingerprint: string; fingerprint_sha256: string; key_format: string }
    assert.equal(info.private_key_path, 'keys/client')
    assert.equal(info.public_key_path, 'keys/client.pub')
    assert.equal(info.key_format, 'openssh')
    const priv = join(dir, 'keys', 'client')
    const pub = join(dir, 'keys', 'client.pub')
    assert.equal((await stat(priv)).mode & 0o777, 0o600)
    assert.equal((await stat(pub)).mode & 0o777, 0o644)
    assert.match(await readFile(priv, 'utf8'), /^-----BEGIN OPENSSH PRIVATE KEY-----\n/)
    const pubLine = (await readFile(pub, 'utf8')).trim()
    assert.match(pubLine, /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+ alice@laptop$/)

    // ssh-keygen derives the same public key from the private file, and prints the same fingerprint.
    assert.equal(sshKeygen(dir, ['-y', '-f', priv]).trim(), pubLine)
    assert.match(sshKeygen(dir, ['-l', '-f', pub]), new RegExp(`^256 ${info.fingerprint_sha256.replace(/[+/]/g, '\\$&')} alice@laptop \\(ED25519\\)`))

    // The CA certifies it; our loader reads the certificate and it verifies for this key.
    sshKeygenKey(dir, 'ca')
    sshKeygen(dir, ['-q', '-s', 'ca', '-I', 'alice', '-n', 'alice', '-V', '+1h', pub])
    const cert = await loadCertificateFile(join(dir, 'keys', 'client-cert.pub'))
    const key = await loadPrivateKeyFile(priv)
    assert.equal(key.format, 'openssh')
    assert.equal(key.comment, 'alice@laptop')
    assert.equal(key.fingerprint, info.fingerprint)
    const v = verifyOpenSshCertificate(cert.blob, {
      authorities: [rawKeyOfPub(join(dir, 'ca.pub'))],
      now: Date.now(),
      toleranceSeconds: 60,
      expectedType: 'user',
      principal: 'alice',
      subjectPublicKey: key.publicKeyRaw,
    })
    assert.ok(v.ok, v.ok ? '' : v.message)

    // ssh-add loads the private key (and the certificate beside it).
    const added = await sshAdd(agent, [priv])
    assert.equal(added.code, 0, added.stderr)
    const listed = await sshAdd(agent, ['-L'])
    assert.match(listed.stdout, new RegExp(pubLine.split(' ')[1]!.replace(/[+/]/g, '\\$&')))
    assert.match(listed.stdout, /ssh-ed25519-cert-v01@openssh.com /)
    assert.equal((await loadPublicKeyFile(pub)).fingerprint, info.fingerprint)
  })

  test('--encrypt with --key-format openssh is a usage error that says what to do', () => {
    const r = keygen(['--output-dir', 'k2', '--key-name', 'x', '--key-format', 'openssh', '--encrypt'])
    assert.equal(r.status, 2, r.stderr)
    assert.match(r.stderr, /ssh-keygen -p/)
  })

  test('encodeOpenSshPrivateKey round-trips through our parser and pads to 8 bytes for any comment length', () => {
    const pair = generateKeyPair()
    for (const comment of ['', 'a', 'abcdefg', 'x'.repeat(13)]) {
      const text = encodeOpenSshPrivateKey(pair.privateKey, comment)
      const back = parsePrivateKey(text)
      assert.equal(back.fingerprint, pair.fingerprint)
      assert.equal(back.comment ?? '', comment)
    }
  })
})
