/**
 * Certificate-authority entries of the allowlist: "accept any key that carries a valid OpenSSH
 * user certificate from this CA", like `TrustedUserCAKeys` in sshd or `@cert-authority` in
 * known_hosts.
 *
 * In the allowlist file they sit beside `keys`, under `cert_authorities`, keyed by the hex SHA-256
 * of the CA's raw ed25519 key:
 *
 * ```json
 * "cert_authorities": {"<fingerprint>": {"fingerprint": "…", "public_key": "<base64url raw key>",
 *   "description": "…" | null, "added_at": "<ISO>", "added_by": "…" | null, "metadata": {"org": "acme"},
 *   "principals": ["alice", "deploy"] | null, "role_from": "principal" | "extension:<name>" | null}}
 * ```
 *
 * An older version of this package ignores the section: certified keys are then refused, never
 * let in (fail closed). Removing an entry cuts off every certificate the CA signed.
 *
 * A user certificate must list at least one principal (as sshd requires): OpenSSH reads an empty
 * list as "valid for anyone".
 *
 * Role mapping (`role_from`): `principal` = the certificate principal that matched (the first of
 * the entry's `principals` the certificate lists, or the certificate's first principal when the
 * entry lists none); `extension:NAME` = the value of the certificate extension NAME
 * (`ssh-keygen -O extension:NAME=VALUE`); unset = `metadata.role` of the entry, as for keys.
 * @module
 */
import { AuthError } from '../errors.js'
import type { AllowlistEntry } from './types.js'
import { weakEd25519KeyReason } from '../keys/point-check.js'
import { fingerprintOf } from '../keys/key-pair.js'
import {
  verifyOpenSshCertificate,
  type CertificateErrorCode,
  type KrlLookup,
  type VerifiedCertificate,
} from '../keys/openssh-cert.js'
import { hasControlCharacter, printable } from '../internal/text.js'

export type RoleSource = 'principal' | `extension:${string}`

export interface CertAuthorityEntry {
  /** Hex SHA-256 of the CA's raw 32-byte ed25519 key. */
  readonly fingerprint: string
  readonly publicKeyRaw: Buffer
  readonly description: string | undefined
  readonly metadata: Readonly<Record<string, unknown>>
  /** Certificates must list one of these principals; undefined = any principal. */
  readonly principals: readonly string[] | undefined
  readonly roleFrom: RoleSource | undefined
  readonly addedAt: string
  readonly addedBy: string | undefined
}

export interface NewCertAuthorityEntry {
  publicKeyRaw: Uint8Array
  description?: string
  metadata?: Record<string, unknown>
  principals?: readonly string[]
  roleFrom?: string
  addedAt?: string
  addedBy?: string
}

const ROLE_FROM = /^(principal|extension:[\x21-\x7e]{1,128})$/
const B64URL_KEY = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/

function invalid(source: string, message: string): AuthError {
  return new AuthError('allowlist_invalid', `${source}: ${message}`, { path: source })
}

/** Builds a validated entry. @throws AuthError(allowlist_invalid) naming the problem */
export function makeCertAuthorityEntry(input: NewCertAuthorityEntry, source: string, now = Date.now()): CertAuthorityEntry {
  const raw = Buffer.from(input.publicKeyRaw)
  const weak = weakEd25519KeyReason(raw)
  if (weak !== undefined) throw invalid(source, `certificate authority key refused: ${weak}`)
  const fingerprint = fingerprintOf(raw)
  const where = `certificate authority ${fingerprint}`
  let principals: string[] | undefined
  if (input.principals !== undefined) {
    principals = [...new Set(input.principals)]
    if (principals.length === 0 || principals.some((p) => typeof p !== 'string' || p === '' || p.length > 256 || hasControlCharacter(p) || p.includes(','))) {
      throw invalid(source, `${where}: principals must be a non-empty list of names (no commas or control characters)`)
    }
  }
  if (input.roleFrom !== undefined && !ROLE_FROM.test(input.roleFrom)) {
    throw invalid(source, `${where}: role_from must be "principal" or "extension:<name>", got "${String(input.roleFrom).slice(0, 80)}"`)
  }
  const metadata = input.metadata ?? {}
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw invalid(source, `${where}: metadata must be an object`)
  return Object.freeze({
    fingerprint,
    publicKeyRaw: raw,
    description: input.description,
    metadata: Object.freeze({ ...metadata }),
    principals: principals === undefined ? undefined : Object.freeze(principals),
    roleFrom: input.roleFrom as RoleSource | undefined,
    addedAt: input.addedAt ?? new Date(now).toISOString(),
    addedBy: input.addedBy,
  })
}

/** Reads one `cert_authorities` record from a file. @throws AuthError(allowlist_invalid) */
export function parseCertAuthorityRecord(raw: unknown, keyName: string, source: string): CertAuthorityEntry {
  const where = `certificate authority ${keyName.slice(0, 80)}`
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(source, `${where}: must be an object`)
  const r = raw as Record<string, unknown>
  if (typeof r.public_key !== 'string' || !B64URL_KEY.test(r.public_key)) throw invalid(source, `${where}: public_key must be the base64url raw 32-byte ed25519 key`)
  const optionalString = (name: string): string | undefined => {
    const v = r[name]
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'string') throw invalid(source, `${where}: ${name} must be a string`)
    return v
  }
  const principals = r.principals
  if (principals !== undefined && principals !== null && !Array.isArray(principals)) throw invalid(source, `${where}: principals must be a list or null`)
  const metadata = r.metadata
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) throw invalid(source, `${where}: metadata must be an object`)
  const description = optionalString('description')
  const roleFrom = optionalString('role_from')
  const addedAt = optionalString('added_at')
  const addedBy = optionalString('added_by')
  const entry = makeCertAuthorityEntry(
    {
      publicKeyRaw: Buffer.from(r.public_key, 'base64url'),
      ...(description !== undefined ? { description } : {}),
      metadata: (metadata ?? {}) as Record<string, unknown>,
      ...(Array.isArray(principals) ? { principals: principals as string[] } : {}),
      ...(roleFrom !== undefined ? { roleFrom } : {}),
      addedAt: addedAt ?? '',
      ...(addedBy !== undefined ? { addedBy } : {}),
    },
    source,
  )
  if (keyName !== entry.fingerprint || (r.fingerprint !== undefined && r.fingerprint !== entry.fingerprint)) {
    throw invalid(source, `${where}: stored under a fingerprint that is not the SHA-256 of its public_key (${entry.fingerprint})`)
  }
  return entry
}

/** The file record (snake_case) of a CA entry. */
export function certAuthorityRecord(e: CertAuthorityEntry): Record<string, unknown> {
  return {
    fingerprint: e.fingerprint,
    public_key: e.publicKeyRaw.toString('base64url'),
    description: e.description ?? null,
    added_at: e.addedAt,
    added_by: e.addedBy ?? null,
    metadata: e.metadata,
    principals: e.principals ?? null,
    role_from: e.roleFrom ?? null,
  }
}

// ---------------------------------------------------------------------------------------------
// Using the entries

/** What the allowlist offers the certificate check (Allowlist implements it). */
export interface CertAuthorityLookup {
  /** Every CA entry (few: this is a list, not an index). */
  certAuthorities(): readonly CertAuthorityEntry[]
  getCertAuthority(fingerprint: string): CertAuthorityEntry | undefined
}

export type CertificateAuthorizationCode = CertificateErrorCode | 'cert_role_missing'

export type ClientCertificateResult =
  | {
      readonly ok: true
      readonly certificate: VerifiedCertificate
      readonly authority: CertAuthorityEntry
      /** The principal that matched the entry (undefined when the entry accepts any and the certificate lists none). */
      readonly principal: string | undefined
      /** The role under the entry's mapping (undefined: no role). */
      readonly role: string | undefined
    }
  | { readonly ok: false; readonly code: CertificateAuthorizationCode; readonly message: string }

export interface CheckClientCertificateOptions {
  now: number
  toleranceSeconds: number
  /** The key the client proved it holds (its handshake signature). */
  subjectPublicKey: Uint8Array
  /** The client's IP address: enforces a `source-address` critical option instead of refusing it. */
  clientAddress?: string
  /** The revocation list's `isRevoked` (key fingerprints, certificate serials and key ids). */
  isRevoked?: (id: string) => boolean
  /** An OpenSSH KRL (loadOpenSshKrlFile). */
  krl?: KrlLookup
}

/**
 * Everything the server handshake needs for a client certificate: verifies it against the CA
 * entries of the allowlist (user certificate, validity with tolerance, critical options, subject =
 * the presented key, revocation by serial/key id/key), then applies the entry's principal list
 * and role mapping. Never throws for bad input.
 *
 * @example
 * const r = checkClientCertificate(allowlist, blob, { now, toleranceSeconds: 60, subjectPublicKey })
 * if (!r.ok) audit({ reason: r.code }) // the wire gets the generic authentication_failed
 */
export function checkClientCertificate(lookup: CertAuthorityLookup, blob: Uint8Array, options: CheckClientCertificateOptions): ClientCertificateResult {
  const authorities = lookup.certAuthorities()
  const verified = verifyOpenSshCertificate(blob, {
    authorities: authorities.map((a) => a.publicKeyRaw),
    now: options.now,
    toleranceSeconds: options.toleranceSeconds,
    expectedType: 'user',
    subjectPublicKey: options.subjectPublicKey,
    ...(options.clientAddress !== undefined ? { clientAddress: options.clientAddress } : {}),
    ...(options.isRevoked !== undefined ? { isRevoked: options.isRevoked } : {}),
    ...(options.krl !== undefined ? { krl: options.krl } : {}),
  })
  if (!verified.ok) return verified
  const authority = lookup.getCertAuthority(verified.caFingerprint)
  if (authority === undefined) return { ok: false, code: 'cert_unknown_authority', message: `CA ${verified.caFingerprint} is no longer on the allowlist` }
  return authorizeCertificate(authority, verified)
}

/** Applies a CA entry's principal list and role mapping to a verified certificate. */
export function authorizeCertificate(authority: CertAuthorityEntry, certificate: VerifiedCertificate): ClientCertificateResult {
  const label = `certificate "${printable(certificate.keyId)}" (serial ${certificate.serial})`
  // OpenSSH reads an empty principal list as "any principal"; sshd refuses such user certificates,
  // and so do we: a CA's wildcard certificate for some other use must not open this server.
  if (certificate.principals.length === 0) {
    return { ok: false, code: 'cert_wrong_principal', message: `${label} lists no principals; certify the key for a principal (ssh-keygen -n NAME)` }
  }
  const allowed = authority.principals
  const principal = allowed === undefined ? certificate.principals[0] : certificate.principals.find((p) => allowed.includes(p))
  if (allowed !== undefined && principal === undefined) {
    return { ok: false, code: 'cert_wrong_principal', message: `${label} lists none of the principals CA ${authority.fingerprint} is trusted for (${allowed.join(', ')})` }
  }
  let role: string | undefined
  if (authority.roleFrom === 'principal') {
    if (principal === undefined) return { ok: false, code: 'cert_role_missing', message: `${label} lists no principal to take the role from` }
    role = principal
  } else if (authority.roleFrom !== undefined) {
    const name = authority.roleFrom.slice('extension:'.length)
    role = certificate.extensions[name]
    if (role === undefined || role === '') {
      return { ok: false, code: 'cert_role_missing', message: `${label} has no "${name}" extension value to take the role from (ssh-keygen -O extension:${name}=ROLE)` }
    }
  } else {
    const r = authority.metadata.role
    role = typeof r === 'string' ? r : undefined
  }
  return { ok: true, certificate, authority, principal, role }
}

export interface CheckServerCertificateOptions {
  now: number
  toleranceSeconds: number
  /** The host name the client connected to: the certificate must list it as a principal. */
  host: string
  /** The key the server proved it holds. */
  subjectPublicKey: Uint8Array
  isRevoked?: (id: string) => boolean
  krl?: KrlLookup
}

/**
 * For a client: does a CA entry of its allowlist vouch for this server key for `host`, like
 * `@cert-authority` in known_hosts? A host certificate (`ssh-keygen -s ca -h -n host`) listing
 * `host`; an entry with `principals` is trusted only for those host names.
 */
export function checkServerCertificate(lookup: CertAuthorityLookup, blob: Uint8Array, options: CheckServerCertificateOptions): ClientCertificateResult {
  const verified = verifyOpenSshCertificate(blob, {
    authorities: lookup.certAuthorities().map((a) => a.publicKeyRaw),
    now: options.now,
    toleranceSeconds: options.toleranceSeconds,
    expectedType: 'host',
    principal: options.host,
    subjectPublicKey: options.subjectPublicKey,
    ...(options.isRevoked !== undefined ? { isRevoked: options.isRevoked } : {}),
    ...(options.krl !== undefined ? { krl: options.krl } : {}),
  })
  if (!verified.ok) return verified
  const authority = lookup.getCertAuthority(verified.caFingerprint)
  if (authority === undefined) return { ok: false, code: 'cert_unknown_authority', message: `CA ${verified.caFingerprint} is no longer on the allowlist` }
  if (authority.principals !== undefined && !authority.principals.includes(options.host)) {
    return { ok: false, code: 'cert_wrong_principal', message: `CA ${authority.fingerprint} is trusted for ${authority.principals.join(', ')}, not "${printable(options.host)}"` }
  }
  const r = authority.metadata.role
  return { ok: true, certificate: verified, authority, principal: options.host, role: typeof r === 'string' ? r : undefined }
}

/**
 * The allowlist entry a certified client is treated as (by the handshake and, per request, by the
 * session verifier): the CA entry's metadata with the mapped role and the certificate's identity.
 * `notAfter` (ms) caps the session (the certificate's valid_before plus the clock tolerance).
 */
export function certifiedEntry(
  authority: CertAuthorityEntry,
  subject: { fingerprint: string; publicKeyRaw: Buffer | undefined },
  certificate: { keyId: string | undefined; serial: string; role: string | undefined; notAfter: number | undefined },
): AllowlistEntry {
  const metadata: Record<string, unknown> = { ...authority.metadata }
  if (certificate.role !== undefined) metadata.role = certificate.role
  metadata.certificate = { ca: authority.fingerprint, serial: certificate.serial, ...(certificate.keyId === undefined ? {} : { key_id: certificate.keyId }) }
  return Object.freeze({
    fingerprint: subject.fingerprint,
    publicKeyRaw: subject.publicKeyRaw,
    description: `certified by CA ${authority.fingerprint.slice(0, 16)}… (serial ${certificate.serial})`,
    metadata: Object.freeze(metadata),
    addedAt: authority.addedAt,
    addedBy: authority.addedBy,
    notAfter: certificate.notAfter,
  })
}
