import { createPrivateKey, createPublicKey, diffieHellman, hkdfSync, type KeyObject } from 'node:crypto'
import { AuthError } from '../errors.js'
import { b64u } from '../internal/bytes.js'
import { systemRandom } from '../internal/clock.js'
import { CONTEXT, SESSION_KEY_SIZE } from '../protocol/constants.js'

/** An ephemeral X25519 key pair for one handshake. */
export interface Ephemeral {
  privateKey: KeyObject
  publicRaw: Buffer
}

/**
 * A fresh X25519 key pair: 32 random bytes imported as a JWK private key (fast path, ≈ the cost of
 * generateKeyPairSync), public key read back from the JWK export.
 *
 * Not `generateKeyPairSync('x25519')` + `publicKey.export({format: 'jwk'})`: on Node 20 that pair
 * deadlocks the thread when a garbage collection runs inside the export (the export holds the key's
 * mutex; the GC destroys the finished KeyGenJob, whose destructor takes the same mutex). Under
 * handshake load it hangs the process within seconds (found by bench/, see docs/benchmarks.md).
 * Node only reads `d` of a private OKP JWK (`x` must be a string but is recomputed from `d`).
 */
export function generateEphemeral(): Ephemeral {
  const seed = systemRandom(32)
  try {
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: seed.toString('base64url'), x: '' }, format: 'jwk' })
    return { privateKey, publicRaw: Buffer.from(privateKey.export({ format: 'jwk' }).x as string, 'base64url') }
  } catch {
    return ephemeralFromSeed(seed) // slower PKCS#8 import, in case a runtime insists on a matching x
  } finally {
    seed.fill(0)
  }
}

/** Source of ephemeral key pairs; injected (e.g. {@link ephemeralFromSeed}) only to make test vectors reproducible. */
export type EphemeralSource = () => Ephemeral

const POOL_SIZE = 8
const pool: Ephemeral[] = []
let refillScheduled = false

function refillOne(): void {
  refillScheduled = false
  if (pool.length >= POOL_SIZE) return
  pool.push(generateEphemeral())
  scheduleRefill()
}

function scheduleRefill(): void {
  if (refillScheduled || pool.length >= POOL_SIZE) return
  refillScheduled = true
  // One key per turn of the event loop, after the I/O just handled: made while this process
  // waits for the network, off the path of the message that will need it.
  setImmediate(refillOne).unref()
}

/**
 * A fresh ephemeral key pair, made in advance while the process was idle when one is ready
 * (each is handed out once, then forgotten here), else made now. The default source of both sides.
 */
export function takeEphemeral(): Ephemeral {
  const ready = pool.pop()
  scheduleRefill()
  return ready ?? generateEphemeral()
}

/** An X25519 key pair from 32 raw private bytes (RFC 7748 clamping is applied by X25519 itself). Tests and vectors only. */
export function ephemeralFromSeed(seed: Uint8Array): Ephemeral {
  if (seed.byteLength !== 32) throw new RangeError('an X25519 private key is 32 bytes')
  const privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  return { privateKey, publicRaw: Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x as string, 'base64url') }
}

const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

export function x25519PublicFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(raw) }, format: 'jwk' })
}

const SESSION_KEYS_INFO = Buffer.from(CONTEXT.sessionKeys)

/** The two keys of one X25519 exchange: requests are MAC'd under the first, message 4 under the second. */
export interface SessionKeys {
  sessionKey: Buffer
  finishedKey: Buffer
}

/**
 * session_key || finished_key = HKDF-SHA256(ikm = X25519(own, peer), salt = SHA-256(T2pre),
 * info = "mcp-pki/2 session-keys", L = 64). A low-order peer key (all-zero shared secret) is
 * refused as invalid_message. Both halves are views of one 64-byte buffer (zero it to forget both).
 */
export function deriveSessionKeys(own: KeyObject, peerRaw: Uint8Array, t2preHash: Uint8Array): SessionKeys {
  const okm = deriveKeyMaterial(own, peerRaw, t2preHash)
  return { sessionKey: okm.subarray(0, SESSION_KEY_SIZE), finishedKey: okm.subarray(SESSION_KEY_SIZE) }
}

function deriveKeyMaterial(own: KeyObject, peerRaw: Uint8Array, t2preHash: Uint8Array): Buffer {
  let shared: Buffer
  try {
    shared = diffieHellman({ privateKey: own, publicKey: x25519PublicFromRaw(peerRaw) })
  } catch {
    throw new AuthError('invalid_message', 'ephemeral key is not a usable X25519 public key')
  }
  if (shared.every((b) => b === 0)) throw new AuthError('invalid_message', 'ephemeral key is not a usable X25519 public key')
  const okm = Buffer.from(hkdfSync('sha256', shared, t2preHash, SESSION_KEYS_INFO, 2 * SESSION_KEY_SIZE))
  shared.fill(0)
  return okm
}

export function checkWindow(ts: number, now: number, toleranceMs: number, what: string): void {
  if (Math.abs(now - ts) > toleranceMs) {
    const skew = Math.round((ts - now) / 1000)
    throw new AuthError(
      'timestamp_skew',
      `${what} timestamp is ${Math.abs(skew)} s ${skew > 0 ? 'ahead of' : 'behind'} this clock (allowed ±${Math.round(toleranceMs / 1000)} s); check the clocks`,
    )
  }
}
