/**
 * The {@link Signer} seam: what the client handshake signs with, whether the key is in this
 * process (a key file) or outside it (ssh-agent, see ssh-agent.ts).
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { signBytes, type Ed25519KeyPair } from './key-pair.js'

/** Something that signs with an ed25519 key it may not reveal: a key file in memory, or an agent. */
export interface Signer {
  /** Raw 32-byte ed25519 public key. */
  readonly publicKey: Uint8Array
  /** A 64-byte ed25519 signature of `data`. */
  sign(data: Uint8Array): Promise<Uint8Array>
}

/** A {@link Signer} over a private key held in this process. */
export function createKeyPairSigner(pair: Pick<Ed25519KeyPair, 'privateKey' | 'publicKeyRaw'>): Signer {
  const privateKey: KeyObject = pair.privateKey
  if (privateKey?.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') throw new TypeError('expected an ed25519 private KeyObject')
  const publicKey = Buffer.from(pair.publicKeyRaw)
  return {
    publicKey,
    sign: (data: Uint8Array) => Promise.resolve(signBytes(privateKey, data)),
  }
}
