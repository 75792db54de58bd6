import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  certificateRevocationIds,
  MAX_CERTIFICATE_SIZE,
  parseOpenSshCertificate,
  parseOpenSshCertificateLine,
  sourceAddressAllows,
  verifyOpenSshCertificate,
  type VerifyCertificateOptions,
} from '../../../src/keys/openssh-cert.js'
import { fingerprintOf, generateKeyPair, signBytes } from '../../../src/keys/key-pair.js'
import { sshString, sshU32, sshU64 } from '../../../src/keys/ssh-wire.js'
import { rawKeyOfPub, sshCertify, sshKeygenKey } from '../../helpers/openssh.js'

let dir: string
let caRaw: Buffer
let otherCaRaw: Buffer
let userRaw: Buffer
/** 2030-01-01T00:30:00Z: inside the -V 20300101000000:20300101010000 window used below. */
const IN_WINDOW = Date.UTC(2030, 0, 1, 0, 30)
const WINDOW = '20300101000000:20300101010000'

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-cert-'))
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'other_ca')
  sshKeygenKey(dir, 'user')
  caRaw = rawKeyOfPub(join(dir, 'ca.pub'))
  otherCaRaw = rawKeyOfPub(join(dir, 'other_ca.pub'))
  userRaw = rawKeyOfPub(join(dir, 'user.pub'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

function opts(extra: Partial<VerifyCertificateOptions> = {}): VerifyCertificateOptions {
  return { authorities: [caRaw], now: IN_WINDOW, toleranceSeconds: 60, expectedType: 'user', ...extra }
}

function certify(args: string[], ca = 'ca'): Buffer {
  return sshCertify(dir, ca, 'user', args)
}

describe('real ssh-keygen certificates', () => {
  test('a user certificate verifies and reports key id, serial, principals, extensions, window, CA', () => {
    const blob = certify(['-I', 'alice@acme', '-n', 'alice,deploy', '-V', WINDOW, '-z', '4242', '-O', 'extension:role=admin'])
    const r = verifyOpenSshCertificate(blob, opts({ principal: 'deploy', subjectPublicKey: userRaw }))
    assert.equal(r.ok, true, r.ok ? '' : r.message)
    if (!r.ok) return
    assert.equal(r.keyId, 'alice@acme')
    assert.equal(r.serial, '4242')
    assert.deepEqual(r.principals, ['alice', 'deploy'])
    assert.equal(r.extensions.role, 'admin')
    assert.equal(r.extensions['permit-pty'], '')
    assert.equal(r.validAfter, Date.UTC(2030, 0, 1, 0, 0))
    assert.equal(r.validBefore, Date.UTC(2030, 0, 1, 1, 0))
    assert.equal(r.caFingerprint, fingerprintOf(caRaw))
    assert.deepEqual(r.subjectPublicKey, userRaw)
  })

  test('a -V always:forever certificate has validBefore Infinity and a uint64 serial beyond 2^53 survives', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', 'always:forever', '-z', '18446744073709551614'])
    const r = verifyOpenSshCertificate(blob, opts({ now: Date.now() }))
    assert.ok(r.ok)
    assert.equal(r.validBefore, Number.POSITIVE_INFINITY)
    assert.equal(r.validAfter, 0)
    assert.equal(r.serial, '18446744073709551614')
  })

  test('expired and not-yet-valid, with the tolerance applied at both ends', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW])
    const start = Date.UTC(2030, 0, 1, 0, 0)
    const end = Date.UTC(2030, 0, 1, 1, 0)
    const at = (now: number, tol = 60): string => {
      const r = verifyOpenSshCertificate(blob, opts({ now, toleranceSeconds: tol }))
      return r.ok ? 'ok' : r.code
    }
    assert.equal(at(start - 61_000), 'cert_not_yet_valid')
    assert.equal(at(start - 60_000), 'ok')
    assert.equal(at(start - 1000, 0), 'cert_not_yet_valid')
    assert.equal(at(start, 0), 'ok')
    assert.equal(at(end - 1000, 0), 'ok')
    assert.equal(at(end, 0), 'cert_expired')
    assert.equal(at(end + 59_000), 'ok')
    assert.equal(at(end + 60_000), 'cert_expired')
  })

  test('a host certificate is refused where a user one is expected, and accepted for its host name', () => {
    const blob = certify(['-h', '-I', 'web1', '-n', 'web1.example.com', '-V', WINDOW])
    const asUser = verifyOpenSshCertificate(blob, opts())
    assert.equal(asUser.ok ? 'ok' : asUser.code, 'cert_wrong_type')
    const asHost = verifyOpenSshCertificate(blob, opts({ expectedType: 'host', principal: 'web1.example.com' }))
    assert.ok(asHost.ok)
    const otherHost = verifyOpenSshCertificate(blob, opts({ expectedType: 'host', principal: 'evil.example.com' }))
    assert.equal(otherHost.ok ? 'ok' : otherHost.code, 'cert_wrong_principal')
  })

  test('wrong principal, and a certificate with no principals when one is required', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW])
    const r = verifyOpenSshCertificate(blob, opts({ principal: 'bob' }))
    assert.equal(r.ok ? 'ok' : r.code, 'cert_wrong_principal')
    assert.match(r.ok ? '' : r.message, /lists principals alice, not "bob"/)
    const none = certify(['-I', 'x', '-V', WINDOW])
    const r2 = verifyOpenSshCertificate(none, opts({ principal: 'bob' }))
    assert.equal(r2.ok ? 'ok' : r2.code, 'cert_wrong_principal')
  })

  test('another CA: cert_unknown_authority naming its fingerprint', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW], 'other_ca')
    const r = verifyOpenSshCertificate(blob, opts())
    assert.equal(r.ok ? 'ok' : r.code, 'cert_unknown_authority')
    assert.match(r.ok ? '' : r.message, new RegExp(fingerprintOf(otherCaRaw)))
    assert.ok(verifyOpenSshCertificate(blob, opts({ authorities: [caRaw, otherCaRaw] })).ok)
  })

  test('critical options force-command and source-address are refused; source-address is enforced when the address is given', () => {
    const fc = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW, '-O', 'force-command=/bin/true'])
    const r = verifyOpenSshCertificate(fc, opts())
    assert.equal(r.ok ? 'ok' : r.code, 'cert_critical_option')
    assert.match(r.ok ? '' : r.message, /"force-command"/)
    const sa = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW, '-O', 'source-address=10.0.0.0/8,192.168.1.7'])
    const code = (address?: string): string => {
      const v = verifyOpenSshCertificate(sa, opts(address === undefined ? {} : { clientAddress: address }))
      return v.ok ? 'ok' : v.code
    }
    assert.equal(code(), 'cert_critical_option')
    assert.equal(code('10.1.2.3'), 'ok')
    assert.equal(code('192.168.1.7'), 'ok')
    assert.equal(code('192.168.1.8'), 'cert_critical_option')
    assert.equal(code('::1'), 'cert_critical_option')
  })

  test('the subject key must be the key presented', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW])
    const r = verifyOpenSshCertificate(blob, opts({ subjectPublicKey: generateKeyPair().publicKeyRaw }))
    assert.equal(r.ok ? 'ok' : r.code, 'cert_key_mismatch')
  })

  test('revocation by serial, by key id (both scoped to the CA) and by subject key', () => {
    const blob = certify(['-I', 'laptop-7', '-n', 'alice', '-V', WINDOW, '-z', '99'])
    const caFp = fingerprintOf(caRaw)
    const ids = certificateRevocationIds(caFp, '99', 'laptop-7')
    for (const revoked of [ids.serial, ids.keyId, fingerprintOf(userRaw)]) {
      const r = verifyOpenSshCertificate(blob, opts({ isRevoked: (id) => id === revoked }))
      assert.equal(r.ok ? 'ok' : r.code, 'cert_revoked')
    }
    const otherCa = certificateRevocationIds(fingerprintOf(otherCaRaw), '99', 'laptop-7')
    const r = verifyOpenSshCertificate(blob, opts({ isRevoked: (id) => id === otherCa.serial || id === otherCa.keyId }))
    assert.ok(r.ok, 'a revocation under another CA does not apply')
    assert.notEqual(ids.serial, ids.keyId)
    assert.match(ids.serial, /^[0-9a-f]{64}$/)
  })

  test('order: an unknown CA is reported before a bad signature, a bad signature before expiry', () => {
    const blob = certify(['-I', 'x', '-n', 'alice', '-V', WINDOW])
    const bad = Buffer.from(blob)
    bad[bad.length - 1]! ^= 1
    const late = Date.UTC(2031, 0, 1)
    const r1 = verifyOpenSshCertificate(bad, opts({ now: late, authorities: [otherCaRaw] }))
    assert.equal(r1.ok ? 'ok' : r1.code, 'cert_unknown_authority')
    const r2 = verifyOpenSshCertificate(bad, opts({ now: late }))
    assert.equal(r2.ok ? 'ok' : r2.code, 'cert_bad_signature')
  })

  test('parseOpenSshCertificateLine reads a -cert.pub file', async () => {
    certify(['-I', 'line', '-n', 'alice', '-V', WINDOW])
    const { blob, comment } = parseOpenSshCertificateLine(await readFile(join(dir, 'user-cert.pub'), 'utf8'))
    assert.equal(parseOpenSshCertificate(blob).keyId, 'line')
    assert.equal(comment, 'user')
    assert.throws(() => parseOpenSshCertificateLine(`ssh-ed25519 ${blob.toString('base64')}`), { code: 'cert_malformed' })
  })

  test('sourceAddressAllows: a malformed list allows nothing', () => {
    assert.equal(sourceAddressAllows('10.0.0.0/8', '10.0.0.1'), true)
    assert.equal(sourceAddressAllows('10.0.0.0/33', '10.0.0.1'), false)
    assert.equal(sourceAddressAllows('nonsense', '10.0.0.1'), false)
    assert.equal(sourceAddressAllows('2001:db8::/32', '2001:db8::5'), true)
  })
})

// ---------------------------------------------------------------------------------------------
// Hostile inputs: certificates built field by field and signed by a CA we hold.

interface Fields {
  type: string
  nonce: Buffer
  key: Buffer
  serial: bigint
  certType: number
  keyId: Buffer
  principals: Buffer
  after: bigint
  before: bigint
  critical: Buffer
  extensions: Buffer
  reserved: Buffer
}

const ca = generateKeyPair()
const subject = generateKeyPair()

function baseFields(): Fields {
  return {
    type: 'ssh-ed25519-cert-v01@openssh.com',
    nonce: Buffer.alloc(32, 7),
    key: subject.publicKeyRaw,
    serial: 1n,
    certType: 1,
    keyId: Buffer.from('hostile'),
    principals: sshString('alice'),
    after: 0n,
    before: 0xffff_ffff_ffff_ffffn,
    critical: Buffer.alloc(0),
    extensions: Buffer.alloc(0),
    reserved: Buffer.alloc(0),
  }
}

function build(f: Partial<Fields> = {}, tail: { caBlob?: Buffer; sig?: Buffer; trailing?: Buffer } = {}): Buffer {
  const v = { ...baseFields(), ...f }
  const signed = Buffer.concat([
    sshString(v.type),
    sshString(v.nonce),
    sshString(v.key),
    sshU64(v.serial),
    sshU32(v.certType),
    sshString(v.keyId),
    sshString(v.principals),
    sshU64(v.after),
    sshU64(v.before),
    sshString(v.critical),
    sshString(v.extensions),
    sshString(v.reserved),
    sshString(tail.caBlob ?? Buffer.concat([sshString('ssh-ed25519'), sshString(ca.publicKeyRaw)])),
  ])
  const sig = tail.sig ?? Buffer.concat([sshString('ssh-ed25519'), sshString(signBytes(ca.privateKey, signed))])
  return Buffer.concat([signed, sshString(sig), tail.trailing ?? Buffer.alloc(0)])
}

const hostileOpts = (): VerifyCertificateOptions => ({ authorities: [ca.publicKeyRaw], now: Date.now(), toleranceSeconds: 60, expectedType: 'user' })
const pairs = (...kv: [string, Buffer][]): Buffer => Buffer.concat(kv.flatMap(([k, v]) => [sshString(k), sshString(v)]))

describe('hostile certificates', () => {
  test('the builder makes a certificate that verifies (so each row below fails for its own reason)', () => {
    const r = verifyOpenSshCertificate(build(), hostileOpts())
    assert.ok(r.ok, r.ok ? '' : r.message)
  })

  const overflow = Buffer.from(build())
  overflow.writeUInt32BE(0xffffffff, 0)
  const nested = Buffer.from(build({ principals: Buffer.concat([sshU32(0x7fffffff), Buffer.from('alice')]) }))
  const small = Buffer.from('0100000000000000000000000000000000000000000000000000000000000000', 'hex')
  const smallSigned = Buffer.from('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', 'hex')
  const nonCanonical = Buffer.from('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex')
  const rows: [string, () => Buffer, string, RegExp?][] = [
    ['empty', () => Buffer.alloc(0), 'cert_malformed', /truncated/],
    ['truncated by one byte', () => build().subarray(0, build().length - 1), 'cert_malformed', /truncated/],
    ['truncated inside the header', () => build().subarray(0, 50), 'cert_malformed'],
    ['huge (over 16 KiB)', () => Buffer.alloc(MAX_CERTIFICATE_SIZE + 1), 'cert_malformed', /16384-byte limit/],
    ['huge, well-formed (17 KiB key id)', () => build({ keyId: Buffer.alloc(17 * 1024, 0x61) }), 'cert_malformed', /limit/],
    ['type ssh-ed25519 (a plain key)', () => build({ type: 'ssh-ed25519' }), 'cert_malformed', /is not ssh-ed25519-cert/],
    ['type rsa cert', () => build({ type: 'ssh-rsa-cert-v01@openssh.com' }), 'cert_malformed'],
    ['outer length overflowing', () => overflow, 'cert_malformed', /truncated/],
    ['nested principal length overflowing', () => nested, 'cert_malformed', /truncated/],
    ['trailing garbage', () => build({}, { trailing: Buffer.from([0]) }), 'cert_malformed', /trailing bytes after the signature/],
    ['trailing bytes in the signature blob', () => build({}, { sig: Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(64)), Buffer.from([1])]) }), 'cert_malformed'],
    ['signature of 63 bytes', () => build({}, { sig: Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(63))]) }), 'cert_malformed', /63 bytes/],
    ['signature algorithm mismatch', () => build({}, { sig: Buffer.concat([sshString('rsa-sha2-512'), sshString(Buffer.alloc(64))]) }), 'cert_malformed'],
    ['bad signature', () => build({}, { sig: Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(64, 1))]) }), 'cert_bad_signature'],
    ['signed by another key than the CA it names', () => {
      const other = generateKeyPair()
      const good = build()
      const signedLen = good.length - (4 + 4 + 11 + 4 + 64)
      const sig = Buffer.concat([sshString('ssh-ed25519'), sshString(signBytes(other.privateKey, good.subarray(0, signedLen)))])
      return build({}, { sig })
    }, 'cert_bad_signature'],
    ['RSA CA', () => build({}, { caBlob: Buffer.concat([sshString('ssh-rsa'), sshString(Buffer.alloc(3, 1)), sshString(Buffer.alloc(256, 1))]) }), 'cert_unknown_authority', /only ed25519/],
    ['certificate type 3', () => build({ certType: 3 }), 'cert_malformed'],
    ['host type where user expected', () => build({ certType: 2 }), 'cert_wrong_type'],
    ['unknown critical option', () => build({ critical: pairs(['no-such-option', Buffer.alloc(0)]) }), 'cert_critical_option', /"no-such-option"/],
    ['extra critical option beside a known one', () => build({ critical: pairs(['force-command', sshString('/bin/sh')], ['verify-required', Buffer.alloc(0)]) }), 'cert_critical_option'],
    ['critical options out of order', () => build({ critical: pairs(['source-address', sshString('10.0.0.0/8')], ['force-command', sshString('x')]) }), 'cert_malformed', /sorted/],
    ['repeated extension', () => build({ extensions: pairs(['permit-pty', Buffer.alloc(0)], ['permit-pty', Buffer.alloc(0)]) }), 'cert_malformed', /repeated/],
    ['option value with trailing bytes', () => build({ extensions: pairs(['role', Buffer.concat([sshString('admin'), Buffer.from([0])])]) }), 'cert_malformed', /trailing/],
    ['key id with a newline', () => build({ keyId: Buffer.from('a\nb') }), 'cert_malformed', /control/],
    ['key id not UTF-8', () => build({ keyId: Buffer.from([0xff, 0xfe]) }), 'cert_malformed', /UTF-8/],
    ['empty principal', () => build({ principals: sshString('') }), 'cert_malformed'],
    ['300 principals', () => build({ principals: Buffer.concat(Array.from({ length: 300 }, (_, i) => sshString(`p${i}`))) }), 'cert_malformed', /more than 256/],
    ['valid_before before valid_after', () => build({ after: 100n, before: 50n }), 'cert_malformed'],
    ['subject key of 31 bytes', () => build({ key: Buffer.alloc(31, 9) }), 'cert_malformed', /32 bytes/],
    ['small-order subject key (identity)', () => build({ key: small }), 'cert_malformed', /small-order/],
    ['small-order subject key (order 8, sign bit set)', () => build({ key: smallSigned }), 'cert_malformed', /small-order/],
    ['non-canonical subject key (y ≥ p)', () => build({ key: nonCanonical }), 'cert_malformed', /non-canonical/],
    ['small-order CA key', () => build({}, { caBlob: Buffer.concat([sshString('ssh-ed25519'), sshString(small)]) }), 'cert_malformed', /CA key: small-order/],
    ['short nonce', () => build({ nonce: Buffer.alloc(4) }), 'cert_malformed', /nonce/],
  ]
  for (const [name, make, code, message] of rows) {
    test(`refuses: ${name} → ${code}`, () => {
      const r = verifyOpenSshCertificate(make(), hostileOpts())
      assert.equal(r.ok, false)
      if (r.ok) return
      assert.equal(r.code, code, r.message)
      if (message) assert.match(r.message, message)
      assert.doesNotMatch(r.message, new RegExp(subject.publicKeyRaw.toString('base64').slice(0, 20).replace(/[+/]/g, '.')))
    })
  }

  test('every single-byte change of a valid certificate is refused', () => {
    const good = build()
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good)
      bad[i]! ^= 0x01
      const r = verifyOpenSshCertificate(bad, hostileOpts())
      assert.equal(r.ok, false, `byte ${i} flipped was accepted`)
    }
  })

  test('misuse throws TypeError: weak authority key, bad options', () => {
    assert.throws(() => verifyOpenSshCertificate(build(), { ...hostileOpts(), authorities: [small] }), TypeError)
    assert.throws(() => verifyOpenSshCertificate(build(), { ...hostileOpts(), expectedType: 'admin' as 'user' }), TypeError)
    assert.throws(() => verifyOpenSshCertificate('x' as unknown as Uint8Array, hostileOpts()), TypeError)
  })
})
