/**
 * Strict checks on an encoded ed25519 public key (RFC 8032 §5.1.3), for keys that others vouch
 * for (certificate subjects, certificate authorities): a small-order point (one of the 8 points
 * of order 1, 2, 4 or 8, with either sign bit) lets a signature verify for many messages, and a
 * non-canonical encoding (y ≥ p) gives one key two names. Both are refused.
 * @module
 */

const P = (1n << 255n) - 19n
/** y of the order-8 points (libsodium's blocklist): y8 and p − y8. */
const Y8 = 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n
/** Little-endian encodings (sign bit clear) of every y of a small-order point: 0, 1, p − 1, y8, p − y8. */
const SMALL_ORDER_Y: readonly Buffer[] = [0n, 1n, P - 1n, Y8, P - Y8].map((y) => Buffer.from(y.toString(16).padStart(64, '0'), 'hex').reverse())

/** Why an encoded ed25519 public key is refused, or undefined when it is acceptable. */
export function weakEd25519KeyReason(raw: Uint8Array): string | undefined {
  if (raw.byteLength !== 32) return `an ed25519 public key is 32 bytes, got ${raw.byteLength}`
  const y = Buffer.from(raw)
  y[31] = y[31]! & 0x7f // the sign of x is not part of y
  if (isAtLeastP(y)) return 'non-canonical ed25519 point encoding (y ≥ p)'
  if (SMALL_ORDER_Y.some((small) => small.equals(y))) return 'small-order ed25519 point'
  return undefined
}

/** y ≥ p = 2^255 − 19 for a little-endian y below 2^255: 0x7f, then 30 × 0xff, then a low byte ≥ 0xed. */
function isAtLeastP(y: Buffer): boolean {
  if (y[31] !== 0x7f) return false
  for (let i = 30; i >= 1; i--) if (y[i] !== 0xff) return false
  return y[0]! >= 0xed
}
