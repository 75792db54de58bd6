/**
 * The server's check of a client certificate at message 3 (docs/PROTOCOL.md §7a): a client whose
 * key is not listed directly may present an OpenSSH user certificate from a certificate authority
 * of the allowlist. The certificate bytes were size-checked by the message parser and are covered
 * by the client's signature (T3); this module parses and verifies them (cert-authority.ts,
 * openssh-cert.ts), checks revocation by serial, key id and key in the revocation list (and so in
 * Redis), and maps the role.
 *
 * Every refusal is an AuthError `unknown_key` (folded into `authentication_failed` on the wire)
 * carrying `auditFields`: the precise `cert_code` (cert_expired, cert_not_yet_valid,
 * cert_wrong_principal, cert_wrong_type, cert_revoked_serial, cert_unknown_authority …) with the
 * certificate's key id and serial when it parsed.
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { certifiedEntry, checkClientCertificate, type CertAuthorityLookup } from '../allowlist/cert-authority.js'
import type { AllowlistEntry } from '../allowlist/types.js'
import { AuthError } from '../errors.js'
import { printable } from '../internal/text.js'
import { publicKeyFromRaw } from '../keys/key-pair.js'
import { certificateRevocationIds, parseOpenSshCertificate } from '../keys/openssh-cert.js'
import type { SessionCertificate } from '../session/session-token.js'
import { MAX_CERTIFICATE_ROLE_BYTES } from '../session/session-token.js'
import { MAX_CERTIFICATE_BYTES } from '../protocol/constants.js'
import type { RevocationCheck } from '../session/session-verifier.js'

/** A client let in by its certificate. */
export interface CertifiedClient {
  entry: AllowlistEntry
  publicKey: KeyObject
  fingerprint: string
  /** What the session token keeps (ticket kind 0x03). */
  certificate: SessionCertificate & { keyId: string }
}

/** A certificate refused: `auditFields` name the precise reason for the audit log only. */
export class CertificateRefusedError extends AuthError {
  readonly auditFields: Readonly<Record<string, string>>
  constructor(code: string, message: string, cert?: { keyId: string; serial: string }) {
    super('unknown_key', message)
    this.name = 'CertificateRefusedError'
    this.auditFields = { cert_code: code, ...(cert === undefined ? {} : { cert_key_id: printable(cert.keyId).slice(0, 256), cert_serial: cert.serial }) }
  }
}

export interface ClientCertificateCheckOptions {
  authorities: CertAuthorityLookup
  revocation?: RevocationCheck
  toleranceSeconds: number
}

export type ClientCertificateCheck = (blob: Uint8Array, subjectPublicKey: Uint8Array, fingerprint: string, now: number) => CertifiedClient

export function createClientCertificateCheck(o: ClientCertificateCheckOptions): ClientCertificateCheck {
  return (blob, subjectPublicKey, fingerprint, now) => {
    if (o.authorities.certAuthorities().length === 0) {
      throw new CertificateRefusedError('cert_unknown_authority', `client key ${fingerprint.slice(0, 16)}… is not on the allowlist, and no certificate authority is trusted for its certificate`)
    }
    const checked = checkClientCertificate(o.authorities, blob, { now, toleranceSeconds: o.toleranceSeconds, subjectPublicKey })
    if (!checked.ok) throw new CertificateRefusedError(checked.code, `client key ${fingerprint.slice(0, 16)}…: ${checked.message}`, identityOf(blob))
    const cert = checked.certificate
    const ids = { keyId: cert.keyId, serial: cert.serial }
    if (checked.role !== undefined && Buffer.byteLength(checked.role, 'utf8') > MAX_CERTIFICATE_ROLE_BYTES) {
      throw new CertificateRefusedError('cert_role_missing', `certificate "${printable(cert.keyId)}" maps to a role longer than ${MAX_CERTIFICATE_ROLE_BYTES} bytes`, ids)
    }
    const revoked = revocationReason(o.revocation, checked.authority.fingerprint, cert.serial, cert.keyId, fingerprint, subjectPublicKey)
    if (revoked !== undefined) throw new CertificateRefusedError(revoked, `client key ${fingerprint.slice(0, 16)}…: certificate "${printable(cert.keyId)}" (serial ${cert.serial}) is revoked (${revoked})`, ids)
    const notAfter = Number.isFinite(cert.validBefore) ? cert.validBefore + o.toleranceSeconds * 1000 : undefined
    const entry = certifiedEntry(checked.authority, { fingerprint, publicKeyRaw: Buffer.from(subjectPublicKey) }, { keyId: cert.keyId, serial: cert.serial, role: checked.role, notAfter })
    return {
      entry,
      publicKey: publicKeyFromRaw(subjectPublicKey),
      fingerprint,
      certificate: {
        caFingerprint: checked.authority.fingerprint,
        serial: cert.serial,
        keyId: cert.keyId,
        keyIdRevocationId: certificateRevocationIds(checked.authority.fingerprint, cert.serial, cert.keyId).keyId,
        role: checked.role,
      },
    }
  }
}

/**
 * Revoked by serial, by key id (both scoped to the CA) or by the key itself (by fingerprint, or by
 * its bytes when `publicKeyRaw` is given: a KRL); undefined = not revoked.
 */
export function revocationReason(revocation: RevocationCheck | undefined, caFingerprint: string, serial: string, keyId: string, fingerprint: string, publicKeyRaw?: Uint8Array): string | undefined {
  if (revocation === undefined) return undefined
  const ids = certificateRevocationIds(caFingerprint, serial, keyId)
  if (revocation.isRevoked(ids.serial)) return 'cert_revoked_serial'
  if (revocation.isRevoked(ids.keyId)) return 'cert_revoked_key_id'
  const listed = revocation.certificateRevocation?.(caFingerprint, serial, ids.keyId)
  if (listed !== undefined) return listed === 'serial' ? 'cert_revoked_serial' : 'cert_revoked_key_id'
  if (revocation.isRevoked(fingerprint)) return 'cert_revoked_key'
  if (publicKeyRaw !== undefined && revocation.isPublicKeyRevoked?.(publicKeyRaw, fingerprint) === true) return 'cert_revoked_key'
  return undefined
}

/** Key id and serial of a certificate that parses (for the audit line of a refusal), else undefined. */
function identityOf(blob: Uint8Array): { keyId: string; serial: string } | undefined {
  try {
    const c = parseOpenSshCertificate(blob)
    return { keyId: c.keyId, serial: c.serial }
  } catch {
    return undefined
  }
}

/** The check for a server whose allowlist can hold certificate authorities; undefined when it cannot. */
export function certificateCheckFor(
  allowlist: Partial<CertAuthorityLookup>,
  revocation: RevocationCheck | undefined,
  toleranceSeconds: number,
): ClientCertificateCheck | undefined {
  if (typeof allowlist.certAuthorities !== 'function' || typeof allowlist.getCertAuthority !== 'function') return undefined
  return createClientCertificateCheck({ authorities: allowlist as CertAuthorityLookup, ...(revocation === undefined ? {} : { revocation }), toleranceSeconds })
}

/** The server's own host certificate, checked once at start-up: the right size, well-formed, for this key. */
export function hostCertificateOf(certificate: Uint8Array | undefined, serverPublicKey: Uint8Array): Buffer | undefined {
  if (certificate === undefined) return undefined
  const blob = Buffer.from(certificate)
  if (blob.byteLength === 0 || blob.byteLength > MAX_CERTIFICATE_BYTES) throw new TypeError(`certificate must be 1 to ${MAX_CERTIFICATE_BYTES} bytes`)
  const parsed = parseOpenSshCertificate(blob)
  if (!parsed.subjectPublicKey.equals(Buffer.from(serverPublicKey))) throw new TypeError('certificate is not for the server key')
  return blob
}
