/**
 * Which 32-byte strings are usable ed25519 public keys.
 *
 * OpenSSL (and so `node:crypto`) verifies with any public key it can decode, including the eight
 * points of small order. For the identity point, R = identity and S = 0 is a valid signature of
 * every message: a key like that authenticates anyone. RFC 8032 leaves this to the application;
 * libsodium refuses these keys (`ge25519_has_small_order`), and so do we, on every path that
 * takes a public key.
 *
 * Refused:
 * - **small order**: the y-coordinates 0, 1, p − 1 and the two y values of the points of order 8,
 *   with either sign bit (libsodium's blocklist);
 * - **non-canonical**: y ≥ p (which also covers p and p + 1, the other spellings of 0 and 1);
 * - **not on the curve**: no x with x² = (y² − 1) / (d·y² + 1) exists. Such a key can never
 *   verify a signature; refusing it where it arrives (message 1 of the handshake, key files) keeps
 *   a server from signing a challenge for a key no one can hold. It costs a Legendre symbol
 *   (binary Jacobi algorithm, ≈20 µs in BigInt, about one ed25519 signature).
 *
 * Two checks: {@link ed25519PublicKeyProblem} (all three, for the handshake's message 1, key files,
 * `mcp-allowlist add`, the completion of a fingerprint-only entry) and
 * {@link ed25519PublicKeyProblemFast} (the first two: a few byte compares, for loading allowlists
 * of millions of entries).
 * @module
 */
import { createHash } from 'node:crypto'
import { AuthError, type AuthErrorCode } from '../errors.js'

/** Why a 32-byte string is not a usable ed25519 public key. */
export type Ed25519KeyProblem = 'wrong_length' | 'non_canonical' | 'small_order' | 'not_on_curve'

const P = 2n ** 255n - 19n
const D = (P - ((121665n * modInverse(121666n)) % P)) % P
/** The y values of the points of order 1, 2, 4 and 8 (libsodium ed25519_ref10.c). */
const SMALL_ORDER_Y: readonly bigint[] = [
  0n, // order 4: (±√−1, 0)
  1n, // order 1: the identity (0, 1)
  P - 1n, // order 2: (0, −1)
  2707385501144840649318225287225658788936804267575313519463743609750303402022n, // order 8
  55188659117513257062467267217118295137698188065244968500265048394206261417927n, // order 8 (p − the one above)
]
/** The same y values as 32 little-endian bytes (sign bit clear), for the byte compare. */
const SMALL_ORDER_Y_BYTES: readonly Uint8Array[] = SMALL_ORDER_Y.map((y) => encodeY(y, 0))

const PROBLEM_TEXT: Record<Ed25519KeyProblem, string> = {
  wrong_length: 'wrong length: an ed25519 public key is 32 bytes',
  non_canonical: 'non-canonical encoding: its y-coordinate is not below 2^255 − 19',
  small_order: 'small-order point: it would accept forged signatures',
  not_on_curve: 'not a point on the curve',
}

/**
 * The problem with `raw` as an ed25519 public key found by byte compares alone (wrong length,
 * non-canonical, small order), or undefined. Allocates nothing; for hot paths.
 */
export function ed25519PublicKeyProblemFast(raw: Uint8Array): Ed25519KeyProblem | undefined {
  if (raw.byteLength !== 32) return 'wrong_length'
  if (isNonCanonical(raw)) return 'non_canonical'
  for (const y of SMALL_ORDER_Y_BYTES) if (sameY(raw, y)) return 'small_order'
  return undefined
}

/** Every problem with `raw` as an ed25519 public key (the fast ones, then "not on the curve"), or undefined. */
export function ed25519PublicKeyProblem(raw: Uint8Array): Ed25519KeyProblem | undefined {
  const fast = ed25519PublicKeyProblemFast(raw)
  if (fast !== undefined) return fast
  return isOnCurve(decodeY(raw)) ? undefined : 'not_on_curve'
}

/** The fast check's problem with `raw` in words (certificate subjects and authorities, agent keys), or undefined. */
export function weakEd25519KeyReason(raw: Uint8Array): string | undefined {
  const problem = ed25519PublicKeyProblemFast(raw)
  return problem === undefined ? undefined : PROBLEM_TEXT[problem]
}

/** True when `raw` passes the full check. */
export function isUsableEd25519PublicKey(raw: Uint8Array): boolean {
  return ed25519PublicKeyProblem(raw) === undefined
}

export interface AssertUsableKeyOptions {
  /** The AuthError code to throw (default key_file_invalid). */
  code?: AuthErrorCode
  /** Only the byte compares (no "not on the curve"); for hot paths. */
  fast?: boolean
  /** What to tell the user to do (default: generate a new key with mcp-keygen). */
  fix?: string
  /** The file the key came from (AuthError.path). */
  path?: string
}

/**
 * Returns `raw` when it is a usable ed25519 public key; otherwise throws an AuthError whose
 * message names `label`, the problem and the fix, e.g. "alice.pub: this is not a usable ed25519
 * public key (small-order point: …); generate a new key with mcp-keygen".
 */
export function assertUsableEd25519PublicKey(raw: Uint8Array, label: string, opts: AssertUsableKeyOptions = {}): Uint8Array {
  const problem = opts.fast === true ? ed25519PublicKeyProblemFast(raw) : ed25519PublicKeyProblem(raw)
  if (problem === undefined) return raw
  throw unusableKeyError(problem, label, opts)
}

/** The AuthError {@link assertUsableEd25519PublicKey} throws for `problem`. */
export function unusableKeyError(problem: Ed25519KeyProblem, label: string, opts: AssertUsableKeyOptions = {}): AuthError {
  const fix = opts.fix ?? 'generate a new key with mcp-keygen'
  return new AuthError(
    opts.code ?? 'key_file_invalid',
    `${label}: this is not a usable ed25519 public key (${PROBLEM_TEXT[problem]}); ${fix}`,
    opts.path === undefined ? {} : { path: opts.path },
  )
}

/**
 * Lowercase hex SHA-256 fingerprints of every encoding the fast check refuses for its value
 * (small order with either sign, y ≥ p with either sign: 48 in all). A fingerprint-only entry
 * or a pin naming one of these could only ever be completed by a refused key.
 */
const BLOCKED_FINGERPRINTS: ReadonlyMap<string, Ed25519KeyProblem> = new Map(
  blockedEncodings().map((e) => [createHash('sha256').update(e).digest('hex'), ed25519PublicKeyProblemFast(e)!]),
)

/** True when `fingerprint` (64 lowercase hex) is the fingerprint of a refused encoding. */
export function isBlockedFingerprint(fingerprint: string): boolean {
  return BLOCKED_FINGERPRINTS.has(fingerprint)
}

/** The problem with the key whose fingerprint is `fingerprint`, when it is a refused encoding. */
export function blockedFingerprintProblem(fingerprint: string): Ed25519KeyProblem | undefined {
  return BLOCKED_FINGERPRINTS.get(fingerprint)
}

/** The 48 encodings whose value the fast check refuses (exported for tests). */
export function blockedEncodings(): Uint8Array[] {
  const out: Uint8Array[] = []
  const ys = [...SMALL_ORDER_Y]
  for (let y = P; y < 2n ** 255n; y++) ys.push(y)
  for (const y of ys) out.push(encodeY(y, 0), encodeY(y, 1))
  return out
}

// ---------------------------------------------------------------------------------------------

/** y ≥ p: bytes 1..30 are 0xff, byte 31 is 0x7f (sign bit aside) and byte 0 is at least 0xed. */
function isNonCanonical(raw: Uint8Array): boolean {
  if ((raw[31]! & 0x7f) !== 0x7f) return false
  for (let i = 30; i >= 1; i--) if (raw[i] !== 0xff) return false
  return raw[0]! >= 0xed
}

function sameY(raw: Uint8Array, y: Uint8Array): boolean {
  for (let i = 0; i < 31; i++) if (raw[i] !== y[i]) return false
  return (raw[31]! & 0x7f) === y[31]
}

function encodeY(y: bigint, sign: 0 | 1): Uint8Array {
  const out = new Uint8Array(32)
  let v = y
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn)
    v >>= 8n
  }
  out[31]! |= sign << 7
  return out
}

function decodeY(raw: Uint8Array): bigint {
  let y = BigInt(raw[31]! & 0x7f)
  for (let i = 30; i >= 0; i--) y = (y << 8n) | BigInt(raw[i]!)
  return y
}

/**
 * True when x² = (y² − 1)/(d·y² + 1) has a solution mod p: u/v is a square exactly when u·v is
 * (v ≠ 0), and for the prime p the Jacobi symbol is the Legendre symbol.
 */
function isOnCurve(y: bigint): boolean {
  const y2 = (y * y) % P
  const u = (y2 - 1n + P) % P
  const v = (D * y2 + 1n) % P // never 0: −1/d is not a square mod p
  const uv = (u * v) % P
  return uv === 0n || jacobi(uv, P) === 1
}

/** The Jacobi symbol (a/n) for odd n > 0 (binary algorithm: shifts and one reduction per step). */
function jacobi(a0: bigint, n0: bigint): number {
  let a = a0 % n0
  let n = n0
  let t = 1
  while (a !== 0n) {
    while ((a & 1n) === 0n) {
      a >>= 1n
      const r = n & 7n
      if (r === 3n || r === 5n) t = -t
    }
    const swap = a
    a = n
    n = swap
    if ((a & 3n) === 3n && (n & 3n) === 3n) t = -t
    a %= n
  }
  return n === 1n ? t : 0
}

function modPow(base: bigint, exp: bigint): bigint {
  let result = 1n
  let b = base % P
  let e = exp
  while (e > 0n) {
    if ((e & 1n) === 1n) result = (result * b) % P
    b = (b * b) % P
    e >>= 1n
  }
  return result
}

function modInverse(a: bigint): bigint {
  return modPow(a, P - 2n)
}
