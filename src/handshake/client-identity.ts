/**
 * What the client handshake proves its key with: a key pair in this process, or a {@link Signer}
 * (ssh-agent), and the OpenSSH certificate it presents in message 3, if any.
 * @module
 */
import { fingerprintOf, signBytes, type Ed25519KeyPair } from '../keys/key-pair.js'
import type { Signer } from '../keys/signer.js'
import { MAX_CERTIFICATE_BYTES } from '../protocol/constants.js'

export interface ClientIdentity {
  publicKeyRaw: Buffer
  fingerprint: string
  certificate: Buffer | undefined
  sign(data: Buffer): Promise<Buffer>
}

/** The key the client proves: a key pair in memory, or a signer (ssh-agent), and its certificate. */
export function clientIdentity(o: { keyPair?: Ed25519KeyPair | undefined; signer?: Signer | undefined }, cert: Uint8Array | undefined): ClientIdentity {
  const certificate = cert === undefined ? undefined : Buffer.from(cert)
  if (certificate !== undefined && (certificate.byteLength === 0 || certificate.byteLength > MAX_CERTIFICATE_BYTES)) {
    throw new TypeError(`certificate must be 1 to ${MAX_CERTIFICATE_BYTES} bytes`)
  }
  if (o.signer !== undefined) {
    const signer = o.signer
    if (!(signer.publicKey instanceof Uint8Array) || signer.publicKey.byteLength !== 32 || typeof signer.sign !== 'function') throw new TypeError('signer must have a 32-byte publicKey and sign()')
    const publicKeyRaw = Buffer.from(signer.publicKey)
    const sign = async (data: Buffer): Promise<Buffer> => {
      const sig = Buffer.from(await signer.sign(data))
      if (sig.byteLength !== 64) throw new TypeError('signer returned a signature that is not 64 bytes')
      return sig
    }
    return { publicKeyRaw, fingerprint: fingerprintOf(publicKeyRaw), certificate, sign }
  }
  const pair = o.keyPair
  if (!pair?.privateKey) throw new TypeError('keyPair (or signer) is required')
  return { publicKeyRaw: pair.publicKeyRaw, fingerprint: pair.fingerprint, certificate, sign: (data) => Promise.resolve(signBytes(pair.privateKey, data)) }
}

