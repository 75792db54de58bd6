/**
 * An OpenSSH KRL (`auth.revoked_keys_file`, keys/openssh-krl.ts) as the server's revocation check,
 * at message 3 and on every request of a session:
 *
 * - keys revoked explicitly: by fingerprint, so their sessions end at their next request;
 * - keys revoked by hash (`hash: SHA256:…`): at message 3, where the key's bytes are at hand; a key
 *   found so (or one that handshook before a reload revoked it) is then refused by fingerprint too.
 *   Keys are remembered for this (up to {@link MAX_REMEMBERED_KEYS}, the oldest forgotten first);
 * - certificates by serial (lists, ranges, bitmaps) or key id, under their CA or any CA: from what
 *   a certified session remembers (CA fingerprint, serial, key-id revocation id).
 *
 * {@link KrlRevocation.replace} swaps in a reloaded KRL; a key or certificate the new one no longer
 * lists is let in again, sessions included.
 * @module
 */
import { fingerprintOf } from '../keys/key-pair.js'
import { certificateRevocationIds } from '../keys/openssh-cert.js'
import type { CaRevocations, OpenSshKrl } from '../keys/openssh-krl.js'
import type { RevocationCheck } from '../session/session-verifier.js'

/** Client keys remembered so a reloaded KRL that revokes them by hash can end their sessions. */
export const MAX_REMEMBERED_KEYS = 100_000

export class KrlRevocation implements RevocationCheck {
  #krl: OpenSshKrl
  /** Fingerprints revoked: the explicit keys, and remembered keys the hashes match. */
  #fingerprints = new Set<string>()
  /** CA fingerprint → what it revokes; `any` for entries that hold for every CA. */
  #byCa = new Map<string, Readonly<CaRevocations>>()
  #any: Readonly<CaRevocations> | undefined
  /** Key-id revocation ids, per CA fingerprint (computed when first asked). */
  readonly #keyIdIds = new Map<string, Set<string>>()
  /** Keys seen at message 3, oldest first. */
  readonly #seen = new Map<string, Uint8Array>()

  constructor(krl: OpenSshKrl) {
    this.#krl = krl
    this.replace(krl)
  }

  /** The KRL in force. */
  get krl(): OpenSshKrl {
    return this.#krl
  }

  /** Uses `krl` from now on (a reload). */
  replace(krl: OpenSshKrl): void {
    const fingerprints = new Set(krl.explicitEd25519Keys().map((raw) => fingerprintOf(raw)))
    for (const [fp, raw] of this.#seen) if (krl.isKeyRevoked(raw)) fingerprints.add(fp)
    const byCa = new Map<string, Readonly<CaRevocations>>()
    let any: Readonly<CaRevocations> | undefined
    for (const { caPublicKey, revoked } of krl.certificateRevocations()) {
      if (caPublicKey === undefined) any = revoked
      else byCa.set(fingerprintOf(caPublicKey), revoked)
    }
    this.#krl = krl
    this.#fingerprints = fingerprints
    this.#byCa = byCa
    this.#any = any
    this.#keyIdIds.clear()
  }

  isRevoked(fingerprint: string): boolean {
    return this.#fingerprints.has(fingerprint)
  }

  isPublicKeyRevoked(publicKeyRaw: Uint8Array, fingerprint: string): boolean {
    if (!this.#seen.has(fingerprint)) {
      if (this.#seen.size >= MAX_REMEMBERED_KEYS) this.#seen.delete(this.#seen.keys().next().value!)
      this.#seen.set(fingerprint, Buffer.from(publicKeyRaw))
    }
    if (!this.#krl.isKeyRevoked(publicKeyRaw)) return false
    this.#fingerprints.add(fingerprint)
    return true
  }

  certificateRevocation(caFingerprint: string, serial: string, keyIdRevocationId: string): 'serial' | 'key_id' | undefined {
    const n = BigInt(serial)
    for (const [scope, r] of [[caFingerprint, this.#byCa.get(caFingerprint)], ['', this.#any]] as const) {
      if (r === undefined) continue
      if (n !== 0n && (r.serials.has(n) || r.ranges.some(([lo, hi]) => n >= lo && n <= hi))) return 'serial'
      if (r.keyIds.size > 0 && this.#keyIdIdsOf(caFingerprint, scope, r).has(keyIdRevocationId)) return 'key_id'
    }
    return undefined
  }

  /** The revocation ids of `r`'s key ids under the CA `caFingerprint` (r is its own entry, or the any-CA one). */
  #keyIdIdsOf(caFingerprint: string, scope: string, r: Readonly<CaRevocations>): Set<string> {
    const cacheKey = `${scope === '' ? '*' : ''}${caFingerprint}`
    let ids = this.#keyIdIds.get(cacheKey)
    if (ids === undefined) {
      ids = new Set([...r.keyIds].map((keyId) => certificateRevocationIds(caFingerprint, '0', keyId).keyId))
      this.#keyIdIds.set(cacheKey, ids)
    }
    return ids
  }
}

/**
 * Both checks as one (e.g. the shared Redis list and the KRL file): revoked when either says so;
 * a lifted revocation counts from the later of the two.
 */
export function combineRevocationChecks(a: RevocationCheck | undefined, b: RevocationCheck | undefined): RevocationCheck | undefined {
  if (a === undefined || b === undefined) return a ?? b
  return {
    isRevoked: (id) => a.isRevoked(id) || b.isRevoked(id),
    isSessionRevoked: (id) => a.isSessionRevoked?.(id) === true || b.isSessionRevoked?.(id) === true,
    liftedRevocationAt: (fp) => {
      const x = a.liftedRevocationAt?.(fp)
      const y = b.liftedRevocationAt?.(fp)
      return x === undefined ? y : y === undefined ? x : Math.max(x, y)
    },
    isPublicKeyRevoked: (raw, fp) => a.isPublicKeyRevoked?.(raw, fp) === true || b.isPublicKeyRevoked?.(raw, fp) === true,
    certificateRevocation: (ca, serial, keyIdId) => a.certificateRevocation?.(ca, serial, keyIdId) ?? b.certificateRevocation?.(ca, serial, keyIdId),
  }
}
