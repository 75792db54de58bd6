/**
 * The server's key as the handshake signs with it: an {@link Ed25519KeyPair} in this process
 * (signs synchronously: the hot path takes no promise) or an {@link ExternalServerKey} whose
 * private half stays outside (ssh-agent, keys/ssh-agent.ts), which signs through a promise.
 *
 * A signer that fails at run time fails that one handshake closed: the error is an AuthError
 * `internal_error` whose message (audit log only; the peer sees "internal error") names the key
 * and what the signer said.
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { AuthError } from '../errors.js'
import { fingerprintOf, publicKeyFromRaw, signBytes, type Ed25519KeyPair } from '../keys/key-pair.js'
import type { Signer } from '../keys/signer.js'

/** A server key whose private half this process never holds: every signature comes from `signer`. */
export interface ExternalServerKey {
  readonly privateKey?: undefined
  readonly publicKey: KeyObject
  /** Raw 32-byte public key. */
  readonly publicKeyRaw: Buffer
  /** Lowercase hex SHA-256 of the raw public key. */
  readonly fingerprint: string
  readonly signer: Signer
}

/** A key pair in this process, or a key held elsewhere. */
export type ServerKey = Ed25519KeyPair | ExternalServerKey

/** A server key that signs through `signer` (e.g. createSshAgentSigner). */
export function externalServerKey(signer: Signer): ExternalServerKey {
  if (signer === null || typeof signer !== 'object' || typeof signer.sign !== 'function') throw new TypeError('signer must be a Signer')
  const publicKeyRaw = Buffer.from(signer.publicKey)
  return { publicKey: publicKeyFromRaw(publicKeyRaw, 'server key'), publicKeyRaw, fingerprint: fingerprintOf(publicKeyRaw), signer }
}

/** Whether this process holds the private key (signing is then synchronous). */
export function isKeyPair(key: ServerKey): key is Ed25519KeyPair {
  return key.privateKey !== undefined
}

/** A signature by `key`: the bytes at once for a key pair, a promise for an external key. */
export function signWithServerKey(key: ServerKey, data: Uint8Array): Buffer | Promise<Buffer> {
  if (key.privateKey !== undefined) return signBytes(key.privateKey, data)
  return key.signer.sign(data).then(
    (signature) => Buffer.from(signature),
    (err: unknown) => {
      const why = err instanceof Error ? err.message : String(err)
      const hint = (err as { hint?: unknown } | null)?.hint
      throw new AuthError('internal_error', `the server key ${key.fingerprint.slice(0, 16)}… could not sign: ${why}${typeof hint === 'string' ? `; ${hint}` : ''}`, { cause: err })
    },
  )
}
