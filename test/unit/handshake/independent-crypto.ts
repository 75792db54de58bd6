/**
 * The byte helpers of the independent re-derivations of the vectors (vectors, certificate-vectors,
 * rotation-vectors): node:crypto and Buffer only, nothing from src/, so a second implementation
 * can follow them line by line.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto'

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
export const unhex = (s: string): Buffer => Buffer.from(s, 'hex')
export const ub = (s: string): Buffer => Buffer.from(s, 'base64url')
export const u8 = (s: string): Buffer => Buffer.from(s, 'utf8')
export const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()
/** A 4-byte big-endian length, then the bytes. */
export function lp(b: Uint8Array): Buffer {
  const n = Buffer.alloc(4)
  n.writeUInt32BE(b.byteLength)
  return Buffer.concat([n, b])
}
export const edPub = (raw: Uint8Array): KeyObject => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })
