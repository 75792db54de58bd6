/**
 * Deterministic generator of test/vectors/certificate-v2.json: a whole handshake in which the
 * client's key is not listed but carries an OpenSSH user certificate from a CA of the server's
 * allowlist (docs/PROTOCOL.md §3 M3 `certificate`, §4 T3, §5 certified session token, §7a).
 *
 * Same fixed inputs as handshake-v2.json (generate.ts), plus the CA's ed25519 seed (RFC 8032 §7.1
 * TEST 3 secret key) and the certificate's fields. ed25519 is deterministic, so the certificate,
 * every message and every token are reproducible.
 *
 *   node --import tsx test/vectors/generate-certificate.ts          # rewrites certificate-v2.json
 *   node --import tsx test/vectors/generate-certificate.ts --check  # exits 1 when the file is stale
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { AuthError, toWireError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { ephemeralFromSeed } from '../../src/handshake/common.js'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import { fingerprintOf, keyPairFromPrivateKey, privateKeyFromSeed, signBytes, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { sshString, sshU32, sshU64 } from '../../src/keys/ssh-wire.js'
import { CONTEXT } from '../../src/protocol/constants.js'
import type { AuthResponseWire } from '../../src/protocol/messages.js'
import { signingInput, transcript1, transcript2, transcript2pre, transcript3 } from '../../src/protocol/transcript.js'
import { deriveTicketKey, openTicket, TICKET_KIND } from '../../src/session/ticket.js'
import { TestAllowlist, TestNonceStore } from '../helpers/fixtures.js'
import { INPUTS as BASE, presetRandom } from './generate.js'

export const CERT_VECTORS_PATH = fileURLToPath(new URL('./certificate-v2.json', import.meta.url))

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Buffer => Buffer.from(s, 'hex')

export const CERT_INPUTS = {
  ...BASE,
  /** RFC 8032 §7.1 TEST 3 secret key. */
  ca_seed_hex: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
  certificate: {
    nonce_hex: '40'.repeat(32),
    serial: '42',
    key_id: 'alice@laptop',
    principals: ['alice'],
    valid_after: '2026-01-15T09:00:00Z',
    valid_before: '2026-01-15T10:00:00Z',
    extensions: { 'permit-pty': '' },
  },
  /** The server's host certificate (second run): the same CA, `ssh-keygen -h -n mcp.example.com`. */
  host_certificate: {
    nonce_hex: '50'.repeat(32),
    serial: '7',
    key_id: 'mcp.example.com',
    principals: ['mcp.example.com'],
    valid_after: '2026-01-15T09:00:00Z',
    valid_before: '2026-01-16T09:00:00Z',
    extensions: {},
  },
  /** The server's CA entry: principals it is trusted for, and the role taken from the matching principal. */
  ca_entry: { principals: ['alice', 'deploy'], role_from: 'principal', metadata: { org: 'acme' } },
}

/** The OpenSSH certificate blob (PROTOCOL.certkeys), signed by the CA: what `ssh-keygen -s` writes. */
export function buildCertificate(caSeed: Buffer, subjectRaw: Buffer, c: { nonce_hex: string; serial: string; key_id: string; principals: string[]; valid_after: string; valid_before: string; extensions: Record<string, string> }, certType = 1): Buffer {
  const ca = keyPairFromPrivateKey(privateKeyFromSeed(caSeed))
  const principals = Buffer.concat(c.principals.map((p) => sshString(p)))
  const extensions = Buffer.concat(Object.entries(c.extensions).flatMap(([k, v]) => [sshString(k), sshString(v === '' ? Buffer.alloc(0) : sshString(v))]))
  const signed = Buffer.concat([
    sshString('ssh-ed25519-cert-v01@openssh.com'),
    sshString(unhex(c.nonce_hex)),
    sshString(subjectRaw),
    sshU64(BigInt(c.serial)),
    sshU32(certType),
    sshString(c.key_id),
    sshString(principals),
    sshU64(BigInt(Date.parse(c.valid_after) / 1000)),
    sshU64(BigInt(Date.parse(c.valid_before) / 1000)),
    sshString(Buffer.alloc(0)),
    sshString(extensions),
    sshString(Buffer.alloc(0)),
    sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(ca.publicKeyRaw)])),
  ])
  const signature = Buffer.concat([sshString('ssh-ed25519'), sshString(signBytes(ca.privateKey, signed))])
  return Buffer.concat([signed, sshString(signature)])
}

async function codeAt(server: ReturnType<typeof createServerHandshake>, m3: unknown): Promise<{ code: string; cert_code: string | null; wire_code: string }> {
  try {
    await server.handleResponse(structuredClone(m3))
  } catch (err) {
    if (err instanceof AuthError) return { code: err.code, cert_code: (err as { auditFields?: { cert_code?: string } }).auditFields?.cert_code ?? null, wire_code: toWireError(err).code }
    throw err
  }
  return { code: 'ok', cert_code: null, wire_code: 'ok' }
}

export async function generateCertificateVectors(): Promise<Record<string, unknown>> {
  const I = CERT_INPUTS
  const clientKp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(I.client_seed_hex)))
  const serverKp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(I.server_seed_hex)))
  const caKp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(I.ca_seed_hex)))
  const certificate = buildCertificate(unhex(I.ca_seed_hex), clientKp.publicKeyRaw, I.certificate)
  let now = I.clock.client_start
  const clock = (): number => now
  const random = presetRandom(I.random.map((r) => r.hex))

  const serverAllowlist = new Allowlist() // no keys: the client gets in by its certificate only
  serverAllowlist.addCertAuthority({ publicKeyRaw: caKp.publicKeyRaw, principals: I.ca_entry.principals, roleFrom: I.ca_entry.role_from, metadata: I.ca_entry.metadata, addedAt: '2026-01-01T00:00:00.000Z' })
  const clientAllowlist = new TestAllowlist()
  clientAllowlist.add(serverKp.publicKeyRaw, { role: 'mcp_server' })
  const serverEph = ephemeralFromSeed(unhex(I.server_ephemeral_seed_hex))
  const clientEph = ephemeralFromSeed(unhex(I.client_ephemeral_seed_hex))
  const makeServer = (nonces: TestNonceStore) =>
    createServerHandshake({
      keyPair: serverKp,
      allowlist: serverAllowlist,
      nonceStore: nonces,
      timestampTolerance: I.timestamp_tolerance_s,
      challengeTtl: I.challenge_ttl_s,
      sessionTtl: I.session_ttl_s,
      clock,
      random,
      ephemeral: () => serverEph,
    })
  const nonces = new TestNonceStore(1000, clock)
  nonces.epochText = b64u(unhex(I.replay_epoch_hex))
  const server = makeServer(nonces)
  const client = createClientHandshake({
    keyPair: clientKp,
    certificate,
    audience: I.audience,
    serverTrust: createServerTrust({ allowlist: clientAllowlist, clock }),
    timestampTolerance: I.timestamp_tolerance_s,
    clock,
    random,
    ephemeral: () => clientEph,
  })
  const m1 = client.start()
  now = I.clock.server_challenge
  const m2 = server.handleRequest(structuredClone(m1))
  now = I.clock.client_response
  const m3: AuthResponseWire = await client.handleChallenge(structuredClone(m2))
  now = I.clock.server_complete
  const result = await server.handleResponse(structuredClone(m3))
  const m4 = result.message
  now = I.clock.client_complete
  client.handleComplete(structuredClone(m4))

  const t2pre = transcript2pre(
    transcript1({ clientPublicKey: clientKp.publicKeyRaw, clientNonce: fromB64u(m1.client_nonce)!, clientEphemeral: fromB64u(m1.client_ephemeral)!, timestamp: m1.timestamp, audience: m1.audience }),
    { serverPublicKey: serverKp.publicKeyRaw, serverNonce: fromB64u(m2.server_nonce)!, serverEphemeral: fromB64u(m2.server_ephemeral)!, timestamp: m2.timestamp, expiresAt: m2.expires_at },
  )
  const t2 = transcript2(t2pre, fromB64u(m2.challenge_token)!)
  const t3 = transcript3(t2, fromB64u(m2.signature)!, m3.timestamp, certificate)
  const sessionPlain = openTicket([deriveTicketKey(unhex(I.server_seed_hex))], TICKET_KIND.certifiedSession, fromB64u(m4.session_token)!)!

  // Negative variants, each judged by a fresh server (fresh replay memory) at the recorded instant.
  const judge = async (m: unknown, at = I.clock.server_complete): ReturnType<typeof codeAt> => {
    const store = new TestNonceStore(1000, clock)
    store.epochText = b64u(unhex(I.replay_epoch_hex))
    now = at
    return codeAt(makeServer(store), m)
  }
  const withoutCertificate: AuthResponseWire = { ...m3 }
  delete withoutCertificate.certificate
  const flipped = Buffer.from(certificate)
  flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01
  const negative = {
    certificate_removed: { message: withoutCertificate, ...(await judge(withoutCertificate)) },
    certificate_signature_altered: { message: { ...m3, certificate: b64u(flipped) }, ...(await judge({ ...m3, certificate: b64u(flipped) })) },
    certificate_truncated: { message: { ...m3, certificate: b64u(certificate.subarray(0, 100)) }, ...(await judge({ ...m3, certificate: b64u(certificate.subarray(0, 100)) })) },
  }

  const host = await hostCertificateRun(serverKp, clientKp, caKp)
  return {
    description:
      'mcp-pki/2 handshake with an OpenSSH client certificate (docs/PROTOCOL.md). The client key is not on the server allowlist; the certificate from the listed CA lets it in. Inputs as handshake-v2.json plus the CA seed and certificate fields.',
    inputs: I,
    keys: {
      ca_public_hex: hex(caKp.publicKeyRaw),
      ca_fingerprint: fingerprintOf(caKp.publicKeyRaw),
      client_public_hex: hex(clientKp.publicKeyRaw),
      client_fingerprint: clientKp.fingerprint,
    },
    certificate: { blob_hex: hex(certificate), openssh_line: `ssh-ed25519-cert-v01@openssh.com ${certificate.toString('base64')} alice@laptop` },
    messages: { m1, m2, m3, m4 },
    transcripts: { t3_hex: hex(t3), client_signing_input_hex: hex(signingInput(CONTEXT.clientResponse, t3)) },
    session: { certified_session_token_plaintext_hex: hex(sessionPlain), role: result.entry.metadata.role },
    negative,
    host_certificate: host,
  }
}

/** Second run: the server presents a host certificate in message 2; the client trusts it through its CA entry for the audience's host. */
async function hostCertificateRun(serverKp: Ed25519KeyPair, clientKp: Ed25519KeyPair, caKp: Ed25519KeyPair): Promise<Record<string, unknown>> {
  const I = CERT_INPUTS
  const hostCert = buildCertificate(unhex(I.ca_seed_hex), serverKp.publicKeyRaw, I.host_certificate, 2)
  let now = I.clock.client_start
  const clock = (): number => now
  const random = presetRandom(I.random.map((r) => r.hex))
  const serverAllowlist = new TestAllowlist()
  serverAllowlist.add(clientKp.publicKeyRaw, { role: 'trusted_client' })
  const clientAllowlist = new Allowlist() // the server key is not listed: the CA is
  clientAllowlist.addCertAuthority({ publicKeyRaw: caKp.publicKeyRaw, metadata: { role: 'mcp_server' }, addedAt: '2026-01-01T00:00:00.000Z' })
  const nonces = new TestNonceStore(1000, clock)
  nonces.epochText = b64u(unhex(I.replay_epoch_hex))
  const serverEph = ephemeralFromSeed(unhex(I.server_ephemeral_seed_hex))
  const clientEph = ephemeralFromSeed(unhex(I.client_ephemeral_seed_hex))
  const server = createServerHandshake({ keyPair: serverKp, allowlist: serverAllowlist, nonceStore: nonces, certificate: hostCert, timestampTolerance: I.timestamp_tolerance_s, challengeTtl: I.challenge_ttl_s, sessionTtl: I.session_ttl_s, clock, random, ephemeral: () => serverEph })
  const client = createClientHandshake({
    keyPair: clientKp,
    audience: I.audience,
    serverTrust: createServerTrust({ allowlist: clientAllowlist, host: new URL(I.audience).hostname, timestampTolerance: I.timestamp_tolerance_s, clock }),
    timestampTolerance: I.timestamp_tolerance_s,
    clock,
    random,
    ephemeral: () => clientEph,
  })
  const m1 = client.start()
  now = I.clock.server_challenge
  const m2 = server.handleRequest(structuredClone(m1))
  now = I.clock.client_response
  const m3 = await client.handleChallenge(structuredClone(m2))
  now = I.clock.server_complete
  const m4 = (await server.handleResponse(structuredClone(m3))).message
  now = I.clock.client_complete
  const session = client.handleComplete(structuredClone(m4))
  const t2pre = transcript2pre(
    transcript1({ clientPublicKey: clientKp.publicKeyRaw, clientNonce: fromB64u(m1.client_nonce)!, clientEphemeral: fromB64u(m1.client_ephemeral)!, timestamp: m1.timestamp, audience: m1.audience }),
    { serverPublicKey: serverKp.publicKeyRaw, serverNonce: fromB64u(m2.server_nonce)!, serverEphemeral: fromB64u(m2.server_ephemeral)!, timestamp: m2.timestamp, expiresAt: m2.expires_at },
  )
  const t2 = transcript2(t2pre, fromB64u(m2.challenge_token)!, hostCert)
  return {
    certificate: { blob_hex: hex(hostCert) },
    messages: { m1, m2, m3, m4 },
    transcripts: { t2_hex: hex(t2), server_signing_input_hex: hex(signingInput(CONTEXT.serverChallenge, t2)), t3_hex: hex(transcript3(t2, fromB64u(m2.signature)!, m3.timestamp)) },
    server_metadata: session.serverMetadata,
  }
}

function serialize(v: Record<string, unknown>): string {
  return `${JSON.stringify(v, null, 2)}\n`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fresh = await generateCertificateVectors()
  if (process.argv.includes('--check')) {
    const stored = JSON.parse(readFileSync(CERT_VECTORS_PATH, 'utf8')) as unknown
    if (!isDeepStrictEqual(stored, JSON.parse(serialize(fresh)))) {
      console.error('test/vectors/certificate-v2.json is stale: node --import tsx test/vectors/generate-certificate.ts')
      process.exit(1)
    }
  } else {
    writeFileSync(CERT_VECTORS_PATH, serialize(fresh))
  }
}
