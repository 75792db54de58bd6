// The server's KRL check (revocation/krl-revocation.ts) over KRLs written by the real ssh-keygen -k:
// explicit keys by fingerprint, keys by hash once seen, certificates by serial (list, range) and key
// id from what a session remembers, a reload that revokes a key seen before, and combining with
// another revocation check.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fingerprintOf } from '../../../src/keys/key-pair.js'
import { certificateRevocationIds } from '../../../src/keys/openssh-cert.js'
import { loadOpenSshKrlFile } from '../../../src/keys/openssh-krl.js'
import { InMemoryRevocationList } from '../../../src/revocation/revocation-list.js'
import { KrlRevocation, combineRevocationChecks } from '../../../src/revocation/krl-revocation.js'
import { rawKeyOfPub, sshKeygen, sshKeygenKey } from '../../helpers/openssh.js'

let dir: string
const raw: Record<string, Buffer> = {}
const fp: Record<string, string> = {}
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-krl-rev-'))
  for (const k of ['ca', 'other_ca', 'explicit', 'hashed', 'innocent']) {
    sshKeygenKey(dir, k)
    raw[k] = rawKeyOfPub(join(dir, `${k}.pub`))
    fp[k] = fingerprintOf(raw[k]!)
  }
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function krlOf(name: string, build: () => unknown): Promise<KrlRevocation> {
  await build()
  return new KrlRevocation(await loadOpenSshKrlFile(join(dir, name)))
}

const keyIdId = (ca: string, keyId: string): string => certificateRevocationIds(fp[ca]!, '0', keyId).keyId

test('keys: explicit ones by fingerprint at once; by hash once the key was seen at message 3', async () => {
  const hashFp = sshKeygen(dir, ['-l', '-f', 'hashed.pub']).split(' ')[1]!
  await writeFile(join(dir, 'hashspec'), `hash: ${hashFp}\n`)
  const r = await krlOf('keys.krl', () => {
    sshKeygen(dir, ['-q', '-k', '-f', 'keys.krl', 'explicit.pub'])
    sshKeygen(dir, ['-q', '-k', '-u', '-f', 'keys.krl', 'hashspec'])
  })
  assert.equal(r.isRevoked(fp.explicit!), true)
  assert.equal(r.isRevoked(fp.hashed!), false, 'a hash names no fingerprint until the key is seen')
  assert.equal(r.isPublicKeyRevoked(raw.hashed!, fp.hashed!), true)
  assert.equal(r.isRevoked(fp.hashed!), true, 'seen: its sessions are refused too')
  assert.equal(r.isPublicKeyRevoked(raw.innocent!, fp.innocent!), false)
  assert.equal(r.isRevoked(fp.innocent!), false)
})

test('certificates: serials (one, a range) and key ids under their CA only; serial 0 never by serial', async () => {
  await writeFile(join(dir, 'certspec'), 'serial: 7\nserial: 100-200\nid: laptop-3\n')
  const r = await krlOf('certs.krl', () => sshKeygen(dir, ['-q', '-k', '-f', 'certs.krl', '-s', 'ca.pub', 'certspec']))
  const check = (ca: string, serial: string, keyId: string) => r.certificateRevocation(fp[ca]!, serial, keyIdId(ca, keyId))
  assert.equal(check('ca', '7', 'x'), 'serial')
  assert.equal(check('ca', '8', 'x'), undefined)
  assert.equal(check('ca', '100', 'x'), 'serial')
  assert.equal(check('ca', '200', 'x'), 'serial')
  assert.equal(check('ca', '201', 'x'), undefined)
  assert.equal(check('ca', '0', 'laptop-3'), 'key_id')
  assert.equal(check('ca', '0', 'laptop-4'), undefined)
  assert.equal(check('other_ca', '7', 'laptop-3'), undefined, 'another CA')
  assert.equal(check('ca', '18446744073709551615', 'y'), undefined)
})

test('a reload revokes a key seen before by its hash, and lifts what the new KRL no longer lists', async () => {
  const r = await krlOf('empty.krl', () => sshKeygen(dir, ['-q', '-k', '-f', 'empty.krl', '/dev/null']))
  assert.equal(r.isPublicKeyRevoked(raw.hashed!, fp.hashed!), false)
  const hashFp = sshKeygen(dir, ['-l', '-f', 'hashed.pub']).split(' ')[1]!
  await writeFile(join(dir, 'hashspec2'), `hash: ${hashFp}\n`)
  sshKeygen(dir, ['-q', '-k', '-f', 'next.krl', 'hashspec2'])
  r.replace(await loadOpenSshKrlFile(join(dir, 'next.krl')))
  assert.equal(r.isRevoked(fp.hashed!), true, 'remembered from its handshake')
  r.replace(await loadOpenSshKrlFile(join(dir, 'empty.krl')))
  assert.equal(r.isRevoked(fp.hashed!), false)
})

test('combined with a revocation list: revoked when either says so', async () => {
  const krl = await krlOf('explicit.krl', () => sshKeygen(dir, ['-q', '-k', '-f', 'explicit.krl', 'explicit.pub']))
  const list = new InMemoryRevocationList()
  await list.revoke(fp.innocent!)
  const both = combineRevocationChecks(list, krl)!
  assert.equal(both.isRevoked(fp.explicit!), true)
  assert.equal(both.isRevoked(fp.innocent!), true)
  assert.equal(both.isRevoked(fp.hashed!), false)
  assert.equal(combineRevocationChecks(undefined, krl), krl)
})
