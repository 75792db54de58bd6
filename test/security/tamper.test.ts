/**
 * Every field of every message, altered in transit, makes the handshake fail with a pinned code
 * and grants nothing. The tables below are the contract (docs/PROTOCOL.md §Tampering): adding a
 * field to a message without pinning its code here fails the "tables cover every field" checks.
 *
 * Alteration per field kind: base64url bytes → lowest bit of the first decoded byte flipped;
 * timestamps → +1 ms; type/audience → last character changed; version → "mcp-pki/1" (the previous version);
 * fingerprints → first hex digit changed; success → false.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AuthError } from '../../src/errors.js'
import { b64u, fromB64u } from '../../src/internal/bytes.js'
import { ed25519PublicKeyProblem } from '../../src/keys/point-check.js'
import { codeOf, makeHarness, wire, type Harness } from '../helpers/handshake-harness.js'

type Json = Record<string, unknown>

const B64_FIELDS = new Set([
  'client_public_key',
  'client_nonce',
  'client_ephemeral',
  'server_public_key',
  'server_nonce',
  'server_ephemeral',
  'challenge_token',
  'signature',
  'session_token',
  'replay_epoch',
  'finished',
])
/** Opaque sealed tickets: their length is not fixed by the protocol, so a shortened one may still decode (then its MAC fails). */
const OPAQUE = new Set(['challenge_token', 'session_token'])

function alter(field: string, value: unknown): unknown {
  if (B64_FIELDS.has(field)) {
    const buf = fromB64u(value as string)!
    buf[0] = buf[0]! ^ 0x01
    return b64u(buf)
  }
  switch (field) {
    case 'timestamp':
    case 'expires_at':
      return new Date(Date.parse(value as string) + 1).toISOString()
    case 'type':
    case 'audience':
      return (value as string).slice(0, -1) + ((value as string).endsWith('x') ? 'y' : 'x')
    case 'version':
      return 'mcp-pki/1'
    case 'client_fingerprint':
    case 'server_fingerprint':
      return ((value as string)[0] === '0' ? '1' : '0') + (value as string).slice(1)
    case 'success':
      return false
    default:
      throw new Error(`no alteration defined for ${field}`)
  }
}

/** Dotted paths of every leaf field (nested objects of message 3 included). */
function leaves(m: Json, prefix = ''): string[] {
  return Object.entries(m).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? leaves(v as Json, `${prefix}${k}.`) : [`${prefix}${k}`]))
}

function withAltered<T>(m: T, path: string, how: (field: string, v: unknown) => unknown = alter): T {
  const copy = wire(m) as Json
  const parts = path.split('.')
  let target = copy
  for (const p of parts.slice(0, -1)) target = target[p] as Json
  const field = parts.at(-1)!
  target[field] = how(field, target[field])
  return copy as T
}

/** "server:<code>" or "client:<code>": where message 1 tampering is caught first. */
const M1: Record<string, string> = {
  type: 'server:invalid_message',
  version: 'server:unsupported_version',
  // Message 1 is answered whatever its key (no allowlist oracle): the client catches the change.
  // (When the altered key is not a curve point at all, the server refuses it at once: m1KeyOutcome.)
  client_public_key: 'client:invalid_signature',
  client_nonce: 'client:invalid_signature',
  client_ephemeral: 'client:invalid_signature',
  timestamp: 'client:invalid_signature',
  audience: 'client:invalid_signature',
}

/** Message 2, checked by the client. */
const M2: Record<string, string> = {
  type: 'invalid_message',
  version: 'unsupported_version',
  server_public_key: 'server_key_unknown',
  server_nonce: 'invalid_signature',
  server_ephemeral: 'invalid_signature',
  timestamp: 'invalid_signature',
  expires_at: 'invalid_signature',
  challenge_token: 'invalid_signature',
  signature: 'invalid_signature',
}

/** Message 3, checked by the server. */
const M3: Record<string, string> = {
  type: 'invalid_message',
  version: 'unsupported_version',
  'request.type': 'invalid_message',
  'request.version': 'unsupported_version',
  'request.client_public_key': 'unknown_key',
  'request.client_nonce': 'invalid_message',
  'request.client_ephemeral': 'invalid_message',
  'request.timestamp': 'invalid_message',
  'request.audience': 'invalid_message',
  'challenge.type': 'invalid_message',
  'challenge.version': 'unsupported_version',
  'challenge.server_public_key': 'invalid_message',
  'challenge.server_nonce': 'invalid_message',
  'challenge.server_ephemeral': 'invalid_message',
  'challenge.timestamp': 'invalid_message',
  'challenge.expires_at': 'invalid_message',
  'challenge.challenge_token': 'invalid_message',
  'challenge.signature': 'invalid_signature',
  timestamp: 'invalid_signature',
  signature: 'invalid_signature',
}

/** Message 4, checked by the client. */
const M4: Record<string, string> = {
  type: 'invalid_message',
  version: 'unsupported_version',
  success: 'invalid_message',
  session_token: 'invalid_signature',
  expires_at: 'invalid_signature',
  client_fingerprint: 'invalid_message',
  server_fingerprint: 'invalid_message',
  timestamp: 'invalid_signature',
  replay_epoch: 'invalid_signature',
  finished: 'invalid_signature',
}

async function m1Outcome(h: Harness, path: string, how?: (f: string, v: unknown) => unknown): Promise<string> {
  const client = h.newClient()
  const m1 = withAltered(wire(client.start()), path, how)
  let m2
  try {
    m2 = wire(h.server.handleRequest(m1))
  } catch (err) {
    if (err instanceof AuthError) return `server:${err.code}`
    throw err
  }
  const code = await codeOf(() => client.handleChallenge(m2))
  return `client:${code}`
}

test('tables cover every field of every message', async () => {
  const h = makeHarness()
  const run = await h.run()
  assert.deepEqual(leaves(run.m1 as unknown as Json).sort(), Object.keys(M1).sort())
  assert.deepEqual(leaves(run.m2 as unknown as Json).sort(), Object.keys(M2).sort())
  assert.deepEqual(leaves(run.m3 as unknown as Json).sort(), Object.keys(M3).sort())
  assert.deepEqual(leaves(run.m4 as unknown as Json).sort(), Object.keys(M4).sort())
})

/** A key whose first bit was flipped is off the curve about half the time: then message 1 itself is refused. */
function m1Expected(h: Harness, path: string): string {
  if (path !== 'client_public_key') return M1[path]!
  const altered = fromB64u((withAltered(wire(h.newClient().start()), path) as unknown as Json).client_public_key as string)!
  return ed25519PublicKeyProblem(altered) === undefined ? M1[path]! : 'server:invalid_message'
}

test('message 1: each field altered in transit', async () => {
  const h = makeHarness()
  for (const path of Object.keys(M1)) {
    assert.equal(await m1Outcome(h, path), m1Expected(h, path), `m1.${path}`)
  }
  assert.equal(await h.nonces.size(), 0)
})

test('message 2: each field altered in transit, refused by the client', async () => {
  const h = makeHarness()
  for (const [path, expected] of Object.entries(M2)) {
    const client = h.newClient()
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    assert.equal(await codeOf(() => client.handleChallenge(withAltered(m2, path))), expected, `m2.${path}`)
    // The client is spent: it will not produce a message 3 for this run afterwards.
    assert.equal(await codeOf(() => client.handleChallenge(m2)), 'invalid_message', `m2.${path} then the original`)
  }
})

test('message 3: each field altered in transit, refused by the server, nonce store untouched', async () => {
  const h = makeHarness()
  const client = h.newClient()
  const m2 = wire(h.server.handleRequest(wire(client.start())))
  const m3 = wire(await client.handleChallenge(m2))
  for (const [path, expected] of Object.entries(M3)) {
    assert.equal(await codeOf(() => h.server.handleResponse(withAltered(m3, path))), expected, `m3.${path}`)
    assert.equal(await h.nonces.size(), 0, `m3.${path}: nonce store`)
  }
  // Nothing was consumed: the untouched message 3 still completes.
  const result = await h.server.handleResponse(wire(m3))
  assert.equal(result.clientFingerprint, h.p.client.fingerprint)
})

test('message 4: each field altered in transit, refused by the client, no session', async () => {
  const h = makeHarness()
  for (const [path, expected] of Object.entries(M4)) {
    const client = h.newClient()
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    const m3 = wire(await client.handleChallenge(m2))
    const m4 = wire((await h.server.handleResponse(m3)).message)
    assert.equal(await codeOf(() => client.handleComplete(withAltered(m4, path))), expected, `m4.${path}`)
    assert.equal(await codeOf(() => client.handleComplete(m4)), 'invalid_message', `m4.${path} then the original`)
  }
})

test('every base64url field shortened by one character is invalid_message wherever it arrives', async () => {
  const drop = (_f: string, v: unknown): unknown => (v as string).slice(0, -1)
  const h = makeHarness()
  const run = await h.run()
  for (const path of leaves(run.m1 as unknown as Json).filter((p) => B64_FIELDS.has(p))) {
    assert.equal(await m1Outcome(h, path, drop), 'server:invalid_message', `m1.${path}`)
  }
  for (const path of leaves(run.m2 as unknown as Json).filter((p) => B64_FIELDS.has(p))) {
    const client = h.newClient()
    const m2 = wire(h.server.handleRequest(wire(client.start())))
    const code = await codeOf(() => client.handleChallenge(withAltered(m2, path, drop)))
    assert.ok(code === 'invalid_message' || (OPAQUE.has(path) && code === 'invalid_signature'), `m2.${path}: ${code}`)
  }
  const client = h.newClient()
  const m3 = wire(await client.handleChallenge(wire(h.server.handleRequest(wire(client.start())))))
  const before = await h.nonces.size()
  for (const path of leaves(m3 as unknown as Json).filter((p) => B64_FIELDS.has(p.split('.').at(-1)!))) {
    assert.equal(await codeOf(() => h.server.handleResponse(withAltered(m3, path, drop))), 'invalid_message', `m3.${path}`)
  }
  assert.equal(await h.nonces.size(), before)
  const m4 = wire((await h.server.handleResponse(m3)).message)
  for (const path of ['session_token', 'replay_epoch', 'finished']) {
    const c = h.newClient()
    const cm3 = wire(await c.handleChallenge(wire(h.server.handleRequest(wire(c.start())))))
    const cm4 = wire((await h.server.handleResponse(cm3)).message)
    const code = await codeOf(() => c.handleComplete(withAltered(cm4, path, drop)))
    assert.ok(code === 'invalid_message' || (OPAQUE.has(path) && code === 'invalid_signature'), `m4.${path}: ${code}`)
  }
  assert.equal(m4.type, 'auth_complete')
})
