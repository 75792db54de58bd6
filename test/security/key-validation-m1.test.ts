/**
 * Key validation at message 1 (issue 9, mcp-pki/2 attack): a client key that is not a canonical,
 * decodable, non-small-order ed25519 point is refused at message 1 with 400 invalid_message, before
 * the server draws a nonce, makes an ephemeral key or signs anything. Before the fix an off-curve
 * key (no x for its y) got a signed challenge. Checked against an independent BigInt model of the
 * curve equation (Euler's criterion, not the code's Jacobi symbol), over HTTP and in process.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { ed25519PublicKeyProblem } from '../../src/keys/point-check.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { authenticate } from '../../src/transport/http-client.js'
import { createAuthHttpServer } from '../../src/transport/http-server.js'
import { TestNonceStore } from '../helpers/fixtures.js'
import type { KeyLookup } from '../../src/allowlist/types.js'

const AUDIENCE = 'https://mcp.example'
const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

// An independent model of the curve equation: −x² + y² = 1 + d·x²·y² (RFC 8032 §5.1).
const p = 2n ** 255n - 19n
const mod = (a: bigint): bigint => ((a % p) + p) % p
function pow(b: bigint, e: bigint): bigint {
  let r = 1n
  let x = mod(b)
  let k = e
  while (k > 0n) {
    if (k & 1n) r = mod(r * x)
    x = mod(x * x)
    k >>= 1n
  }
  return r
}
const d = mod(-121665n * pow(121666n, p - 2n))
function yOf(raw: Buffer): bigint {
  const b = Buffer.from(raw)
  b[31]! &= 0x7f
  return BigInt('0x' + Buffer.from(b).reverse().toString('hex'))
}
/** True when some x satisfies the curve equation for this y (y < p). */
function decodable(raw: Buffer): boolean {
  const y = yOf(raw)
  const x2 = mod((y * y - 1n) * pow(d * y * y + 1n, p - 2n))
  return x2 === 0n || pow(x2, (p - 1n) / 2n) === 1n
}
function encode(y: bigint, sign: 0 | 1): Buffer {
  const out = Buffer.from(y.toString(16).padStart(64, '0'), 'hex').reverse()
  out[31]! |= sign << 7
  return out
}

/** Eight random 32-byte strings that are no point (y < p), with both signs represented. */
function offCurveKeys(): Buffer[] {
  const out: Buffer[] = []
  while (out.length < 8) {
    const raw = randomBytes(32)
    raw[31] = (raw[31]! & 0x7f) | (out.length % 2 === 0 ? 0 : 0x80)
    if (yOf(raw) < p && !decodable(raw)) out.push(raw)
  }
  // Fixed ones too: y = 2 is no point (checked below by the model), with either sign.
  assert.equal(decodable(encode(2n, 0)), false, 'y = 2 is not on the curve')
  out.push(encode(2n, 0), encode(2n, 1))
  return out
}
/** Every y ≥ p (p … 2^255 − 1, 19 values) with either sign: the non-canonical encodings. */
function nonCanonicalKeys(): Buffer[] {
  const out: Buffer[] = []
  for (let y = p; y < 2n ** 255n; y++) out.push(encode(y, 0), encode(y, 1))
  return out
}

/** Message 1 as a client with `raw` as its key would send it (the rest from a real client). */
function m1With(raw: Buffer): Record<string, unknown> {
  const client = createClientHandshake({ keyPair: generateKeyPair(), serverTrust: createServerTrust({}), audience: AUDIENCE })
  const m1 = client.start() as unknown as Record<string, unknown>
  m1.client_public_key = raw.toString('base64url')
  return m1
}

function countingService(): { service: ReturnType<typeof createAuthService>; draws: () => number } {
  let draws = 0
  const lookup: KeyLookup = { lookup: () => ({ status: 'unknown' }) }
  const service = createAuthService({
    keyPair: generateKeyPair(),
    allowlist: lookup,
    nonceStore: new TestNonceStore(1000, () => Date.now()),
    audience: AUDIENCE,
    random: (n: number) => {
      draws++
      return randomBytes(n)
    },
  })
  return { service, draws: () => draws }
}

test('the independent model agrees with the code on random keys (both kinds occur)', () => {
  let on = 0
  let off = 0
  for (let i = 0; i < 400; i++) {
    const raw = randomBytes(32)
    if (yOf(raw) >= p) continue
    const problem = ed25519PublicKeyProblem(raw)
    if (problem === 'small_order') continue
    if (decodable(raw)) {
      on++
      assert.equal(problem, undefined, raw.toString('hex'))
    } else {
      off++
      assert.equal(problem, 'not_on_curve', raw.toString('hex'))
    }
  }
  assert.ok(on > 100 && off > 100, `${on} on, ${off} off`)
  for (const raw of nonCanonicalKeys()) assert.equal(ed25519PublicKeyProblem(raw), 'non_canonical', raw.toString('hex'))
})

test('message 1 with an off-curve or non-canonical client key: invalid_message naming the problem, nothing drawn or signed', async () => {
  const { service, draws } = countingService()
  const cases: Array<[Buffer, RegExp]> = [
    ...offCurveKeys().map((k): [Buffer, RegExp] => [k, /not a point on the curve/]),
    ...nonCanonicalKeys().map((k): [Buffer, RegExp] => [k, /non-canonical/]),
  ]
  for (const [raw, why] of cases) {
    const reply = await service.handleMessage(m1With(raw), { remote: '127.0.0.1', transport: 'test' })
    assert.equal(reply.status, 400, raw.toString('hex'))
    assert.equal(reply.error?.code, 'invalid_message')
    assert.match(reply.error?.message ?? '', /client_public_key is not a usable ed25519 public key/)
    assert.match(reply.error?.message ?? '', why)
    assert.equal((reply.body as { type: string }).type, 'auth_error')
    assert.ok(!('signature' in reply.body))
  }
  assert.equal(draws(), 0, 'no server nonce drawn: the refusal came before any challenge work')
  // Positive control: a real key (unknown to the allowlist) gets a challenge, and that draws a nonce.
  const ok = await service.handleMessage(m1With(generateKeyPair().publicKeyRaw), { remote: '127.0.0.1', transport: 'test' })
  assert.equal(ok.status, 200)
  assert.equal((ok.body as { type: string }).type, 'auth_challenge')
  assert.ok(draws() > 0)
})

test('over HTTP: 400 with the auth_error body for an off-curve key; a real key still authenticates', async () => {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const listed: KeyLookup = {
    lookup(fingerprint, _now, raw) {
      if (fingerprint !== client.fingerprint || raw === undefined) return { status: 'unknown' }
      return { status: 'ok', entry: { fingerprint, publicKeyRaw: client.publicKeyRaw, description: undefined, metadata: {}, addedAt: '', addedBy: undefined, notAfter: undefined }, publicKey: client.publicKey }
    },
  }
  const service = createAuthService({ keyPair: server, allowlist: listed, nonceStore: new TestNonceStore(1000, () => Date.now()), audience: AUDIENCE })
  const httpServer = createAuthHttpServer({ service, host: '127.0.0.1', port: 0 })
  await httpServer.listen()
  cleanups.push(() => httpServer.close())
  const url = httpServer.url('/auth')
  for (const raw of [...offCurveKeys().slice(0, 3), encode(p, 0), encode(p + 18n, 1)]) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(m1With(raw)) })
    assert.equal(res.status, 400, raw.toString('hex'))
    const body = (await res.json()) as { type: string; error: { code: string; message: string } }
    assert.equal(body.type, 'auth_error')
    assert.equal(body.error.code, 'invalid_message')
    assert.match(body.error.message, /client_public_key/)
  }
  const session = await authenticate({ url, audience: AUDIENCE, keyPair: client, serverTrust: createServerTrust({ pinnedFingerprint: server.fingerprint }), retryAttempts: 0 })
  assert.equal(session.clientFingerprint, client.fingerprint)
  assert.equal(createHash('sha256').update(client.publicKeyRaw).digest('hex'), client.fingerprint)
})

test('the refusal is an AuthError from the handshake itself (no transport needed)', () => {
  const { service } = countingService()
  assert.throws(
    () => service.handshake.handleRequest(m1With(offCurveKeys()[0]!)),
    (err: unknown) => err instanceof AuthError && err.code === 'invalid_message' && /not a point on the curve/.test(err.message),
  )
})
