// Hostile client certificates in message 3 (docs/PROTOCOL.md §3, §7a): size and schema are checked
// by the message parser before anything else; a certificate that parses badly, is signed badly,
// carries critical options, speaks for another key or comes from an unlisted CA is refused as
// unknown_key (authentication_failed on the wire) with its precise cert_code; the signature covers
// the certificate, so adding, removing or swapping one in transit fails.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { AuthError, toWireError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { b64u } from '../../src/internal/bytes.js'
import { generateKeyPair, signBytes, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { sshString, sshU32, sshU64 } from '../../src/keys/ssh-wire.js'
import { MAX_CERTIFICATE_BYTES } from '../../src/protocol/constants.js'
import type { AuthResponseWire } from '../../src/protocol/messages.js'
import { makeParties } from '../helpers/fixtures.js'
import { makeHarness, wire, type Harness } from '../helpers/handshake-harness.js'

const ca = generateKeyPair()
const otherCa = generateKeyPair()

interface CertFields {
  key: Buffer
  certType: number
  principals: string[]
  after: bigint
  before: bigint
  critical: [string, string][]
  signer: Ed25519KeyPair
}

function certificate(f: Partial<CertFields> & { key: Buffer }): Buffer {
  const now = BigInt(Math.floor(Date.now() / 1000))
  const v: CertFields = { certType: 1, principals: ['alice'], after: now - 60n, before: now + 3600n, critical: [], signer: ca, ...f }
  const pairs = (kv: [string, string][]): Buffer => Buffer.concat(kv.flatMap(([k, val]) => [sshString(k), sshString(val === '' ? Buffer.alloc(0) : sshString(val))]))
  const signed = Buffer.concat([
    sshString('ssh-ed25519-cert-v01@openssh.com'),
    sshString(Buffer.alloc(32, 9)),
    sshString(v.key),
    sshU64(77n),
    sshU32(v.certType),
    sshString('hostile-id'),
    sshString(Buffer.concat(v.principals.map((p) => sshString(p)))),
    sshU64(v.after),
    sshU64(v.before),
    sshString(pairs(v.critical)),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(v.signer.publicKeyRaw)])),
  ])
  return Buffer.concat([signed, sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(signBytes(v.signer.privateKey, signed))]))])
}

function setup(): Harness {
  const allowlist = new Allowlist()
  allowlist.addCertAuthority({ publicKeyRaw: ca.publicKeyRaw, principals: ['alice'], roleFrom: 'principal' })
  const p = makeParties() // p.client is listed in p.serverAllowlist, not in `allowlist`
  return makeHarness({ parties: p, server: { allowlist }, verifier: { allowlist } })
}

/** Runs M1–M3 with `cert` presented, lets `alter` change M3 on the wire, and returns what the server says. */
async function judge(h: Harness, cert: Buffer | undefined, alter: (m3: AuthResponseWire & Record<string, unknown>) => void = () => {}) {
  const client = h.newClient(cert === undefined ? {} : { certificate: cert })
  const m2 = wire(h.server.handleRequest(wire(client.start())))
  const m3 = wire(await client.handleChallenge(m2)) as AuthResponseWire & Record<string, unknown>
  alter(m3)
  try {
    const r = await h.server.handleResponse(m3)
    return { code: 'ok', role: r.entry.metadata.role }
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err))
    return { code: err.code, wire: toWireError(err).code, cert: (err as { auditFields?: { cert_code?: string } }).auditFields?.cert_code, message: err.message }
  }
}

test('the well-formed certificate gets in (so each refusal below is for its own reason)', async () => {
  const h = setup()
  const r = await judge(h, certificate({ key: h.p.client.publicKeyRaw }))
  assert.deepEqual(r, { code: 'ok', role: 'alice' })
})

test('size and schema before any crypto: huge, not a string, padded/standard base64, empty → invalid_message', async () => {
  const h = setup()
  const good = certificate({ key: h.p.client.publicKeyRaw })
  const huge = Buffer.concat([good, Buffer.alloc(MAX_CERTIFICATE_BYTES)])
  const cases: [string, unknown][] = [
    ['huge', b64u(huge)],
    ['a number', 12345],
    ['an object', { blob: b64u(good) }],
    ['null', null],
    ['empty', ''],
    ['padded', good.toString('base64')],
    ['standard alphabet', Buffer.from([0xfb, 0xff, ...good]).toString('base64').replace(/=+$/, '')],
  ]
  for (const [name, value] of cases) {
    const r = await judge(h, good, (m3) => (m3.certificate = value as string))
    assert.equal(r.code, 'invalid_message', `${name}: ${r.message}`)
  }
})

test('hostile certificates are refused as unknown_key with the precise cert_code; the wire says authentication_failed', async () => {
  const h = setup()
  const key = h.p.client.publicKeyRaw
  const good = certificate({ key })
  const badSig = Buffer.from(good)
  badSig[badSig.length - 5]! ^= 0x40
  const cases: [string, Buffer, string][] = [
    ['truncated', good.subarray(0, good.length - 10), 'cert_malformed'],
    ['trailing byte', Buffer.concat([good, Buffer.from([0])]), 'cert_malformed'],
    ['wrong key type', Buffer.concat([sshString('ssh-rsa-cert-v01@openssh.com'), good.subarray(4 + 'ssh-ed25519-cert-v01@openssh.com'.length)]), 'cert_malformed'],
    ['bad CA signature', badSig, 'cert_bad_signature'],
    ['other CA', certificate({ key, signer: otherCa }), 'cert_unknown_authority'],
    ['host certificate', certificate({ key, certType: 2 }), 'cert_wrong_type'],
    ['unknown type 3', certificate({ key, certType: 3 }), 'cert_malformed'],
    ['force-command', certificate({ key, critical: [['force-command', '/bin/true']] }), 'cert_critical_option'],
    ['source-address (not enforced in the handshake)', certificate({ key, critical: [['source-address', '127.0.0.1']] }), 'cert_critical_option'],
    ['another key', certificate({ key: generateKeyPair().publicKeyRaw }), 'cert_key_mismatch'],
    ['no principals', certificate({ key, principals: [] }), 'cert_wrong_principal'],
    ['other principal', certificate({ key, principals: ['bob'] }), 'cert_wrong_principal'],
    ['expired', certificate({ key, after: 1n, before: 1000n }), 'cert_expired'],
    ['not yet valid', certificate({ key, after: BigInt(Math.floor(Date.now() / 1000) + 86_400), before: 0xffff_ffff_ffff_ffffn }), 'cert_not_yet_valid'],
  ]
  for (const [name, cert, code] of cases) {
    const r = await judge(h, cert)
    assert.deepEqual([r.code, r.wire, r.cert], ['unknown_key', 'authentication_failed', code], `${name}: ${r.message}`)
    assert.ok(![...(r.message ?? '')].some((c) => c.charCodeAt(0) < 0x20), `${name}: printable message`)
  }
})

test('the signature covers the certificate: removing, swapping or adding one in transit fails', async () => {
  const h = setup()
  const key = h.p.client.publicKeyRaw
  const good = certificate({ key })
  const removed = await judge(h, good, (m3) => delete m3.certificate)
  assert.equal(removed.code, 'unknown_key', 'without it the key is a stranger')
  const swapped = await judge(h, good, (m3) => (m3.certificate = b64u(certificate({ key, principals: ['alice', 'x'] }))))
  assert.equal(swapped.code, 'invalid_signature', 'another valid certificate for the same key: T3 changed')
  const added = await judge(h, undefined, (m3) => (m3.certificate = b64u(good)))
  assert.equal(added.code, 'invalid_signature', 'a certificate added to a message signed without one')
})

test('a listed key is judged on its entry: its certificate is signed over but not consulted', async () => {
  const p = makeParties()
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: p.client.publicKeyRaw, metadata: { role: 'listed' } })
  allowlist.addCertAuthority({ publicKeyRaw: ca.publicKeyRaw, roleFrom: 'principal' })
  const h = makeHarness({ parties: p, server: { allowlist }, verifier: { allowlist } })
  const r = await judge(h, certificate({ key: p.client.publicKeyRaw, certType: 2 }))
  assert.deepEqual(r, { code: 'ok', role: 'listed' })
})

test('a certified session is checked per request: removing the CA entry ends it', async () => {
  const p = makeParties()
  const allowlist = new Allowlist()
  allowlist.addCertAuthority({ publicKeyRaw: ca.publicKeyRaw, principals: ['alice'], roleFrom: 'principal' })
  const h = makeHarness({ parties: p, server: { allowlist }, verifier: { allowlist } })
  const run = await h.run(h.newClient({ certificate: certificate({ key: p.client.publicKeyRaw }) }))
  assert.equal(h.verifier.verifyToken(run.session.token).entry.metadata.role, 'alice')
  allowlist.removeCertAuthority(allowlist.certAuthorities()[0]!.fingerprint)
  assert.throws(() => h.verifier.verifyToken(run.session.token), (err: unknown) => err instanceof AuthError && err.code === 'session_revoked')
})

test('host certificate in message 2: covered by the server signature; size and schema checked by the client; trusted only for its host', async () => {
  const p = makeParties()
  const hostCa = generateKeyPair()
  const hostCert = certificate({ key: p.server.publicKeyRaw, certType: 2, principals: ['mcp.example.com'], signer: hostCa })
  const clientList = new Allowlist()
  clientList.addCertAuthority({ publicKeyRaw: hostCa.publicKeyRaw, metadata: { role: 'mcp_server' } })
  const h = makeHarness({ parties: p, server: { certificate: hostCert } })
  const trust = (host: string) => createServerTrust({ allowlist: clientList, host })
  const challenge = async (host: string, alter: (m2: Record<string, unknown>) => void = () => {}) => {
    const client = h.newClient({ serverTrust: trust(host) })
    const m2 = wire(h.server.handleRequest(wire(client.start()))) as unknown as Record<string, unknown>
    alter(m2)
    try {
      await client.handleChallenge(m2)
      return 'ok'
    } catch (err) {
      assert.ok(err instanceof AuthError, String(err))
      return `${err.code}${/\(cert_\w+/.exec(err.message)?.[0] ?? ''}`
    }
  }
  assert.equal(await challenge('mcp.example.com'), 'ok')
  const run = await h.run(h.newClient({ serverTrust: trust('mcp.example.com') }))
  assert.equal(run.session.serverMetadata?.role, 'mcp_server')
  assert.equal(await challenge('other.example.com'), 'server_key_unknown(cert_wrong_principal')
  assert.equal(await challenge('mcp.example.com', (m2) => delete m2.certificate), 'server_key_unknown', 'stripped: the key is a stranger')
  const otherHostCert = certificate({ key: p.server.publicKeyRaw, certType: 2, principals: ['mcp.example.com', 'x'], signer: hostCa })
  assert.equal(await challenge('mcp.example.com', (m2) => (m2.certificate = b64u(otherHostCert))), 'invalid_signature', 'swapped: T2 changed')
  assert.equal(await challenge('mcp.example.com', (m2) => (m2.certificate = b64u(Buffer.alloc(MAX_CERTIFICATE_BYTES + 1)))), 'invalid_message')
  assert.equal(await challenge('mcp.example.com', (m2) => (m2.certificate = 7)), 'invalid_message')
  const userCert = certificate({ key: p.server.publicKeyRaw, certType: 1, principals: ['mcp.example.com'], signer: hostCa })
  const h2 = makeHarness({ parties: p, server: { certificate: userCert } })
  const c2 = h2.newClient({ serverTrust: trust('mcp.example.com') })
  await assert.rejects(c2.handleChallenge(wire(h2.server.handleRequest(wire(c2.start())))), /cert_wrong_type/)
})
