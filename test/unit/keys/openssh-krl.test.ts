import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadOpenSshKrlFile, parseOpenSshKrl } from '../../../src/keys/openssh-krl.js'
import { verifyOpenSshCertificate } from '../../../src/keys/openssh-cert.js'
import { rawKeyOfPub, sshCertify, sshKeygen, sshKeygenKey } from '../../helpers/openssh.js'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-krl-'))
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'other_ca')
  sshKeygenKey(dir, 'user')
  sshKeygenKey(dir, 'lost')
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** What OpenSSH itself says: `ssh-keygen -Q -f krl file` exits 1 when the key or certificate is revoked. */
function opensshSaysRevoked(krl: string, file: string): boolean {
  try {
    execFileSync('ssh-keygen', ['-Q', '-f', krl, file], { cwd: dir, stdio: 'ignore' })
    return false
  } catch (err) {
    if ((err as { status?: number }).status === 1) return true
    throw err
  }
}

test('a KRL from ssh-keygen -k: serial list, range, scattered serials (bitmap) and key ids, per CA; keys explicitly and by hash — agreeing with ssh-keygen -Q', async () => {
  const scattered = Array.from({ length: 40 }, (_, i) => `serial: ${1000 + 3 * i}`).join('\n')
  await writeFile(join(dir, 'spec'), `serial: 5\nserial: 10-20\n${scattered}\nid: laptop-7\n`)
  sshKeygen(dir, ['-q', '-k', '-f', 'krl', '-z', '42', '-s', 'ca.pub', 'spec'])
  const lostFp = sshKeygen(dir, ['-l', '-f', 'lost.pub']).split(' ')[1]!
  await writeFile(join(dir, 'keyspec'), `hash: ${lostFp}\n`)
  sshKeygen(dir, ['-q', '-k', '-u', '-f', 'krl', 'keyspec'])
  sshKeygen(dir, ['-q', '-k', '-u', '-f', 'krl', 'other_ca.pub'])

  const krl = await loadOpenSshKrlFile(join(dir, 'krl'))
  const caRaw = rawKeyOfPub(join(dir, 'ca.pub'))
  const cases: [string, string[], string, boolean][] = [
    ['serial 5', ['-z', '5', '-I', 'a'], 'ca', true],
    ['serial 6', ['-z', '6', '-I', 'a'], 'ca', false],
    ['serial 10 (range start)', ['-z', '10', '-I', 'a'], 'ca', true],
    ['serial 20 (range end)', ['-z', '20', '-I', 'a'], 'ca', true],
    ['serial 21', ['-z', '21', '-I', 'a'], 'ca', false],
    ['serial 1003 (bitmap)', ['-z', '1003', '-I', 'a'], 'ca', true],
    ['serial 1004 (bitmap gap)', ['-z', '1004', '-I', 'a'], 'ca', false],
    ['serial 1117 (bitmap end)', ['-z', '1117', '-I', 'a'], 'ca', true],
    ['key id laptop-7', ['-z', '99', '-I', 'laptop-7'], 'ca', true],
    ['serial 5 from another CA', ['-z', '5', '-I', 'a'], 'other_ca', true /* other_ca itself is revoked */],
  ]
  for (const [name, args, ca, expected] of cases) {
    const blob = sshCertify(dir, ca, 'user', ['-n', 'alice', '-V', '-5m:+1h', ...args])
    assert.equal(opensshSaysRevoked('krl', 'user-cert.pub'), expected, `ssh-keygen -Q: ${name}`)
    const r = verifyOpenSshCertificate(blob, {
      authorities: [caRaw, rawKeyOfPub(join(dir, 'other_ca.pub'))],
      now: Date.now(),
      toleranceSeconds: 60,
      expectedType: 'user',
      krl,
    })
    assert.equal(r.ok ? 'ok' : r.code, expected ? 'cert_revoked' : 'ok', name)
  }
  assert.equal(krl.isKeyRevoked(rawKeyOfPub(join(dir, 'lost.pub'))), true)
  assert.equal(opensshSaysRevoked('krl', 'lost.pub'), true)
  assert.equal(krl.isKeyRevoked(rawKeyOfPub(join(dir, 'user.pub'))), false)
  assert.equal(krl.version, 42n)
})

test('hostile KRLs are refused with key_file_invalid: bad magic, truncated, unknown section, SHA-1 section', async () => {
  const good = await readFile(join(dir, 'krl'))
  assert.throws(() => parseOpenSshKrl(Buffer.from('not a krl at all, no'), 'x'), { code: 'key_file_invalid', message: /bad magic/ })
  assert.throws(() => parseOpenSshKrl(good.subarray(0, good.length - 3), 'x'), { code: 'key_file_invalid', message: /truncated/ })
  const unknown = Buffer.concat([good, Buffer.from([9, 0, 0, 0, 0])])
  assert.throws(() => parseOpenSshKrl(unknown, 'x'), { code: 'key_file_invalid', message: /unknown KRL section type 9/ })
  await writeFile(join(dir, 'sha1spec'), `sha1: ${(await readFile(join(dir, 'user.pub'), 'utf8')).trim()}\n`)
  sshKeygen(dir, ['-q', '-k', '-f', 'krl1', 'sha1spec'])
  await assert.rejects(loadOpenSshKrlFile(join(dir, 'krl1')), { code: 'key_file_invalid', message: /SHA-1/ })
})
