/**
 * Malformed input through the transport-independent service (4xx with a clear code, the service
 * keeps serving; on /ws an invalid UTF-8 frame closes the connection), and the order of the
 * server's checks: cheap rejection first.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateEphemeral } from '../../src/handshake/common.js'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import type { RandomSource } from '../../src/internal/clock.js'
import { randomBytes } from 'node:crypto'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import type { KeyLookup } from '../../src/allowlist/types.js'
import type { NonceStore } from '../../src/nonce/nonce-store.js'
import type { AuthRequestWire } from '../../src/protocol/messages.js'
import { createAuthService, type AuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestClock, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { AUDIENCE, codeOf, wire } from '../helpers/handshake-harness.js'
import type * as net from 'node:net'
import WebSocket from 'ws'
import { honestHandshake } from './helpers/auth-endpoint.js'
import { sleep } from './helpers/loopback-http.js'
import { startServer } from './helpers/sandbox-servers.js'

function setup(nonceStore?: NonceStore): { p: Parties; clock: TestClock; nonces: NonceStore; service: AuthService; handshake: () => Promise<void> } {
  const p = makeParties()
  const clock = new TestClock()
  const nonces = nonceStore ?? new TestNonceStore(1000, clock.now)
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: nonces, clock: clock.now })
  async function handshake(): Promise<void> {
    const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: p.clientAllowlist, clock: clock.now }), clock: clock.now })
    const r2 = await service.handleMessage(JSON.stringify(client.start()))
    assert.equal(r2.status, 200)
    const r4 = await service.handleMessage(JSON.stringify(await client.handleChallenge(wire(r2.body))))
    assert.equal(r4.status, 200)
    assert.equal(client.handleComplete(wire(r4.body)).serverFingerprint, p.server.fingerprint)
  }
  return { p, clock, nonces, service, handshake }
}

function goodM1(p: Parties, clock: TestClock): AuthRequestWire {
  return wire(createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: () => undefined, clock: clock.now }).start())
}

test('malformed handshake input gets 4xx with a clear code and the service keeps serving', async () => {
  const { p, clock, service, nonces, handshake } = setup()
  const m1 = goodM1(p, clock)
  const json = JSON.stringify(m1)
  const b = (n: number) => b64u(randomBytes(n))
  const without = (k: keyof AuthRequestWire) => JSON.stringify(Object.fromEntries(Object.entries(m1).filter(([key]) => key !== k)))
  const cases: Array<[string, unknown, number, string]> = [
    ['not JSON', 'hello', 400, 'invalid_message'],
    ['truncated JSON', json.slice(0, -1), 400, 'invalid_message'],
    ['empty string', '', 400, 'invalid_message'],
    ['huge body (string)', JSON.stringify({ ...m1, audience: 'a'.repeat(20_000) }), 413, 'payload_too_large'],
    ['huge body (bytes)', Buffer.alloc(16 * 1024 + 1, 0x20), 413, 'payload_too_large'],
    ['deep array nesting', '['.repeat(8000) + ']'.repeat(8000), 400, 'invalid_message'],
    ['deep object nesting', JSON.stringify({ ...m1, x: 0 }).replace('"x":0', '"x":' + '{"x":'.repeat(2000) + '1' + '}'.repeat(2000)), 400, 'invalid_message'],
    ['array', '[]', 400, 'invalid_message'],
    ['null', 'null', 400, 'invalid_message'],
    ['number', '42', 400, 'invalid_message'],
    ['string', '"auth_request"', 400, 'invalid_message'],
    ['parsed undefined', undefined, 400, 'invalid_message'],
    ['type missing', JSON.stringify({ ...m1, type: undefined }), 400, 'invalid_message'],
    ['type is a number', JSON.stringify({ ...m1, type: 1 }), 400, 'invalid_message'],
    ['type of a server message', JSON.stringify({ ...m1, type: 'auth_complete' }), 400, 'invalid_message'],
    ['type auth_error', JSON.stringify({ ...m1, type: 'auth_error' }), 400, 'invalid_message'],
    ['nonce is a number', JSON.stringify({ ...m1, client_nonce: 123 }), 400, 'invalid_message'],
    ['timestamp is a number', JSON.stringify({ ...m1, timestamp: Date.now() }), 400, 'invalid_message'],
    ['audience is an array', JSON.stringify({ ...m1, audience: [AUDIENCE] }), 400, 'invalid_message'],
    ['key is an object', JSON.stringify({ ...m1, client_public_key: { x: 1 } }), 400, 'invalid_message'],
    ['bad base64 characters', JSON.stringify({ ...m1, client_nonce: '!'.repeat(43) }), 400, 'invalid_message'],
    ['standard base64 alphabet', JSON.stringify({ ...m1, client_nonce: Buffer.alloc(32, 0xfb).toString('base64').replace(/=+$/, '') }), 400, 'invalid_message'],
    ['padded base64url', JSON.stringify({ ...m1, client_nonce: m1.client_nonce + '=' }), 400, 'invalid_message'],
    ['non-canonical trailing bits', JSON.stringify({ ...m1, client_nonce: m1.client_nonce.slice(0, -1) + (m1.client_nonce.endsWith('B') ? 'C' : 'B') }), 400, 'invalid_message'],
    ['public key 31 bytes', JSON.stringify({ ...m1, client_public_key: b(31) }), 400, 'invalid_message'],
    ['public key 33 bytes', JSON.stringify({ ...m1, client_public_key: b(33) }), 400, 'invalid_message'],
    ['nonce 16 bytes', JSON.stringify({ ...m1, client_nonce: b(16) }), 400, 'invalid_message'],
    ['ephemeral 31 bytes', JSON.stringify({ ...m1, client_ephemeral: b(31) }), 400, 'invalid_message'],
    ['low-order ephemeral (all zero)', JSON.stringify({ ...m1, client_ephemeral: b64u(Buffer.alloc(32)) }), 400, 'invalid_message'],
    ['timestamp without milliseconds', JSON.stringify({ ...m1, timestamp: m1.timestamp.replace(/\.\d{3}Z$/, 'Z') }), 400, 'invalid_message'],
    ['timestamp with offset', JSON.stringify({ ...m1, timestamp: m1.timestamp.replace('Z', '+00:00') }), 400, 'invalid_message'],
    ['impossible date', JSON.stringify({ ...m1, timestamp: '2026-02-30T12:00:00.000Z' }), 400, 'invalid_message'],
    ['audience with a control character', JSON.stringify({ ...m1, audience: 'http://x/\n' }), 400, 'invalid_message'],
    ['audience too long', JSON.stringify({ ...m1, audience: 'a'.repeat(513) }), 400, 'invalid_message'],
    ['extra field', JSON.stringify({ ...m1, extra: 1 }), 400, 'invalid_message'],
    ['__proto__ key', json.replace('{', '{"__proto__":{"polluted":true},'), 400, 'invalid_message'],
    ['constructor key', json.replace('{', '{"constructor":{"prototype":{"polluted":true}},'), 400, 'invalid_message'],
    ['message 3 with a string request', JSON.stringify({ type: 'auth_response', version: 'mcp-pki/2', request: 'x', challenge: {}, timestamp: m1.timestamp, signature: b(64) }), 400, 'invalid_message'],
    ['message 3 with __proto__ in the echo', JSON.stringify({ type: 'auth_response', version: 'mcp-pki/2', request: m1, challenge: {}, timestamp: m1.timestamp, signature: b(64) }).replace('"request":{', '"request":{"__proto__":{},'), 400, 'invalid_message'],
    ['message 3 with nothing else', JSON.stringify({ type: 'auth_response' }), 400, 'invalid_message'],
    ['invalid UTF-8 bytes', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400, 'invalid_message'],
  ]
  for (const k of Object.keys(m1) as Array<keyof AuthRequestWire>) cases.push([`missing ${k}`, without(k), 400, 'invalid_message'])
  for (const [label, input, status, code] of cases) {
    const reply = await service.handleMessage(input)
    assert.equal(reply.status, status, label)
    assert.equal(reply.body.type, 'auth_error', label)
    assert.equal(reply.body.type === 'auth_error' && reply.body.error.code, code, label)
    assert.equal(reply.error?.code, code, label)
    const text = JSON.stringify(reply.body)
    assert.ok(!/\bat \S+\.(ts|js):\d+/.test(text) && !text.includes('node:internal'), `${label}: no stack trace`)
  }
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  assert.equal(await nonces.size(), 0)
  // Still serving.
  await handshake()
  await handshake()
})

test('an unexpected failure inside the server is internal_error (500) with no detail, and the service keeps serving', async () => {
  let explode = false
  const inner = new TestNonceStore(1000)
  const store: NonceStore = {
    checkAndInsert: (n, e) => {
      if (explode) throw new Error('redis at 10.0.0.7 said: AUTH s3cr3t failed')
      return inner.checkAndInsert(n, e)
    },
    epoch: () => inner.epoch(),
    checkSequence: (...a) => inner.checkSequence(...a),
    size: () => inner.size(),
  }
  const { p, clock, service, handshake } = setup(store)
  explode = true
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: p.clientAllowlist, clock: clock.now }), clock: clock.now })
  const r2 = await service.handleMessage(client.start())
  const r4 = await service.handleMessage(wire(await client.handleChallenge(wire(r2.body))))
  assert.equal(r4.status, 500)
  assert.deepEqual(r4.body.type === 'auth_error' && r4.body.error, { code: 'internal_error', message: 'internal error' })
  assert.ok(!JSON.stringify(r4.body).includes('s3cr3t'))
  explode = false
  await handshake()
})

test('cheap rejection first: malformed input costs nothing; at message 3 an unknown key costs no verification, no nonce, no token', async () => {
  const p = makeParties()
  const clock = new TestClock()
  const events: string[] = []
  const allowlist: KeyLookup = {
    lookup: (fp, now) => (events.push('lookup'), p.serverAllowlist.lookup(fp, now)),
  }
  const inner = new TestNonceStore(1000, clock.now)
  const nonces: NonceStore = {
    checkAndInsert: (n, e, ep) => (events.push('nonce'), inner.checkAndInsert(n, e, ep)),
    epoch: () => inner.epoch(),
    checkSequence: (...a) => inner.checkSequence(...a),
    size: () => inner.size(),
  }
  const random: RandomSource = (n) => (events.push(`random${n}`), randomBytes(n))
  const server = createServerHandshake({
    keyPair: p.server,
    allowlist,
    nonceStore: nonces,
    clock: clock.now,
    random,
    ephemeral: () => (events.push('ephemeral'), generateEphemeral()),
  })
  const newClient = (keyPair = p.client) =>
    createClientHandshake({ keyPair, audience: AUDIENCE, serverTrust: createServerTrust({ allowlist: p.clientAllowlist, clock: clock.now }), clock: clock.now })
  const observe = async (fn: () => unknown): Promise<[string, string[]]> => {
    events.length = 0
    const code = await codeOf(fn)
    return [code, [...events]]
  }
  const m1 = wire(newClient().start())
  const stranger = wire(newClient(generateKeyPair()).start())

  // Message 1. The challenge signature needs the token, which needs the iv (random12) and the
  // ephemeral key: when neither was drawn, no signature was made.
  assert.deepEqual(await observe(() => server.handleRequest({ ...m1, client_nonce: 'AA=' })), ['invalid_message', []])
  assert.deepEqual(await observe(() => server.handleRequest({ ...stranger, version: 'mcp-pki/9' })), ['unsupported_version', []])
  assert.deepEqual(await observe(() => server.handleRequest({ ...stranger, timestamp: new Date(clock.ms - 301_000).toISOString() })), ['timestamp_skew', []])
  // A well-formed message 1 is answered the same way, listed key or not: no allowlist lookup (no
  // oracle for strangers who hold public keys); the allowlist decides at message 3.
  assert.deepEqual(await observe(() => server.handleRequest(stranger)), ['ok', ['random32', 'ephemeral', 'random12']])
  assert.deepEqual(await observe(() => server.handleRequest(m1)), ['ok', ['random32', 'ephemeral', 'random12']])

  // Message 3: allowlist → MAC (challenge token) → expiry → signature → nonce insert.
  const client = newClient()
  const m3 = wire(await client.handleChallenge(wire(server.handleRequest(wire(client.start())))))
  const badSig = (m: typeof m3) => ({ ...m, signature: b64u(randomBytes(64)) })
  const sc = newClient(generateKeyPair())
  const strangerM3 = { ...m3, request: wire(sc.start()) }
  assert.deepEqual(await observe(() => server.handleResponse({ ...m3, timestamp: 'yesterday' })), ['invalid_message', []])
  assert.deepEqual(await observe(() => server.handleResponse(badSig(strangerM3))), ['unknown_key', ['lookup']], 'unknown key + bad signature')
  const tok = fromB64u(m3.challenge.challenge_token)!
  tok[tok.length - 1] = tok[tok.length - 1]! ^ 1
  const badToken = { ...m3, challenge: { ...m3.challenge, challenge_token: b64u(tok) } }
  assert.deepEqual(await observe(() => server.handleResponse(badSig(badToken))), ['invalid_message', ['lookup']], 'good key + bad token + bad signature')
  assert.deepEqual(await observe(() => server.handleResponse(badSig(m3))), ['invalid_signature', ['lookup']], 'good token + bad signature')
  assert.equal(inner.size(), 0, 'nonce store untouched')
  // Expiry is checked before the signature.
  const saved = clock.ms
  clock.ms = Date.parse(m3.challenge.expires_at)
  assert.deepEqual(await observe(() => server.handleResponse(badSig({ ...m3, timestamp: new Date(clock.ms).toISOString() }))), ['challenge_expired', ['lookup']])
  clock.ms = saved
  // Success: the nonce is inserted only after the signature verified, then the session is sealed.
  assert.deepEqual(await observe(() => server.handleResponse(m3)), ['ok', ['lookup', 'nonce', 'random16', 'random12']])
  // A replay with a bad signature fails at the signature, before the nonce store is asked.
  assert.deepEqual(await observe(() => server.handleResponse(badSig(m3))), ['invalid_signature', ['lookup']], 'replay + bad signature')
  assert.deepEqual(await observe(() => server.handleResponse(m3)), ['replay_detected', ['lookup', 'nonce']])
  assert.equal(inner.size(), 1)
})

// From the red-team, handshake server (held).
test('an invalid UTF-8 text frame on /ws closes the connection (1007) and the server keeps serving', async () => {
  const { sb, running: server, port } = await startServer()
  const ws = new WebSocket(server.wsUrl)
  await new Promise((r, j) => {
    ws.once('open', r)
    ws.once('error', j)
  })
  const code = new Promise<number>((r) => ws.once('close', (c: number) => r(c)))
  // A raw masked text frame with bytes that are not UTF-8.
  const sock = (ws as unknown as { _socket: net.Socket })._socket
  const payload = Buffer.from([0x7b, 0xff, 0xfe, 0x7d])
  const mask = Buffer.from([1, 2, 3, 4])
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))
  sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]))
  assert.equal(await Promise.race([code, sleep(3000).then(() => -1)]), 1007)
  assert.equal(await honestHandshake(sb, port), 'ok')
})
