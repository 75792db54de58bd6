/**
 * ed25519 keys as Node `KeyObject`s, raw 32-byte public keys, fingerprints, sign/verify.
 * Raw keys are imported through JWK (≈5 µs) rather than DER/PEM (≈66 µs).
 * @module
 */
import { createHash, createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto'
import { AuthError } from '../errors.js'
import { assertUsableEd25519PublicKey } from './point-check.js'

export const ED25519_PUBLIC_KEY_SIZE = 32
export const ED25519_SIGNATURE_SIZE = 64

export interface Ed25519KeyPair {
  privateKey: KeyObject
  publicKey: KeyObject
  /** Raw 32-byte public key. */
  publicKeyRaw: Buffer
  /** Lowercase hex SHA-256 of the raw public key. */
  fingerprint: string
}

/** Generates a new ed25519 key pair. */
export function generateKeyPair(): Ed25519KeyPair {
  // Not generateKeyPairSync: on Node 20.20, exporting a key it made can deadlock when a garbage
  // collection runs during the export (seen under load). A random seed imported as PKCS#8 is the
  // same key distribution without that path.
  const seed = randomBytes(32)
  try {
    return keyPairFromPrivateKey(privateKeyFromSeed(seed))
  } finally {
    seed.fill(0)
  }
}

/** Completes a key pair from its private key. Throws AuthError(key_file_invalid) for a non-ed25519 key. */
export function keyPairFromPrivateKey(privateKey: KeyObject): Ed25519KeyPair {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new AuthError('key_file_invalid', `expected an ed25519 private key, got ${describeKey(privateKey)}`)
  }
  const publicKey = createPublicKey(privateKey)
  const publicKeyRaw = rawPublicKey(publicKey)
  return { privateKey, publicKey, publicKeyRaw, fingerprint: fingerprintOf(publicKeyRaw) }
}

/**
 * Imports a raw 32-byte ed25519 public key (via JWK: fast). Refuses small-order points and
 * non-canonical encodings (the fast check of point-check.ts: byte compares only) with an
 * AuthError(key_file_invalid) naming `label`.
 */
export function publicKeyFromRaw(raw: Uint8Array, label = 'ed25519 public key'): KeyObject {
  if (raw.byteLength !== ED25519_PUBLIC_KEY_SIZE) {
    throw new AuthError('key_file_invalid', `an ed25519 public key is 32 bytes, got ${raw.byteLength}`)
  }
  assertUsableEd25519PublicKey(raw, label, { fast: true })
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
}

/** Imports a raw 32-byte ed25519 private key seed (via JWK). */
export function privateKeyFromSeed(seed: Uint8Array): KeyObject {
  if (seed.byteLength !== 32) {
    throw new AuthError('key_file_invalid', `an ed25519 private key seed is 32 bytes, got ${seed.byteLength}`)
  }
  return createPrivateKey({ key: pkcs8FromSeed(seed), format: 'der', type: 'pkcs8' })
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
function pkcs8FromSeed(seed: Uint8Array): Buffer {
  return Buffer.concat([PKCS8_ED25519_PREFIX, seed])
}

/** The 32-byte seed of an ed25519 private key. */
export function privateKeySeed(privateKey: KeyObject): Buffer {
  const jwk = privateKey.export({ format: 'jwk' })
  if (jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string') throw new TypeError('not an ed25519 private key')
  return Buffer.from(jwk.d, 'base64url')
}

/** Raw 32-byte public key of an ed25519 KeyObject. */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new AuthError('key_file_invalid', `expected an ed25519 key, got ${describeKey(publicKey)}`)
  }
  const jwk = publicKey.export({ format: 'jwk' })
  return Buffer.from(jwk.x as string, 'base64url')
}

/** Lowercase hex SHA-256 of the raw 32-byte public key: the identity used everywhere. */
export function fingerprintOf(raw: Uint8Array): string {
  return createHash('sha256').update(raw).digest('hex')
}

/**
 * The fingerprint as OpenSSH prints it (`ssh-keygen -l`): `SHA256:` + unpadded base64 of
 * SHA-256 over the SSH wire blob (string "ssh-ed25519", string key).
 */
export function opensshFingerprintOf(raw: Uint8Array): string {
  const type = Buffer.from('ssh-ed25519')
  const blob = Buffer.alloc(4 + type.length + 4 + raw.byteLength)
  blob.writeUInt32BE(type.length, 0)
  type.copy(blob, 4)
  blob.writeUInt32BE(raw.byteLength, 4 + type.length)
  blob.set(raw, 8 + type.length)
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')
}

/** ed25519 signature (64 bytes). */
export function signBytes(privateKey: KeyObject, data: Uint8Array): Buffer {
  return sign(null, data, privateKey)
}

/** Verifies an ed25519 signature; never throws for a bad signature, returns false. */
export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.byteLength !== ED25519_SIGNATURE_SIZE) return false
  try {
    return verify(null, data, publicKey, signature)
  } catch {
    return false
  }
}

function describeKey(key: KeyObject): string {
  return key.asymmetricKeyType ? `a ${key.asymmetricKeyType} ${key.type} key` : `a ${key.type} key`
}
