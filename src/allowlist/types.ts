/**
 * Contract between the allowlist and its users (handshake, session verifier, CLIs).
 * @module
 */
import type { KeyObject } from 'node:crypto'
import type { CertAuthorityEntry } from './cert-authority.js'

/** One allowlist entry as the library sees it. */
export interface AllowlistEntry {
  /** Lowercase hex SHA-256 of the raw public key; the index. */
  readonly fingerprint: string
  /** Raw 32-byte public key; undefined for a fingerprint-only entry not yet completed by a handshake. */
  readonly publicKeyRaw: Buffer | undefined
  readonly description: string | undefined
  /** Free-form JSON object: role, org, expires … */
  readonly metadata: Readonly<Record<string, unknown>>
  readonly addedAt: string
  readonly addedBy: string | undefined
  /** Expiry in ms since epoch, from top-level `not_after` or `metadata.expires`; undefined = never. */
  readonly notAfter: number | undefined
}

export type LookupResult =
  | { readonly status: 'ok'; readonly entry: AllowlistEntry; readonly publicKey: KeyObject }
  | { readonly status: 'unknown' }
  | { readonly status: 'expired'; readonly entry: AllowlistEntry }

/** What the handshake and the session verifier need: O(1) lookup with a prepared KeyObject. */
export interface KeyLookup {
  /**
   * Looks up a fingerprint at time `now` (ms). `publicKeyRaw`, when given, is the key the peer
   * presented (its SHA-256 is `fingerprint`); it completes a fingerprint-only entry.
   * Never re-imports a key it has imported before.
   */
  lookup(fingerprint: string, now: number, publicKeyRaw?: Uint8Array): LookupResult
  /**
   * When the key was last seen removed from the list (ms), if this lookup keeps track (the
   * reloading AllowlistHolder does): sessions that began before then are over even if the key
   * is listed again.
   */
  removedAt?(fingerprint: string): number | undefined
  /**
   * When a lookup has just completed a fingerprint-only entry and the list's source (the file) is
   * deciding on it: resolves to the lookup result on the entry as the source has it now, which is
   * what the handshake must judge (an operator may have changed it since the list was loaded).
   * Undefined when nothing is pending for `fingerprint` (the plain lookup stands).
   */
  settle?(fingerprint: string, now: number): Promise<LookupResult> | undefined
  /**
   * The certificate-authority entries (cert-authority.ts), when this lookup has any: a client whose
   * key is not listed may present an OpenSSH certificate from one of them.
   */
  certAuthorities?(): readonly CertAuthorityEntry[]
  getCertAuthority?(fingerprint: string): CertAuthorityEntry | undefined
}
