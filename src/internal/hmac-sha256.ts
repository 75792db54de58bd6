/**
 * HMAC-SHA256 (RFC 2104) for the per-request hot path, computed from precomputed key pads with
 * two one-shot hashes instead of a `createHmac` object per call:
 *
 *   HMAC(K, m) = SHA-256((K' ^ opad) || SHA-256((K' ^ ipad) || m))     K' = K (or SHA-256(K) if > 64 bytes), zero-padded to 64
 *
 * `crypto.hash` (Node ≥ 20.12) is used with string outputs: asking it for a Buffer costs more than
 * the hash itself. The result is the same bytes as `createHmac('sha256', key)` (unit-tested).
 * @module
 */
import crypto, { createHash } from 'node:crypto'

const BLOCK = 64

type OneShot = (algorithm: string, data: Uint8Array | string, encoding: 'latin1' | 'base64url') => string

/** `crypto.hash` when this Node has it. */
export const hashOnce: OneShot | undefined = (crypto as unknown as { hash?: OneShot }).hash

/** The HMAC-SHA256 key pads: `K' ^ 0x36…` and `K' ^ 0x5c…` (64 bytes each, views of one 128-byte buffer). */
export interface HmacPads {
  readonly ipad: Buffer
  readonly opad: Buffer
}

/**
 * The key pads of `key`. As secret as the key itself: keep them only where the key is kept, and
 * zero them ({@link zeroPads}) with the key. Written into `into` when given.
 */
export function hmacPads(key: Uint8Array, into?: HmacPads): HmacPads {
  const k = key.byteLength > BLOCK ? createHash('sha256').update(key).digest() : key
  const pads = into ?? newPads()
  const { ipad, opad } = pads
  ipad.fill(0x36)
  opad.fill(0x5c)
  for (let i = 0; i < k.byteLength; i++) {
    const b = k[i]!
    ipad[i] = b ^ 0x36
    opad[i] = b ^ 0x5c
  }
  if (k !== key) k.fill(0)
  return pads
}

export function newPads(): HmacPads {
  const both = Buffer.alloc(2 * BLOCK)
  return { ipad: both.subarray(0, BLOCK), opad: both.subarray(BLOCK) }
}

export function zeroPads(pads: HmacPads): void {
  pads.ipad.fill(0)
  pads.opad.fill(0)
}

// The outer hash input: opad (64) || inner digest (32). Used synchronously only, zeroed after use.
const outer = Buffer.alloc(BLOCK + 32)

/**
 * HMAC-SHA256 of `buf[64, end)` under `pads`, in `encoding` (`latin1`: one character per byte).
 * Writes the inner pad into `buf[0, 64)` and zeroes it again before returning, so the caller
 * reserves those 64 bytes in front of its message.
 */
export function hmacInPlace(pads: HmacPads, buf: Buffer, end: number, encoding: 'latin1' | 'base64url'): string {
  if (hashOnce === undefined) {
    const inner = createHash('sha256').update(pads.ipad).update(buf.subarray(BLOCK, end)).digest()
    return createHash('sha256').update(pads.opad).update(inner).digest().toString(encoding)
  }
  buf.set(pads.ipad, 0)
  const inner = hashOnce('sha256', buf.subarray(0, end), 'latin1')
  buf.fill(0, 0, BLOCK)
  outer.set(pads.opad, 0)
  putLatin1(outer, BLOCK, inner)
  const mac = hashOnce('sha256', outer, encoding)
  outer.fill(0)
  return mac
}

/** HMAC-SHA256(key, message) as a Buffer, through {@link hmacInPlace} (general form; tests and cold paths). */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Buffer {
  const pads = hmacPads(key)
  const buf = Buffer.allocUnsafe(BLOCK + message.byteLength)
  buf.set(message, BLOCK)
  const mac = hmacInPlace(pads, buf, buf.byteLength, 'latin1')
  zeroPads(pads)
  return Buffer.from(mac, 'latin1')
}

/** SHA-256 of `data` written at `buf[offset, offset + 32)` (no intermediate Buffer). */
export function sha256Into(data: Uint8Array | string, buf: Buffer, offset: number): void {
  if (hashOnce !== undefined) putLatin1(buf, offset, hashOnce('sha256', data, 'latin1'))
  else createHash('sha256').update(data).digest().copy(buf, offset)
}

/**
 * Writes a digest given as a latin1 string (one character per byte) at `buf[offset…]`. A loop over
 * 32 characters instead of `Buffer#write(…, 'latin1')`, which is a call into C++ each time; with
 * three such writes per proof it was a visible share of the proof's in-situ cost.
 */
function putLatin1(buf: Buffer, offset: number, text: string): void {
  for (let i = 0; i < text.length; i++) buf[offset + i] = text.charCodeAt(i)
}

/**
 * Whether two strings of the same length are equal, in time that depends only on their length (an
 * XOR-accumulate over every character, as noble's `equalBytes`). For MACs compared as canonical
 * text (the caller has checked the alphabet and canonical form, so equal text means equal bytes).
 */
export function textEqualConstantTime(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}
