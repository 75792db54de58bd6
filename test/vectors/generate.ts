/**
 * Deterministic generator of test/vectors/handshake-v2.json (docs/PROTOCOL.md §Test vectors).
 *
 * Every input is fixed: ed25519 seeds (RFC 8032 §7.1 TEST 1 for the client, TEST 2 for the
 * server), X25519 ephemeral private keys (RFC 7748 §6.1 Alice for the client, Bob for the server),
 * every random byte string in the order the engine asks for it, and the clock at each step.
 *
 *   node --import tsx test/vectors/generate.ts          # rewrites handshake-v2.json
 *   node --import tsx test/vectors/generate.ts --check  # exits 1 when the file is stale
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import type { AuthError} from '../../src/errors.js';
import { toWireError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { ephemeralFromSeed, x25519PublicFromRaw } from '../../src/handshake/common.js'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { b64u, fromB64u, lp, utf8 } from '../../src/internal/bytes.js'
import type { RandomSource } from '../../src/internal/clock.js'
import { keyPairFromPrivateKey, privateKeyFromSeed, signBytes } from '../../src/keys/key-pair.js'
import { CONTEXT } from '../../src/protocol/constants.js'
import type { AuthChallengeWire, AuthCompleteWire, AuthRequestWire, AuthResponseWire } from '../../src/protocol/messages.js'
import { finishedMac, sha256, signingInput, transcript1, transcript2, transcript2pre, transcript3, transcript4 } from '../../src/protocol/transcript.js'
import { bodyDigest, computeProofMac, createRequestProof, tokenDigest } from '../../src/session/session-token.js'
import { computeStaleAnswerMac, staleAnswerInput, verifiedStaleEpoch } from '../../src/session/stale-answer.js'
import { computeRefusalMac, refusalInput, verifiedRefusal } from '../../src/session/refusal-answer.js'
import { createSessionVerifier } from '../../src/session/session-verifier.js'
import { deriveTicketKey, openTicket, sealKeyFor, sealPeriod, TICKET_KIND } from '../../src/session/ticket.js'
import { diffieHellman, hkdfSync } from 'node:crypto'
import { TestAllowlist, TestNonceStore } from '../helpers/fixtures.js'

export const VECTORS_PATH = fileURLToPath(new URL('./handshake-v2.json', import.meta.url))

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Buffer => Buffer.from(s, 'hex')

/** Fixed inputs. Changing any of them changes every output. */
export const INPUTS = {
  client_seed_hex: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  server_seed_hex: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
  client_ephemeral_seed_hex: '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
  server_ephemeral_seed_hex: '5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb',
  audience: 'https://mcp.example.com/mcp',
  timestamp_tolerance_s: 300,
  challenge_ttl_s: 60,
  session_ttl_s: 900,
  /** Random byte strings in the order the engine requests them. */
  random: [
    { use: 'client_nonce (message 1)', hex: seq(0x00, 32) },
    { use: 'server_nonce (message 2)', hex: seq(0x20, 32) },
    { use: 'challenge_token AES-GCM iv', hex: seq(0xa0, 12) },
    { use: 'session_id (in session token)', hex: seq(0xb0, 16) },
    { use: 'session_token AES-GCM iv', hex: seq(0xc0, 12) },
  ],
  /** The server's replay epoch (8 bytes; random per replay memory in a real server). */
  replay_epoch_hex: seq(0xe0, 8),
  /** Clock (ms since epoch) at each step. */
  clock: {
    client_start: Date.parse('2026-01-15T09:30:00.000Z'),
    server_challenge: Date.parse('2026-01-15T09:30:00.120Z'),
    client_response: Date.parse('2026-01-15T09:30:00.250Z'),
    server_complete: Date.parse('2026-01-15T09:30:00.400Z'),
    client_complete: Date.parse('2026-01-15T09:30:00.450Z'),
    request_proof: Date.parse('2026-01-15T09:30:01.000Z'),
  },
  request: { method: 'POST', target: '/mcp?session=1', mcpSessionId: 'mcp-session-1', body: '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' },
}

function seq(start: number, n: number): string {
  return hex(Buffer.from(Array.from({ length: n }, (_, i) => (start + i) & 0xff)))
}

/** A RandomSource that hands out preset byte strings in order and refuses any other request. */
export function presetRandom(values: readonly string[]): RandomSource & { remaining(): number } {
  const queue = values.map(unhex)
  const fn = ((size: number): Buffer => {
    const next = queue.shift()
    if (next === undefined) throw new Error(`presetRandom: no value left for a ${size}-byte request`)
    if (next.byteLength !== size) throw new Error(`presetRandom: next value has ${next.byteLength} bytes, engine asked for ${size}`)
    return Buffer.from(next)
  }) as RandomSource & { remaining(): number }
  fn.remaining = () => queue.length
  return fn
}

/** The replay epoch of the restarted memory (negative vectors and the stale answer). */
const STALE_EPOCH_HEX = seq(0xf0, 8)

function storeWithEpoch(epochHex: string): TestNonceStore {
  const store = new TestNonceStore(1000)
  store.epochText = b64u(unhex(epochHex))
  return store
}

function mutable(start: number): { now: () => number; set: (ms: number) => void } {
  let ms = start
  return { now: () => ms, set: (v) => (ms = v) }
}

/** RFC 8032 §7.1 TEST 1. */
const RFC8032_TEST1 = {
  secret_key_hex: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  public_key_hex: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  message_hex: '',
  signature_hex: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
}

function flipFirstByte(b64: string): string {
  const buf = fromB64u(b64)!
  buf[0] = buf[0]! ^ 0x01
  return b64u(buf)
}

export async function generateVectors(): Promise<Record<string, unknown>> {
  const I = INPUTS
  const clientKp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(I.client_seed_hex)))
  const serverKp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(I.server_seed_hex)))
  const clientEph = ephemeralFromSeed(unhex(I.client_ephemeral_seed_hex))
  const serverEph = ephemeralFromSeed(unhex(I.server_ephemeral_seed_hex))
  const random = presetRandom(I.random.map((r) => r.hex))
  const clock = mutable(I.clock.client_start)

  const serverAllowlist = new TestAllowlist()
  serverAllowlist.add(clientKp.publicKeyRaw, { role: 'trusted_client' })
  const clientAllowlist = new TestAllowlist()
  clientAllowlist.add(serverKp.publicKeyRaw, { role: 'mcp_server' })
  const nonces = new TestNonceStore(1000, clock.now)
  nonces.epochText = b64u(unhex(I.replay_epoch_hex))
  const server = createServerHandshake({
    keyPair: serverKp,
    allowlist: serverAllowlist,
    nonceStore: nonces,
    timestampTolerance: I.timestamp_tolerance_s,
    challengeTtl: I.challenge_ttl_s,
    sessionTtl: I.session_ttl_s,
    clock: clock.now,
    random,
    ephemeral: () => serverEph,
  })
  const client = createClientHandshake({
    keyPair: clientKp,
    audience: I.audience,
    serverTrust: createServerTrust({ allowlist: clientAllowlist, clock: clock.now }),
    timestampTolerance: I.timestamp_tolerance_s,
    clock: clock.now,
    random,
    ephemeral: () => clientEph,
  })

  const m1: AuthRequestWire = client.start()
  clock.set(I.clock.server_challenge)
  const m2: AuthChallengeWire = server.handleRequest(structuredClone(m1))
  clock.set(I.clock.client_response)
  const m3: AuthResponseWire = await client.handleChallenge(structuredClone(m2))
  clock.set(I.clock.server_complete)
  const result = await server.handleResponse(structuredClone(m3))
  const m4: AuthCompleteWire = result.message
  clock.set(I.clock.client_complete)
  const session = client.handleComplete(structuredClone(m4))

  // Transcripts rebuilt from the wire fields.
  const t1 = transcript1({
    clientPublicKey: fromB64u(m1.client_public_key)!,
    clientNonce: fromB64u(m1.client_nonce)!,
    clientEphemeral: fromB64u(m1.client_ephemeral)!,
    timestamp: m1.timestamp,
    audience: m1.audience,
  })
  const t2pre = transcript2pre(t1, {
    serverPublicKey: fromB64u(m2.server_public_key)!,
    serverNonce: fromB64u(m2.server_nonce)!,
    serverEphemeral: fromB64u(m2.server_ephemeral)!,
    timestamp: m2.timestamp,
    expiresAt: m2.expires_at,
  })
  const t2 = transcript2(t2pre, fromB64u(m2.challenge_token)!)
  const t3 = transcript3(t2, fromB64u(m2.signature)!, m3.timestamp)
  const t4 = transcript4(t3, fromB64u(m3.signature)!, {
    sessionToken: m4.session_token,
    expiresAt: m4.expires_at,
    clientFingerprint: m4.client_fingerprint,
    serverFingerprint: m4.server_fingerprint,
    timestamp: m4.timestamp,
    replayEpoch: fromB64u(m4.replay_epoch)!,
  })
  const shared = diffieHellman({ privateKey: clientEph.privateKey, publicKey: x25519PublicFromRaw(serverEph.publicRaw) })
  const ticketKey = deriveTicketKey(unhex(I.server_seed_hex))
  const challengePlain = openTicket([ticketKey], TICKET_KIND.challenge, fromB64u(m2.challenge_token)!)!
  const sessionPlain = openTicket([ticketKey], TICKET_KIND.session, fromB64u(m4.session_token)!)!

  const okm = Buffer.from(hkdfSync('sha256', shared, sha256(t2pre), Buffer.from(CONTEXT.sessionKeys), 64))
  const finishedKey = okm.subarray(32)
  const challengePeriod = sealPeriod(I.clock.server_challenge)
  const sessionPeriod = sealPeriod(I.clock.server_complete)

  // A request proof with the session (its first: sequence 1), stamped in the server's clock.
  clock.set(I.clock.request_proof)
  const { mcpSessionId, ...http } = I.request
  const proofHeader = createRequestProof({ session, ...http, mcpSessionId, clock: clock.now })
  const proofTime = I.clock.request_proof + session.clockOffsetMs
  const digest = bodyDigest(I.request.body)
  const macInput = Buffer.concat([
    lp(utf8(CONTEXT.requestProof)),
    lp(tokenDigest(session.token)),
    lp(unhex(I.replay_epoch_hex)),
    lp(utf8(I.request.method)),
    lp(utf8(I.request.target)),
    lp(utf8(mcpSessionId)),
    lp(digest),
    lp(utf8(String(proofTime))),
    lp(utf8('1')),
  ])
  const mac = computeProofMac(session.sessionKey, {
    tokenDigest: tokenDigest(session.token),
    epoch: unhex(I.replay_epoch_hex),
    method: I.request.method,
    target: I.request.target,
    mcpSessionId,
    bodyDigest: digest,
    timestamp: proofTime,
    sequence: 1,
  })
  const verifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: serverAllowlist, nonceStore: nonces, clock: clock.now })
  const verified = await verifier.verify({ authorization: `Bearer ${session.token}`, proof: proofHeader, ...http, mcpSessionId })
  if (random.remaining() !== 0) throw new Error('generator: not every preset random value was used')

  // The same proof presented to a replay memory of another epoch (restarted): the authenticated
  // proof_stale answer (§6) and what the client makes of it.
  const staleVerifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: serverAllowlist, nonceStore: storeWithEpoch(STALE_EPOCH_HEX), clock: clock.now })
  const staleErr = await staleVerifier.verify({ authorization: `Bearer ${session.token}`, proof: proofHeader, ...http, mcpSessionId }).then(
    () => undefined,
    (err: AuthError) => err,
  )
  if (staleErr?.code !== 'proof_stale' || staleErr.epochHeader === undefined) throw new Error('generator: the proof was not refused as proof_stale')
  const staleInput = staleAnswerInput(mac, unhex(STALE_EPOCH_HEX))
  const staleMac = computeStaleAnswerMac(session.sessionKey, mac, unhex(STALE_EPOCH_HEX))
  const staleAccepted = verifiedStaleEpoch(session.sessionKey, proofHeader, staleErr.epochHeader)

  // The same proof at the session's expiry (§8): a proof that passes every other check, its sequence
  // number now used, gets the authenticated session_expired refusal (the client renews and re-sends).
  // Presented again: replay_detected, also authenticated (the client does not re-send).
  const expiryStore = new TestNonceStore(1000, () => session.expiresAt)
  expiryStore.epochText = b64u(unhex(I.replay_epoch_hex))
  const expiryVerifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: serverAllowlist, nonceStore: expiryStore, clock: () => session.expiresAt, proofWindow: I.session_ttl_s + 60 })
  const refusalOf = (): Promise<AuthError | undefined> =>
    expiryVerifier.verify({ authorization: `Bearer ${session.token}`, proof: proofHeader, ...http, mcpSessionId }).then(
      () => undefined,
      (err: AuthError) => err,
    )
  const expiredErr = await refusalOf()
  const replayErr = await refusalOf()
  if (expiredErr?.code !== 'session_expired' || expiredErr.refusalHeader === undefined) throw new Error('generator: the proof was not refused as an authenticated session_expired')
  if (replayErr?.code !== 'replay_detected' || replayErr.refusalHeader === undefined) throw new Error('generator: the proof presented again was not an authenticated replay_detected')
  const refusalCase = (err: AuthError) => ({
    code: err.code,
    mac_input_hex: hex(refusalInput(err.code, mac)),
    mac_hex: hex(computeRefusalMac(session.sessionKey, err.code, mac)),
    header: err.refusalHeader,
    client_verifies_code: verifiedRefusal(session.sessionKey, proofHeader, err.refusalHeader) ?? null,
    client_resends: err.code === 'session_expired',
  })

  // Negative vectors: message 3 altered, presented to a fresh server at the same instant as the good one.
  async function serverCodeFor(alter: (m: AuthResponseWire) => void): Promise<{ local: string; wire: string }> {
    const fresh = createServerHandshake({
      keyPair: serverKp,
      allowlist: serverAllowlist,
      nonceStore: storeWithEpoch(I.replay_epoch_hex),
      timestampTolerance: I.timestamp_tolerance_s,
      challengeTtl: I.challenge_ttl_s,
      sessionTtl: I.session_ttl_s,
      clock: () => I.clock.server_complete,
      random: presetRandom([I.random[3]!.hex, I.random[4]!.hex]),
    })
    const m = structuredClone(m3)
    alter(m)
    try {
      await fresh.handleResponse(m)
      return { local: 'ok', wire: 'ok' }
    } catch (err) {
      return { local: (err as AuthError).code, wire: toWireError(err).code }
    }
  }
  const negatives = [
    { name: 'm3.signature bit flip', alter: (m: AuthResponseWire) => (m.signature = flipFirstByte(m.signature)) },
    { name: 'm3.request.client_nonce bit flip', alter: (m: AuthResponseWire) => (m.request.client_nonce = flipFirstByte(m.request.client_nonce)) },
    { name: 'm3.challenge.server_nonce bit flip', alter: (m: AuthResponseWire) => (m.challenge.server_nonce = flipFirstByte(m.challenge.server_nonce)) },
    { name: 'm3.challenge.challenge_token bit flip', alter: (m: AuthResponseWire) => (m.challenge.challenge_token = flipFirstByte(m.challenge.challenge_token)) },
    { name: 'm3.challenge.signature bit flip (covered by the client signature)', alter: (m: AuthResponseWire) => (m.challenge.signature = flipFirstByte(m.challenge.signature)) },
    { name: 'm3.request.audience changed', alter: (m: AuthResponseWire) => (m.request.audience = 'https://evil.example.com/mcp') },
    { name: 'm3.version changed', alter: (m: AuthResponseWire) => (m.version = 'mcp-pki/1') },
    { name: 'm3.request.client_public_key 31 bytes', alter: (m: AuthResponseWire) => (m.request.client_public_key = b64u(fromB64u(m.request.client_public_key)!.subarray(0, 31))) },
    { name: 'm3.signature with base64 padding', alter: (m: AuthResponseWire) => (m.signature = m.signature + '==') },
  ]
  const negativeVectors = []
  for (const n of negatives) {
    const m = structuredClone(m3)
    n.alter(m)
    const code = await serverCodeFor(n.alter)
    negativeVectors.push({ name: n.name, message: m, expected_local_code: code.local, expected_wire_code: code.wire })
  }
  // The unaltered message 3 at a server whose replay memory restarted (another epoch): refused.
  const restartedServer = createServerHandshake({
    keyPair: serverKp,
    allowlist: serverAllowlist,
    nonceStore: storeWithEpoch(seq(0xf0, 8)),
    challengeTtl: I.challenge_ttl_s,
    clock: () => I.clock.server_complete,
    random: presetRandom([I.random[3]!.hex, I.random[4]!.hex]),
  })
  const restartCode = await restartedServer.handleResponse(structuredClone(m3)).then(
    () => 'ok',
    (err: AuthError) => err.code,
  )

  // Key codec negatives.
  const test1Kp = keyPairFromPrivateKey(privateKeyFromSeed(unhex(RFC8032_TEST1.secret_key_hex)))
  const test1Sig = signBytes(test1Kp.privateKey, unhex(RFC8032_TEST1.message_hex))
  if (hex(test1Kp.publicKeyRaw) !== RFC8032_TEST1.public_key_hex || hex(test1Sig) !== RFC8032_TEST1.signature_hex) {
    throw new Error('generator: RFC 8032 TEST 1 does not reproduce')
  }
  const sigFlip = Buffer.from(test1Sig)
  sigFlip[0] = sigFlip[0]! ^ 0x01

  return {
    description:
      'mcp-pki/2 handshake test vectors (docs/PROTOCOL.md §Test vectors). Generated by test/vectors/generate.ts; do not edit by hand. Hex is lowercase; *_b64u is base64url without padding.',
    version: 'mcp-pki/2',
    inputs: {
      ...I,
      clock: Object.fromEntries(Object.entries(I.clock).map(([k, v]) => [k, { ms: v, rfc3339: new Date(v).toISOString() }])),
    },
    keys: {
      client_public_key_hex: hex(clientKp.publicKeyRaw),
      client_fingerprint: clientKp.fingerprint,
      server_public_key_hex: hex(serverKp.publicKeyRaw),
      server_fingerprint: serverKp.fingerprint,
      client_ephemeral_public_hex: hex(clientEph.publicRaw),
      server_ephemeral_public_hex: hex(serverEph.publicRaw),
      ticket_key: { derivation: 'HKDF-SHA256(ikm = server ed25519 seed, salt = "mcp-pki/2", info = "mcp-pki/2 ticket-key", L = 32); key_id = first 4 bytes of SHA-256("mcp-pki/2 ticket-key-id" || key)', key_hex: hex(ticketKey.key), key_id: ticketKey.id, key_id_hex: ticketKey.id.toString(16).padStart(8, '0') },
    },
    messages: { m1, m2, m3, m4 },
    transcripts: {
      t1_hex: hex(t1),
      t1_sha256_hex: hex(sha256(t1)),
      t2pre_hex: hex(t2pre),
      t2pre_sha256_hex: hex(sha256(t2pre)),
      t2_hex: hex(t2),
      t2_sha256_hex: hex(sha256(t2)),
      t3_hex: hex(t3),
      t3_sha256_hex: hex(sha256(t3)),
      t4_hex: hex(t4),
      t4_sha256_hex: hex(sha256(t4)),
    },
    signatures: {
      server_challenge: { context: CONTEXT.serverChallenge, signer: 'server', signing_input_hex: hex(signingInput(CONTEXT.serverChallenge, t2)), signature_hex: hex(fromB64u(m2.signature)!) },
      client_response: { context: CONTEXT.clientResponse, signer: 'client', signing_input_hex: hex(signingInput(CONTEXT.clientResponse, t3)), signature_hex: hex(fromB64u(m3.signature)!) },
    },
    finished: {
      context: CONTEXT.serverFinished,
      finished_key_hex: hex(finishedKey),
      mac_input_hex: hex(signingInput(CONTEXT.serverFinished, t4)),
      mac_hex: hex(finishedMac(finishedKey, t4)),
      finished_b64u: m4.finished,
    },
    session: {
      x25519_shared_secret_hex: hex(shared),
      hkdf_salt_hex: hex(sha256(t2pre)),
      hkdf_info: CONTEXT.sessionKeys,
      hkdf_output_hex: hex(okm),
      session_key_hex: hex(session.sessionKey),
      finished_key_hex: hex(finishedKey),
      replay_epoch_b64u: m4.replay_epoch,
      client_clock_offset_ms: session.clockOffsetMs,
      seal_keys: {
        derivation: 'HKDF-SHA256(ikm = ticket key, salt = empty, info = "mcp-pki/2 seal-key" || u32 period, L = 32); period = floor(ms / 60000)',
        challenge_period: challengePeriod,
        challenge_seal_key_hex: hex(sealKeyFor(ticketKey, challengePeriod)),
        session_period: sessionPeriod,
        session_seal_key_hex: hex(sealKeyFor(ticketKey, sessionPeriod)),
      },
      challenge_token_plaintext_hex: hex(challengePlain),
      session_token_plaintext_hex: hex(sessionPlain),
      session_id_b64u: result.sessionId,
      expires_at: m4.expires_at,
    },
    request_proof: {
      method: I.request.method,
      target: I.request.target,
      body: I.request.body,
      body_sha256_hex: hex(digest),
      mcp_session_id: mcpSessionId,
      client_clock_ms: I.clock.request_proof,
      timestamp_ms: proofTime,
      sequence: 1,
      token_sha256_hex: hex(tokenDigest(session.token)),
      mac_input_hex: hex(macInput),
      mac_hex: hex(mac),
      authorization: `Bearer ${session.token}`,
      header: proofHeader,
      verifier_accepts: verified.clientFingerprint === clientKp.fingerprint,
    },
    stale_answer: {
      context: CONTEXT.staleAnswer,
      refused_proof_header: proofHeader,
      refused_mac_hex: hex(mac),
      new_epoch_hex: STALE_EPOCH_HEX,
      mac_input_hex: hex(staleInput),
      mac_hex: hex(staleMac),
      header_name: 'MCP-PKI-Epoch',
      header: staleErr.epochHeader,
      wire_code: staleErr.code,
      client_accepts_epoch_b64u: staleAccepted ?? null,
      negative: [
        { name: 'epoch changed', header: staleErr.epochHeader.replace(/^e=./, (x) => (x === 'e=A' ? 'e=B' : 'e=A')), expected: 'reject' },
        { name: 'MAC of another proof', header: `e=${b64u(unhex(STALE_EPOCH_HEX))}, m=${b64u(computeStaleAnswerMac(session.sessionKey, Buffer.alloc(32), unhex(STALE_EPOCH_HEX)))}`, expected: 'reject' },
        { name: 'epoch alone (mcp-pki/2 before this change)', header: b64u(unhex(STALE_EPOCH_HEX)), expected: 'reject' },
        { name: 'MAC under the wrong key', header: `e=${b64u(unhex(STALE_EPOCH_HEX))}, m=${b64u(computeStaleAnswerMac(Buffer.alloc(32), mac, unhex(STALE_EPOCH_HEX)))}`, expected: 'reject' },
      ],
    },
    refusal: {
      context: CONTEXT.refusal,
      header_name: 'MCP-PKI-Refusal',
      refused_proof_header: proofHeader,
      refused_mac_hex: hex(mac),
      server_clock_ms: session.expiresAt,
      cases: [refusalCase(expiredErr), refusalCase(replayErr)],
      negative: [
        { name: 'code changed (replay_detected MAC, session_expired code)', header: replayErr.refusalHeader!.replace('c=replay_detected', 'c=session_expired'), expected: 'reject' },
        { name: 'MAC of another proof', header: `c=session_expired, m=${b64u(computeRefusalMac(session.sessionKey, 'session_expired', Buffer.alloc(32)))}`, expected: 'reject' },
        { name: 'MAC under the wrong key', header: `c=session_expired, m=${b64u(computeRefusalMac(Buffer.alloc(32), 'session_expired', mac))}`, expected: 'reject' },
        { name: 'code alone', header: 'c=session_expired', expected: 'reject' },
        { name: 'upper-case code', header: expiredErr.refusalHeader!.replace('c=session_expired', 'c=SESSION_EXPIRED'), expected: 'reject' },
      ],
    },
    key_codec: {
      rfc8032_test1: RFC8032_TEST1,
      negative: [
        { name: 'public key 31 bytes', public_key_hex: RFC8032_TEST1.public_key_hex.slice(0, 62), expected: 'reject' },
        { name: 'public key 33 bytes', public_key_hex: RFC8032_TEST1.public_key_hex + '00', expected: 'reject' },
        { name: 'seed 31 bytes', secret_key_hex: RFC8032_TEST1.secret_key_hex.slice(0, 62), expected: 'reject' },
        { name: 'signature bit 0 flipped', public_key_hex: RFC8032_TEST1.public_key_hex, message_hex: '', signature_hex: hex(sigFlip), expected: 'invalid' },
        { name: 'message changed', public_key_hex: RFC8032_TEST1.public_key_hex, message_hex: '00', signature_hex: RFC8032_TEST1.signature_hex, expected: 'invalid' },
        { name: 'signature 63 bytes', public_key_hex: RFC8032_TEST1.public_key_hex, message_hex: '', signature_hex: RFC8032_TEST1.signature_hex.slice(0, 126), expected: 'invalid' },
      ],
    },
    negative_m3: negativeVectors,
    restarted_replay_memory: { replay_epoch_hex: STALE_EPOCH_HEX, message: 'messages.m3 unaltered', expected_local_code: restartCode },
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const vectors = await generateVectors()
  const text = JSON.stringify(vectors, null, 2) + '\n'
  if (process.argv.includes('--check')) {
    const current = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as unknown
    if (!isDeepStrictEqual(current, JSON.parse(text))) {
      console.error('handshake-v2.json is stale: run node --import tsx test/vectors/generate.ts')
      process.exit(1)
    }
    console.log('handshake-v2.json is up to date')
  } else {
    writeFileSync(VECTORS_PATH, text)
    console.log(`wrote ${VECTORS_PATH}`)
  }
}
