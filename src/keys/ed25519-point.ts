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
const SMALL_ORDER_Y: ReadonlySet<bigint> = new Set([0n, 1n, P - 1n, Y8, P - Y8])

/** Why an encoded ed25519 public key is refused, or undefined when it is acceptable. */
export function weakEd25519KeyReason(raw: Uint8Array): string | undefined {
  if (raw.byteLength !== 32) return `an ed25519 public key is 32 bytes, got ${raw.byteLength}`
  let y = 0n
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? raw[i]! & 0x7f : raw[i]!)
  if (y >= P) return 'non-canonical ed25519 point encoding (y ≥ p)'
  if (SMALL_ORDER_Y.has(y)) return 'small-order ed25519 point'
  return undefined
}
