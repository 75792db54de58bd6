import { timingSafeEqual } from 'node:crypto'

const B64URL = /^[A-Za-z0-9_-]*$/

/** base64url without padding. */
export function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

/**
 * Strict base64url decode: rejects padding, other alphabets and non-canonical trailing bits.
 * Returns undefined on any problem; callers turn that into their own labelled error.
 */
export function fromB64u(text: string): Buffer | undefined {
  if (typeof text !== 'string' || !B64URL.test(text) || text.length % 4 === 1) return undefined
  const buf = Buffer.from(text, 'base64url')
  if (buf.toString('base64url') !== text) return undefined
  return buf
}

/** Constant-time equality for MACs, tokens, fingerprints. Different lengths compare unequal. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  return timingSafeEqual(a, b)
}

/** Big-endian u32 length prefix followed by the bytes. */
export function lp(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + bytes.byteLength)
  out.writeUInt32BE(bytes.byteLength, 0)
  out.set(bytes, 4)
  return out
}

export function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8')
}

/** Writes a non-negative integer below 2^53 (e.g. ms since epoch) as 8 bytes big-endian. */
export function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x100000000), offset)
  buf.writeUInt32BE(value >>> 0, offset + 4)
}

export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * 0x100000000 + buf.readUInt32BE(offset + 4)
}
