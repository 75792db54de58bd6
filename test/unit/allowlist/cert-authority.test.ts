import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Allowlist } from '../../../src/allowlist/allowlist.js'
import { loadAllowlistFile } from '../../../src/allowlist/allowlist-file.js'
import { checkClientCertificate } from '../../../src/allowlist/cert-authority.js'
import { InMemoryRevocationList } from '../../../src/revocation/revocation-list.js'
import { certificateRevocationIds } from '../../../src/keys/openssh-cert.js'
import { fingerprintOf, generateKeyPair } from '../../../src/keys/key-pair.js'
import { rawKeyOfPub, sshCertify, sshKeygenKey } from '../../helpers/openssh.js'

let dir: string
let caRaw: Buffer
let userRaw: Buffer

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-ca-entry-'))
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'user')
  caRaw = rawKeyOfPub(join(dir, 'ca.pub'))
  userRaw = rawKeyOfPub(join(dir, 'user.pub'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

const certify = (args: string[]): Buffer => sshCertify(dir, 'ca', 'user', ['-V', '-5m:+1h', ...args])
const check = (list: Allowlist, blob: Buffer, extra: Partial<Parameters<typeof checkClientCertificate>[2]> = {}) =>
  checkClientCertificate(list, blob, { now: Date.now(), toleranceSeconds: 60, subjectPublicKey: userRaw, ...extra })

describe('allowlist certificate-authority entries', () => {
  test('stored beside keys: the line layout and pretty-printed JSON both load them; a key entry is unaffected', async () => {
    const list = new Allowlist('mem')
    const key = generateKeyPair()
    list.add({ publicKeyRaw: key.publicKeyRaw, metadata: { role: 'api' } })
    list.addCertAuthority({ publicKeyRaw: caRaw, metadata: { org: 'acme' }, principals: ['alice', 'deploy'], roleFrom: 'principal', addedBy: 't' })
    const text = list.toJSON()
    assert.match(text, /^ {2}"cert_authorities": \{.*\},$/m)
    const path = join(dir, 'allowlist.json')
    await writeFile(path, text)
    const loaded = await loadAllowlistFile(path)
    const pretty = Allowlist.fromJSON(JSON.stringify(JSON.parse(text), null, 4), 'pretty')
    for (const l of [loaded, pretty]) {
      assert.equal(l.size, 1)
      assert.equal(l.get(key.fingerprint)?.metadata.role, 'api')
      const [ca] = l.certAuthorities()
      assert.equal(ca?.fingerprint, fingerprintOf(caRaw))
      assert.deepEqual(ca?.principals, ['alice', 'deploy'])
      assert.equal(ca?.roleFrom, 'principal')
      assert.deepEqual(ca?.metadata, { org: 'acme' })
    }
    assert.equal(loaded.toJSON(0), list.toJSON(0), 'saves back byte for byte')
  })

  test('a file without the section (older version) loads with no CAs; a bad section is allowlist_invalid naming it', () => {
    assert.equal(Allowlist.fromJSON('{"version": 1, "keys": {}}').certAuthorities().length, 0)
    const bad = `{"version":1,"cert_authorities":{"${'a'.repeat(64)}":{"public_key":"${caRaw.toString('base64url')}"}},"keys":{}}`
    assert.throws(() => Allowlist.fromJSON(bad, 'f.json'), { code: 'allowlist_invalid', message: /not the SHA-256 of its public_key/ })
    const weak = Buffer.alloc(32)
    weak[0] = 1
    const fp = fingerprintOf(weak)
    assert.throws(
      () => Allowlist.fromJSON(`{"version":1,"cert_authorities":{"${fp}":{"public_key":"${weak.toString('base64url')}"}},"keys":{}}`, 'f.json'),
      { code: 'allowlist_invalid', message: /small-order/ },
    )
    const list = new Allowlist('mem')
    assert.throws(() => list.addCertAuthority({ publicKeyRaw: caRaw, roleFrom: 'group' }), { code: 'allowlist_invalid', message: /role_from/ })
  })

  test('removing a CA is reported by removedIn (its sessions can be ended)', () => {
    const a = new Allowlist('a')
    a.addCertAuthority({ publicKeyRaw: caRaw })
    const b = Allowlist.fromJSON(a.toJSON())
    assert.deepEqual(a.removedIn(b), [])
    b.removeCertAuthority(fingerprintOf(caRaw))
    assert.deepEqual(a.removedIn(b), [fingerprintOf(caRaw)])
  })
})

describe('checkClientCertificate (real ssh-keygen certificates)', () => {
  test('role from the matched principal', () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw, principals: ['deploy', 'admin'], roleFrom: 'principal' })
    const r = check(list, certify(['-I', 'alice@acme', '-z', '7', '-n', 'alice,admin']))
    assert.ok(r.ok, r.ok ? '' : r.message)
    assert.equal(r.role, 'admin')
    assert.equal(r.principal, 'admin')
    assert.equal(r.certificate.keyId, 'alice@acme')
    assert.equal(r.certificate.serial, '7')
  })

  test('a certificate with none of the entry principals: cert_wrong_principal', () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw, principals: ['deploy'] })
    const r = check(list, certify(['-I', 'x', '-n', 'alice']))
    assert.equal(r.ok ? 'ok' : r.code, 'cert_wrong_principal')
  })

  test('role from an extension, and cert_role_missing without it', () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw, roleFrom: 'extension:mcp-role@acme.com' })
    const r = check(list, certify(['-I', 'x', '-n', 'alice', '-O', 'extension:mcp-role@acme.com=operator']))
    assert.ok(r.ok && r.role === 'operator')
    const none = check(list, certify(['-I', 'x', '-n', 'alice']))
    assert.equal(none.ok ? 'ok' : none.code, 'cert_role_missing')
  })

  test('a certificate with no principals (OpenSSH: any principal) is refused, as sshd does', () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw })
    const r = check(list, certify(['-I', 'wildcard']))
    assert.equal(r.ok ? 'ok' : r.code, 'cert_wrong_principal')
    assert.match(r.ok ? '' : r.message, /lists no principals/)
  })

  test('no mapping: the entry metadata role', () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw, metadata: { role: 'reader', org: 'acme' } })
    const r = check(list, certify(['-I', 'x', '-n', 'alice']))
    assert.ok(r.ok && r.role === 'reader' && r.authority.metadata.org === 'acme')
  })

  test('host certificate, other key, revoked serial, no CA entry: precise codes', async () => {
    const list = new Allowlist('m')
    list.addCertAuthority({ publicKeyRaw: caRaw })
    const host = check(list, certify(['-h', '-I', 'h', '-n', 'web1']))
    assert.equal(host.ok ? 'ok' : host.code, 'cert_wrong_type')
    const other = check(list, certify(['-I', 'x', '-n', 'alice']), { subjectPublicKey: generateKeyPair().publicKeyRaw })
    assert.equal(other.ok ? 'ok' : other.code, 'cert_key_mismatch')
    const revocations = new InMemoryRevocationList({ sweepIntervalMs: 0 })
    await revocations.revoke(certificateRevocationIds(fingerprintOf(caRaw), '31', 'x').serial, 'lost laptop')
    const revoked = check(list, certify(['-I', 'x', '-n', 'alice', '-z', '31']), { isRevoked: (id) => revocations.isRevoked(id) })
    assert.equal(revoked.ok ? 'ok' : revoked.code, 'cert_revoked')
    const notRevoked = check(list, certify(['-I', 'x', '-n', 'alice', '-z', '32']), { isRevoked: (id) => revocations.isRevoked(id) })
    assert.ok(notRevoked.ok)
    const empty = check(new Allowlist('m'), certify(['-I', 'x', '-n', 'alice']))
    assert.equal(empty.ok ? 'ok' : empty.code, 'cert_unknown_authority')
  })
})
