/**
 * Deterministic generator of test/vectors/rotation-v2.json (docs/PROTOCOL.md §15): the handshake of
 * handshake-v2.json (same inputs) run by a server that holds two keys, once per phase:
 *
 * - `announce`: message 2 presents `from` (RFC 8032 TEST 2, the server key of handshake-v2.json),
 *   `to` (RFC 8032 TEST 3) is its announced successor; the client pinned `from` and moves to `to`.
 * - `switched`: message 2 presents `to`; `from` is kept as the previous key; the client still
 *   pinned `from` accepts `to` only through the update, and moves to it.
 *
 * Also records the same announce-phase message 4 with its update swapped for forged ones, and what
 * a client MUST do with each (ignore it: the pin stays).
 *
 *   node --import tsx test/vectors/generate-rotation.ts          # rewrites rotation-v2.json
 *   node --import tsx test/vectors/generate-rotation.ts --check  # exits 1 when the file is stale
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isDeepStrictEqual } from 'node:util'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { ephemeralFromSeed } from '../../src/handshake/common.js'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import type { ServerKeys } from '../../src/handshake/server-key-rotation.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import { keyPairFromPrivateKey, privateKeyFromSeed, signBytes, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { CONTEXT } from '../../src/protocol/constants.js'
import type { AuthCompleteWire } from '../../src/protocol/messages.js'
import { keyUpdateTranscript } from '../../src/protocol/server-key-update.js'
import { sha256, signingInput, transcript1, transcript2, transcript2pre, transcript3, transcript4 } from '../../src/protocol/transcript.js'
import { TestAllowlist, TestNonceStore } from '../helpers/fixtures.js'
import { INPUTS, presetRandom } from './generate.js'

export const ROTATION_VECTORS_PATH = fileURLToPath(new URL('./rotation-v2.json', import.meta.url))

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const unhex = (s: string): Buffer => Buffer.from(s, 'hex')

/** RFC 8032 §7.1 TEST 3 secret key: the successor. TEST SHA(abc)'s secret key: an attacker's key. */
export const ROTATION_INPUTS = {
  to_seed_hex: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
  attacker_seed_hex: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
  other_audience: 'https://other.example.com/mcp',
}

const kp = (seedHex: string): Ed25519KeyPair => keyPairFromPrivateKey(privateKeyFromSeed(unhex(seedHex)))

interface Run {
  messages: { m1: unknown; m2: unknown; m3: unknown; m4: AuthCompleteWire }
  t4: Buffer
  pinAfter: string
}

/** One handshake with INPUTS, the server holding `keys`, the client pinned to `pinned`. */
async function run(keys: ServerKeys<Ed25519KeyPair>, pinned: string, audience = INPUTS.audience): Promise<Run> {
  const I = INPUTS
  const clientKp = kp(I.client_seed_hex)
  let ms = I.clock.client_start
  const clock = (): number => ms
  const random = presetRandom(I.random.map((r) => r.hex))
  const serverAllowlist = new TestAllowlist()
  serverAllowlist.add(clientKp.publicKeyRaw, { role: 'trusted_client' })
  const nonces = new TestNonceStore(1000, clock)
  nonces.epochText = b64u(unhex(I.replay_epoch_hex))
  const server = createServerHandshake({
    keyPair: kp(I.server_seed_hex),
    serverKeys: () => keys,
    allowlist: serverAllowlist,
    nonceStore: nonces,
    timestampTolerance: I.timestamp_tolerance_s,
    challengeTtl: I.challenge_ttl_s,
    sessionTtl: I.session_ttl_s,
    clock,
    random,
    ephemeral: () => ephemeralFromSeed(unhex(I.server_ephemeral_seed_hex)),
  })
  const trust = createServerTrust({ pinnedFingerprint: pinned, keyRotation: { log: () => undefined } })
  const client = createClientHandshake({
    keyPair: clientKp,
    audience,
    serverTrust: trust,
    timestampTolerance: I.timestamp_tolerance_s,
    clock,
    random,
    ephemeral: () => ephemeralFromSeed(unhex(I.client_ephemeral_seed_hex)),
  })
  const m1 = client.start()
  ms = I.clock.server_challenge
  const m2 = server.handleRequest(structuredClone(m1))
  ms = I.clock.client_response
  const m3 = await client.handleChallenge(structuredClone(m2))
  ms = I.clock.server_complete
  const m4 = (await server.handleResponse(structuredClone(m3))).message
  ms = I.clock.client_complete
  client.handleComplete(structuredClone(m4))
  await (trust.rotation as unknown as { settled(): Promise<void> }).settled()
  const t2pre = transcript2pre(
    transcript1({ clientPublicKey: fromB64u(m1.client_public_key)!, clientNonce: fromB64u(m1.client_nonce)!, clientEphemeral: fromB64u(m1.client_ephemeral)!, timestamp: m1.timestamp, audience: m1.audience }),
    { serverPublicKey: fromB64u(m2.server_public_key)!, serverNonce: fromB64u(m2.server_nonce)!, serverEphemeral: fromB64u(m2.server_ephemeral)!, timestamp: m2.timestamp, expiresAt: m2.expires_at },
  )
  const t3 = transcript3(transcript2(t2pre, fromB64u(m2.challenge_token)!), fromB64u(m2.signature)!, m3.timestamp)
  const t4 = transcript4(t3, fromB64u(m3.signature)!, {
    sessionToken: m4.session_token,
    expiresAt: m4.expires_at,
    clientFingerprint: m4.client_fingerprint,
    serverFingerprint: m4.server_fingerprint,
    timestamp: m4.timestamp,
    replayEpoch: fromB64u(m4.replay_epoch)!,
  })
  return { messages: { m1, m2, m3, m4 }, t4, pinAfter: trust.rotation!.pinned() }
}

function phase(r: Run, from: Ed25519KeyPair, to: Ed25519KeyPair, pinnedBefore: string): Record<string, unknown> {
  const tu = keyUpdateTranscript(r.t4, from.publicKeyRaw, to.publicKeyRaw)
  const updateInput = signingInput(CONTEXT.serverKeyUpdate, tu)
  const proveInput = signingInput(CONTEXT.serverKeyProve, tu)
  return {
    pinned_before: pinnedBefore,
    messages: r.messages,
    t4_hex: hex(r.t4),
    tu_hex: hex(tu),
    tu_sha256_hex: hex(sha256(tu)),
    update_signing_input_hex: hex(updateInput),
    prove_signing_input_hex: hex(proveInput),
    pinned_after: r.pinAfter,
  }
}

export async function generateRotationVectors(): Promise<Record<string, unknown>> {
  const R = ROTATION_INPUTS
  const from = kp(INPUTS.server_seed_hex)
  const to = kp(R.to_seed_hex)
  const attacker = kp(R.attacker_seed_hex)
  const announce = await run({ current: from, rotation: { from, to } }, from.fingerprint)
  const switched = await run({ current: to, rotation: { from, to } }, from.fingerprint)
  const plain = await run({ current: from }, from.fingerprint)
  const otherAudience = await run({ current: from, rotation: { from, to } }, from.fingerprint, R.other_audience)

  // Forged updates spliced into the announce-phase message 4 (its finished MAC does not cover the field).
  const tuAttacker = keyUpdateTranscript(announce.t4, from.publicKeyRaw, attacker.publicKeyRaw)
  const good = announce.messages.m4.server_key_update!
  const forged = [
    {
      name: 'successor signed by the successor itself, not by the pinned key',
      update: { from_public_key: b64u(from.publicKeyRaw), to_public_key: b64u(attacker.publicKeyRaw), from_signature: b64u(signBytes(attacker.privateKey, signingInput(CONTEXT.serverKeyUpdate, tuAttacker))), to_signature: b64u(signBytes(attacker.privateKey, signingInput(CONTEXT.serverKeyProve, tuAttacker))) },
    },
    {
      name: 'update replayed from a handshake for another audience',
      update: otherAudience.messages.m4.server_key_update!,
    },
    {
      name: 'proof made with the update context (labels swapped)',
      update: { ...good, to_signature: b64u(signBytes(to.privateKey, signingInput(CONTEXT.serverKeyUpdate, keyUpdateTranscript(announce.t4, from.publicKeyRaw, to.publicKeyRaw)))) },
    },
    {
      name: 'update from a key that is not pinned (attacker → to, signatures of the genuine update)',
      update: { from_public_key: b64u(attacker.publicKeyRaw), to_public_key: b64u(to.publicKeyRaw), from_signature: good.from_signature, to_signature: good.to_signature },
    },
    {
      name: 'successor is the identity point (small order: one fixed signature verifies every message), signed by the pinned key',
      update: (() => {
        const identity = Buffer.alloc(32)
        identity[0] = 1
        const tuWeak = keyUpdateTranscript(announce.t4, from.publicKeyRaw, identity)
        return { from_public_key: b64u(from.publicKeyRaw), to_public_key: b64u(identity), from_signature: b64u(signBytes(from.privateKey, signingInput(CONTEXT.serverKeyUpdate, tuWeak))), to_signature: b64u(Buffer.concat([identity, Buffer.alloc(32)])) }
      })(),
    },
  ].map((f) => ({ ...f, expected: 'ignored: the pin stays', pinned_after: from.fingerprint }))

  const announceWithout: Partial<AuthCompleteWire> = { ...announce.messages.m4 }
  delete announceWithout.server_key_update
  return {
    description:
      'mcp-pki/2 server-key rotation (docs/PROTOCOL.md §15). Inputs are those of handshake-v2.json; from = RFC 8032 TEST 2 (the server key there), to = TEST 3. ' +
      'TU = T4 lp(from_public_key) lp(to_public_key); from_signature = Ed25519_from(lp("mcp-pki/2 server-key-update") || SHA-256(TU)); to_signature = Ed25519_to(lp("mcp-pki/2 server-key-prove") || SHA-256(TU)).',
    inputs: { ...R, from_seed_hex: INPUTS.server_seed_hex, from_fingerprint: from.fingerprint, to_fingerprint: to.fingerprint, attacker_fingerprint: attacker.fingerprint },
    announce: phase(announce, from, to, from.fingerprint),
    switched: phase(switched, from, to, from.fingerprint),
    without_update_equals_plain_m4: isDeepStrictEqual(announceWithout, plain.messages.m4),
    forged_updates: forged,
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = JSON.stringify(await generateRotationVectors(), null, 2) + '\n'
  if (process.argv.includes('--check')) {
    if (!isDeepStrictEqual(JSON.parse(readFileSync(ROTATION_VECTORS_PATH, 'utf8')), JSON.parse(text))) {
      console.error('rotation-v2.json is stale: run node --import tsx test/vectors/generate-rotation.ts')
      process.exit(1)
    }
    console.log('rotation-v2.json is up to date')
  } else {
    writeFileSync(ROTATION_VECTORS_PATH, text)
    console.log(`wrote ${ROTATION_VECTORS_PATH}`)
  }
}
