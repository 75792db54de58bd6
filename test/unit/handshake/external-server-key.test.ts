// A server key that signs outside the process (handshake/server-key.ts): message 2 through a
// promise with the very bytes a key pair would sign, a rotation proved by two external keys, a
// signer failure closed as internal_error (detail in the audit log only), and no derived ticket key.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { AuthError } from '../../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../../src/handshake/client-handshake.js'
import { takeEphemeral } from '../../../src/handshake/common.js'
import { createServerHandshake } from '../../../src/handshake/server-handshake.js'
import { externalServerKey, isKeyPair, signWithServerKey, type ExternalServerKey } from '../../../src/handshake/server-key.js'
import { generateKeyPair, verifyBytes, type Ed25519KeyPair } from '../../../src/keys/key-pair.js'
import { createKeyPairSigner, type Signer } from '../../../src/keys/signer.js'
import { ticketKeyFrom } from '../../../src/session/ticket.js'
import { createAuthService } from '../../../src/transport/auth-service.js'
import { makeParties, TestClock, TestNonceStore } from '../../helpers/fixtures.js'

const AUDIENCE = 'https://mcp.example/auth'
const ticketKeys = [ticketKeyFrom(Buffer.alloc(32, 7))]

/** An external key over an in-process key pair, counting its signatures. */
function external(kp: Ed25519KeyPair): ExternalServerKey & { calls: () => number } {
  const inner = createKeyPairSigner(kp)
  let calls = 0
  const signer: Signer = { publicKey: inner.publicKey, sign: (d) => ((calls += 1), inner.sign(d)) }
  return Object.assign(externalServerKey(signer), { calls: () => calls })
}

test('message 2 from an external key is a promise of the same bytes a key pair signs (same random, clock and ephemeral)', async () => {
  const p = makeParties()
  const clock = new TestClock()
  const seed = randomBytes(64)
  const eph = takeEphemeral()
  const options = { allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10, clock.now), clock: clock.now, ticketKeys, ephemeral: () => eph }
  const fixedRandom = () => {
    let at = 0
    return (n: number): Buffer => Buffer.from(seed.subarray(at, (at += n)))
  }
  const local = createServerHandshake({ ...options, keyPair: p.server, random: fixedRandom() })
  const ext = external(p.server)
  const remote = createServerHandshake({ ...options, keyPair: ext, random: fixedRandom() })
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
  const m1 = client.start()
  const sync = local.handleRequest(structuredClone(m1))
  const pending = remote.handleRequest(structuredClone(m1))
  assert.ok(pending instanceof Promise, 'an external key answers through a promise')
  assert.ok(!((sync as unknown) instanceof Promise), 'a key pair answers at once')
  assert.deepEqual(await pending, sync)
  assert.equal(ext.calls(), 1)
  // And the handshake completes against it.
  const result = await remote.handleResponse(await client.handleChallenge(await pending))
  assert.equal(client.handleComplete(result.message).serverFingerprint, p.server.fingerprint)
})

test('a signer that fails: message 2 rejects with internal_error naming the key and the reason; the service answers 500 "internal error" and audits the reason', async () => {
  const p = makeParties()
  const signer: Signer = { publicKey: p.server.publicKeyRaw, sign: () => Promise.reject(Object.assign(new Error('the ssh-agent refused to sign'), { hint: 'ssh-add it again' })) }
  const key = externalServerKey(signer)
  const clock = new TestClock()
  const lines: Array<{ event: string; fields: Record<string, unknown> }> = []
  const service = createAuthService({ keyPair: key, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10, clock.now), clock: clock.now, ticketKeys, audit: { log: (event, fields) => lines.push({ event, fields }) } })
  const client = () => createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), clock: clock.now })
  await assert.rejects(Promise.resolve(service.handshake.handleRequest(client().start())), (err: unknown) => {
    assert.ok(err instanceof AuthError)
    assert.equal(err.code, 'internal_error')
    assert.equal(err.message, `the server key ${p.server.fingerprint.slice(0, 16)}… could not sign: the ssh-agent refused to sign; ssh-add it again`)
    return true
  })
  const reply = await service.handleMessage(client().start())
  assert.equal(reply.status, 500)
  assert.deepEqual(reply.body.type === 'auth_error' && reply.body.error, { code: 'internal_error', message: 'internal error' })
  const failure = lines.find((l) => l.event === 'handshake.failure')
  assert.equal(failure?.fields.code, 'internal_error')
  assert.match(String(failure?.fields.reason), /could not sign: the ssh-agent refused to sign; ssh-add it again/)
  // An unexpected non-AuthError is still not described anywhere.
  const broken = createAuthService({ keyPair: externalServerKey({ publicKey: p.server.publicKeyRaw, sign: () => Promise.reject(new Error('secret detail')) }), allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10, clock.now), clock: clock.now, ticketKeys })
  const r2 = await broken.handleMessage(client().start())
  assert.equal(r2.status, 500)
  assert.doesNotMatch(JSON.stringify(r2.body), /secret detail/)
})

test('a rotation between two external keys: message 4 carries an update both signed, and a pinned client moves its pin', async () => {
  const p = makeParties()
  const next = generateKeyPair()
  const from = external(p.server)
  const to = external(next)
  const clock = new TestClock()
  const server = createServerHandshake({ keyPair: from, serverKeys: () => ({ current: from, rotation: { from, to } }), allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10, clock.now), clock: clock.now, ticketKeys })
  const trust = createServerTrust({ pinnedFingerprint: p.server.fingerprint, keyRotation: { log: () => undefined } })
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: trust, clock: clock.now })
  const m2 = await server.handleRequest(client.start())
  const result = await server.handleResponse(await client.handleChallenge(m2))
  assert.ok(result.message.server_key_update !== undefined)
  client.handleComplete(result.message)
  const pin = trust.rotation as unknown as { settled(): Promise<void>; pinned(): string }
  await pin.settled()
  assert.equal(pin.pinned(), next.fingerprint)
  assert.equal(from.calls(), 2, 'message 2 and the update')
  assert.equal(to.calls(), 1, 'the update')
})

test('an external key derives no ticket key (TypeError without ticketKeys); signWithServerKey is synchronous only for a key pair', async () => {
  const p = makeParties()
  const key = external(p.server)
  assert.throws(() => createServerHandshake({ keyPair: key, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1) }), (err: unknown) => err instanceof TypeError && /no private seed.*ticketKeys/.test(err.message))
  assert.equal(isKeyPair(key), false)
  assert.equal(isKeyPair(p.server), true)
  const data = Buffer.from('data')
  const now = signWithServerKey(p.server, data)
  assert.ok(Buffer.isBuffer(now))
  const later = signWithServerKey(key, data)
  assert.ok(later instanceof Promise)
  assert.ok(verifyBytes(p.server.publicKey, data, await later))
  assert.throws(() => externalServerKey({ publicKey: Buffer.alloc(32), sign: () => Promise.resolve(Buffer.alloc(64)) }), /small-order|not a usable/)
})
