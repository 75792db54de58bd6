/**
 * Per-request checks of a session made with an OpenSSH certificate (session ticket kind 0x03):
 * the certificate is not presented again, so what the ticket remembers of it (CA, serial, key id)
 * is checked against the allowlist's CA entries and the revocation list on every request, as a
 * listed key's entry is. Removing the CA entry or revoking the key, the serial or the key id ends
 * the session at its next request.
 * @module
 */
import { certifiedEntry } from '../allowlist/cert-authority.js'
import type { AllowlistEntry, KeyLookup } from '../allowlist/types.js'
import { certificateRevocationIds } from '../keys/openssh-cert.js'
import type { SessionCertificate } from './session-token.js'

/** What the verifier's revocation check offers (session-verifier.ts RevocationCheck). */
interface Revocations {
  isRevoked(id: string): boolean
  liftedRevocationAt?(fingerprint: string): number | undefined
  certificateRevocation?(caFingerprint: string, serial: string, keyIdRevocationId: string): 'serial' | 'key_id' | undefined
}

/** Why a certified session is over, or undefined when it still stands. */
export function certifiedSessionProblem(
  allowlist: KeyLookup,
  revocation: Revocations | undefined,
  fingerprint: string,
  c: SessionCertificate,
  issuedAt: number,
): string | undefined {
  const authority = allowlist.getCertAuthority?.(c.caFingerprint)
  if (authority === undefined) return 'the certificate authority of this session is no longer on the allowlist'
  if (revocation === undefined) return undefined
  if (revocation.isRevoked(fingerprint)) return 'the client key of this session is revoked'
  if (revocation.isRevoked(certificateRevocationIds(c.caFingerprint, c.serial, '').serial)) return 'the certificate of this session is revoked (serial)'
  if (revocation.isRevoked(c.keyIdRevocationId)) return 'the certificate of this session is revoked (key id)'
  const listed = revocation.certificateRevocation?.(c.caFingerprint, c.serial, c.keyIdRevocationId)
  if (listed !== undefined) return `the certificate of this session is revoked (${listed === 'serial' ? 'serial' : 'key id'}, revoked keys file)`
  const liftedAt = revocation.liftedRevocationAt?.(fingerprint)
  if (liftedAt !== undefined && liftedAt >= issuedAt) return 'the client key of this session was revoked after the session began'
  return undefined
}

/** The entry a certified session acts under (role and metadata from its CA entry as the allowlist has it now). */
export function certifiedSessionEntry(allowlist: KeyLookup, fingerprint: string, c: SessionCertificate, expiresAt: number): AllowlistEntry {
  const authority = allowlist.getCertAuthority!(c.caFingerprint)!
  return certifiedEntry(authority, { fingerprint, publicKeyRaw: undefined }, { keyId: undefined, serial: c.serial, role: c.role, notAfter: expiresAt })
}
