/**
 * Replay, relay and reflection: a message or signature from one run, one peer or one role never
 * counts in another (docs/PROTOCOL.md §Security properties 1, 2, 4).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { toWireError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import { generateKeyPair, signBytes, verifyBytes } from '../../src/keys/key-pair.js'
import { CONTEXT } from '../../src/protocol/constants.js'
import { signingInput } from '../../src/protocol/transcript.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { TestAllowlist, TestNonceStore } from '../helpers/fixtures.js'
import { AUDIENCE, expectCode, makeHarness, wire } from '../helpers/handshake-harness.js'
import { postAuth } from './helpers/auth-endpoint.js'
import { startServer } from './helpers/sandbox-servers.js'

test('a replayed message 3 is refused with replay_detected and grants nothing', async () => {
  const h = makeHarness()
  const { m3 } = await h.run()
  assert.equal(await h.nonces.size(), 1)
  const err = await expectCode(() => h.server.handleResponse(wire(m3)), 'replay_detected')
  assert.equal(toWireError(err).code, 'replay_detected')
  assert.equal(await h.nonces.size(), 1)
  // Another server instance of the same fleet (same key, shared nonce store) refuses it too.
  const twin = createServerHandshake({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: h.nonces, clock: h.serverClock.now })
  await expectCode(() => twin.handleResponse(wire(m3)), 'replay_detected', 'fleet twin')
})

test('message 2 replayed to another client is refused by that client (invalid_signature)', async () => {
  const h = makeHarness()
  const other = generateKeyPair()
  h.p.serverAllowlist.add(other.publicKeyRaw)
  const a = h.newClient()
  const b = h.newClient({ keyPair: other })
  const m2a = wire(h.server.handleRequest(wire(a.start())))
  b.start()
  await expectCode(() => b.handleChallenge(wire(m2a)), 'invalid_signature')
  // The client is finished: nothing more comes out of it.
  await expectCode(() => b.handleChallenge(wire(m2a)), 'invalid_message', 'after failure')
  // A still completes with its own challenge.
  const m3 = await a.handleChallenge(m2a)
  assert.equal(a.handleComplete(wire((await h.server.handleResponse(wire(m3))).message)).clientFingerprint, h.p.client.fingerprint)
})

test('message 2 replayed into another run of the same client is refused (invalid_signature)', async () => {
  const h = makeHarness()
  const first = h.newClient()
  const oldM2 = wire(h.server.handleRequest(wire(first.start())))
  const second = h.newClient()
  second.start()
  await expectCode(() => second.handleChallenge(oldM2), 'invalid_signature')
})

test('relay: a victim message 3 with the attacker key swapped in is refused and grants nothing', async () => {
  const h = makeHarness()
  const attacker = generateKeyPair()
  h.p.serverAllowlist.add(attacker.publicKeyRaw)
  const victim = h.newClient()
  const m2 = wire(h.server.handleRequest(wire(victim.start())))
  const m3 = wire(await victim.handleChallenge(m2))
  const swapped = wire(m3)
  swapped.request.client_public_key = b64u(attacker.publicKeyRaw)
  // The challenge token binds the hash of T2pre, which includes the client key.
  await expectCode(() => h.server.handleResponse(swapped), 'invalid_message', 'key swapped in echo')
  // Re-signing with the attacker key does not help: the token still binds the victim's key.
  const resigned = wire(swapped)
  resigned.signature = b64u(signBytes(attacker.privateKey, Buffer.from('anything')))
  await expectCode(() => h.server.handleResponse(resigned), 'invalid_message', 're-signed')
  assert.equal(await h.nonces.size(), 0)
})

test('relay: mixing two runs (attacker challenge + victim signature, victim request + attacker challenge) fails', async () => {
  const h = makeHarness()
  const attackerKp = generateKeyPair()
  h.p.serverAllowlist.add(attackerKp.publicKeyRaw)
  const victim = h.newClient()
  const attacker = h.newClient({ keyPair: attackerKp })
  const vm1 = wire(victim.start())
  const am1 = wire(attacker.start())
  const vm2 = wire(h.server.handleRequest(vm1))
  const am2 = wire(h.server.handleRequest(am1))
  const vm3 = wire(await victim.handleChallenge(vm2))
  const am3 = wire(await attacker.handleChallenge(am2))
  // Attacker's own transcript, victim's signature: verified under the attacker's key → fails.
  await expectCode(() => h.server.handleResponse({ ...am3, signature: vm3.signature }), 'invalid_signature', 'victim signature on attacker run')
  // Victim's request with the attacker's challenge: the token does not bind these fields.
  await expectCode(() => h.server.handleResponse({ ...vm3, challenge: am2 }), 'invalid_message', 'victim request + attacker challenge')
  // Attacker's request with the victim's challenge and signature.
  await expectCode(() => h.server.handleResponse({ ...vm3, request: am1 }), 'invalid_message', 'attacker request + victim challenge')
  assert.equal(await h.nonces.size(), 0)
  // The honest runs still complete afterwards: nothing was consumed.
  assert.equal((await h.server.handleResponse(vm3)).clientFingerprint, h.p.client.fingerprint)
  assert.equal((await h.server.handleResponse(am3)).clientFingerprint, attackerKp.fingerprint)
})

test('relay: an attacker that swaps the ephemeral key in message 1 is caught by the client; a pure relay gets a token it cannot use', async () => {
  const h = makeHarness()
  const victim = h.newClient()
  const m1 = wire(victim.start())
  const attackerEph = h.newClient({ keyPair: generateKeyPair() }).start().client_ephemeral
  const m2 = wire(h.server.handleRequest({ ...m1, client_ephemeral: attackerEph }))
  await expectCode(() => victim.handleChallenge(m2), 'invalid_signature', 'ephemeral swapped')

  // A relay that passes everything through unchanged reads the token, but not the session key.
  const run = await h.run()
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  const req = { authorization: `Bearer ${run.m4.session_token}`, method: 'POST', target: '/mcp', body }
  await expectCode(() => h.verifier.verify({ ...req, proof: undefined }), 'proof_missing')
  const guessed = createRequestProof({ session: { ...run.session, sessionKey: Buffer.alloc(32, 7) }, method: 'POST', target: '/mcp', body, clock: h.serverClock.now })
  await expectCode(() => h.verifier.verify({ ...req, proof: guessed }), 'proof_invalid')
})

test('audience binding: a server configured for one audience refuses a client that meant another', async () => {
  const h = makeHarness({ server: { audience: ['https://a.example/mcp'] } })
  await expectCode(() => h.server.handleRequest(wire(h.newClient({ audience: 'https://b.example/mcp' }).start())), 'invalid_message')
  const m1 = wire(h.newClient({ audience: 'https://a.example/mcp' }).start())
  assert.equal(h.server.handleRequest(m1).type, 'auth_challenge')
})

test('role reflection: the same key in both roles, signatures moved between steps, all refused', async () => {
  // One key pair acting as client and as server (the worst case for reflection).
  const both = generateKeyPair()
  const allow = new TestAllowlist()
  allow.add(both.publicKeyRaw)
  const clock = () => Date.parse('2026-11-26T12:00:00.000Z')
  const server = createServerHandshake({ keyPair: both, allowlist: allow, nonceStore: new TestNonceStore(100, clock), clock })
  const mk = () => createClientHandshake({ keyPair: both, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: allow, clock }), clock })
  // Message 4 carries no signature in mcp-pki/2 (a finished MAC): a client signature placed there is refused.
  const c1 = mk()
  const m2 = wire(server.handleRequest(wire(c1.start())))
  const m3 = wire(await c1.handleChallenge(m2))
  const m4 = wire((await server.handleResponse(wire(m3))).message)
  await expectCode(() => c1.handleComplete({ ...m4, signature: m3.signature }), 'invalid_message', 'client sig added to auth_complete')
  // Server challenge signature presented as the client's response signature.
  const c2 = mk()
  const m2b = wire(server.handleRequest(wire(c2.start())))
  const m3b = wire(await c2.handleChallenge(m2b))
  await expectCode(() => server.handleResponse({ ...m3b, signature: m2b.signature }), 'invalid_signature', 'server sig as client-response')
  // Server completion signature from run 1 presented as a challenge signature in run 3.
  const c3 = mk()
  c3.start()
  await expectCode(() => c3.handleChallenge({ ...m2, signature: m3.signature }), 'invalid_signature', 'client-response as server-challenge')
})

test('domain separation: a signature over the same transcript under one context verifies under no other', () => {
  const kp = generateKeyPair()
  const transcript = Buffer.from('the same transcript bytes')
  const contexts = [CONTEXT.serverChallenge, CONTEXT.clientResponse, CONTEXT.serverFinished] as const
  for (const signed of contexts) {
    const sig = signBytes(kp.privateKey, signingInput(signed, transcript))
    for (const checked of contexts) {
      assert.equal(verifyBytes(kp.publicKey, signingInput(checked, transcript), sig), signed === checked, `${signed} checked as ${checked}`)
    }
  }
  // And fromB64u refuses what b64u never produces, so a signature has one encoding only.
  const sig = b64u(signBytes(kp.privateKey, Buffer.alloc(1)))
  assert.equal(fromB64u(sig + '='), undefined)
})

// From the red-team, handshake server (held).
test('relay over HTTP: a relay that rewrites nothing is left with a token it cannot use; a replayed message 3 is replay_detected', async () => {
  const { sb, running: server, port } = await startServer()
  const c = createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}/auth`, serverTrust: () => ({}) })
  const r2 = await postAuth(port, c.start())
  const m3 = await c.handleChallenge(r2.body)
  const r4 = await postAuth(port, m3)
  assert.equal(r4.status, 200)
  const replay = await postAuth(port, m3)
  assert.equal(replay.status, 401)
  assert.equal(replay.body.error?.code, 'replay_detected')
  // The relay saw message 4 (the token) but never the session key.
  const session = c.handleComplete(r4.body)
  const token = String(r4.body.session_token)
  assert.equal(session.token, token)
  await assert.rejects(server.configured.service.verifyRequest({ authorization: `Bearer ${token}`, proof: undefined, method: 'POST', target: '/mcp', body: '' }), { code: 'proof_missing' })
})
