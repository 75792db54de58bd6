/**
 * OpenSSH certificates (`ssh-ed25519-cert-v01@openssh.com`, PROTOCOL.certkeys in
 * openssh-portable) as `ssh-keygen -s ca -I key_id -n principals -V +8h key.pub` writes them:
 * a strict parser and a verifier against a set of certificate authorities.
 *
 * Supported: certificates for **ed25519** keys signed by **ed25519** CAs (signature algorithm
 * `ssh-ed25519`). A certificate signed by an RSA, ECDSA or security-key CA is refused with
 * `cert_unknown_authority`, a certificate for a key of another type with `cert_malformed`.
 *
 * The parser is strict, before any cryptography: at most {@link MAX_CERTIFICATE_SIZE} bytes;
 * every length checked against what is left; no trailing bytes after the signature, inside the
 * signature, inside the CA key, inside the principal list or option lists; option names sorted and
 * unique (the spec says so); texts free of control characters; subject and CA keys that are
 * small-order or non-canonical ed25519 points refused.
 *
 * Verification order (a contract, tested): parse → authority known → CA signature → certificate
 * type → validity interval → principal → critical options → subject key → revocation.
 * @module
 */
import { BlockList, isIP } from 'node:net'
import { hasControlCharacter, printable } from '../internal/text.js'
import { weakEd25519KeyReason } from './point-check.js'
import { fingerprintOf, publicKeyFromRaw, verifyBytes } from './key-pair.js'
import { SshReader, SshWireError } from './ssh-wire.js'

export const OPENSSH_ED25519_CERT_TYPE = 'ssh-ed25519-cert-v01@openssh.com'
/** Largest certificate blob accepted (ssh-keygen's are 300–600 bytes; many principals make more). */
export const MAX_CERTIFICATE_SIZE = 16 * 1024
/** Most principals accepted in one certificate (OpenSSH's own limit, SSHKEY_CERT_MAX_PRINCIPALS). */
export const MAX_CERTIFICATE_PRINCIPALS = 256

const CERT_TYPE_USER = 1
const CERT_TYPE_HOST = 2
const U64_MAX = 0xffff_ffff_ffff_ffffn

export type CertificateErrorCode =
  | 'cert_malformed'
  | 'cert_bad_signature'
  | 'cert_unknown_authority'
  | 'cert_expired'
  | 'cert_not_yet_valid'
  | 'cert_wrong_type'
  | 'cert_wrong_principal'
  | 'cert_critical_option'
  | 'cert_key_mismatch'
  | 'cert_revoked'

/** A certificate as parsed (not yet verified: nothing in it is trusted). */
export interface OpenSshCertificate {
  /** Raw 32-byte ed25519 key the certificate is for. */
  readonly subjectPublicKey: Buffer
  /** uint64 serial, as a decimal string (it may exceed 2^53). */
  readonly serial: string
  readonly type: 'user' | 'host'
  readonly keyId: string
  /** Empty = valid for any principal (OpenSSH's meaning); verification refuses that unless no principal is required. */
  readonly principals: readonly string[]
  /** Seconds since the epoch, as written (uint64). */
  readonly validAfterSeconds: bigint
  readonly validBeforeSeconds: bigint
  /** name → value (the inner string of the option data; '' for flag options). */
  readonly criticalOptions: Readonly<Record<string, string>>
  readonly extensions: Readonly<Record<string, string>>
  /** Raw 32-byte ed25519 key of the signing CA (undefined when the CA key is of another type). */
  readonly caPublicKey: Buffer | undefined
  /** SSH key type of the signing CA key (`ssh-ed25519`, `ssh-rsa` …). */
  readonly caKeyType: string
  /** The bytes the CA signed: everything up to and including the signature key. */
  readonly signedData: Buffer
  /** Raw 64-byte ed25519 signature (empty when the CA is not ed25519). */
  readonly signature: Buffer
}

export interface VerifyCertificateOptions {
  /** Raw 32-byte ed25519 public keys of the trusted certificate authorities. */
  authorities: readonly Uint8Array[]
  /** Current time, ms since the epoch. */
  now: number
  /** Clock skew allowed on both ends of the validity interval, seconds (the config's timestamp_tolerance). */
  toleranceSeconds: number
  expectedType: 'user' | 'host'
  /** The certificate must list this principal (host name for host certificates). */
  principal?: string
  /** The key the peer proved it holds: must be the certificate's subject key. */
  subjectPublicKey?: Uint8Array
  /**
   * The peer's IP address: makes the `source-address` critical option understood (enforced).
   * Without it a certificate carrying source-address is refused.
   */
  clientAddress?: string
  /** Revocation check: ids from {@link certificateRevocationIds} and the subject key fingerprint. */
  isRevoked?: (id: string) => boolean
  /** An OpenSSH KRL (see openssh-krl.ts): certificates by serial or key id, keys explicitly or by fingerprint. */
  krl?: KrlLookup
}

/** What the verifier asks of a KRL ({@link OpenSshKrl} from openssh-krl.ts implements it). */
export interface KrlLookup {
  isCertificateRevoked(caPublicKey: Uint8Array, serial: bigint, keyId: string): boolean
  isKeyRevoked(publicKey: Uint8Array): boolean
}

export interface VerifiedCertificate {
  readonly ok: true
  readonly keyId: string
  readonly serial: string
  readonly principals: readonly string[]
  readonly extensions: Readonly<Record<string, string>>
  /** ms since the epoch (0 = from the beginning). */
  readonly validAfter: number
  /** ms since the epoch; Infinity = forever (`ssh-keygen -V always:forever`). */
  readonly validBefore: number
  /** Hex SHA-256 of the CA's raw public key (the project's fingerprint form). */
  readonly caFingerprint: string
  readonly subjectPublicKey: Buffer
  /** Hex SHA-256 of the subject key. */
  readonly subjectFingerprint: string
}

export interface CertificateFailure {
  readonly ok: false
  readonly code: CertificateErrorCode
  /** Names the problem; never contains key material. Texts from the certificate are made printable. */
  readonly message: string
}

export type CertificateVerification = VerifiedCertificate | CertificateFailure

/** Thrown by {@link parseOpenSshCertificate}; `code` is always `cert_malformed`. */
export class CertificateError extends Error {
  readonly code: CertificateErrorCode
  constructor(code: CertificateErrorCode, message: string) {
    super(message)
    this.name = 'CertificateError'
    this.code = code
  }
}

function malformed(message: string): CertificateError {
  return new CertificateError('cert_malformed', `malformed certificate: ${message}`)
}

/**
 * Parses a certificate blob (the bytes the base64 of a `*-cert.pub` line encodes).
 * @throws CertificateError (cert_malformed) for anything that is not a well-formed ed25519 certificate.
 * @throws TypeError when `blob` is not a Uint8Array.
 */
export function parseOpenSshCertificate(blob: Uint8Array): OpenSshCertificate {
  if (!(blob instanceof Uint8Array)) throw new TypeError('certificate must be a Uint8Array')
  if (blob.byteLength > MAX_CERTIFICATE_SIZE) throw malformed(`${blob.byteLength} bytes exceeds the ${MAX_CERTIFICATE_SIZE}-byte limit`)
  try {
    return parseCertificateFields(new SshReader(blob), blob)
  } catch (err) {
    if (err instanceof SshWireError) throw malformed(err.message)
    throw err
  }
}

function parseCertificateFields(r: SshReader, blob: Uint8Array): OpenSshCertificate {
  const type = r.string('key type').toString('latin1')
  if (type !== OPENSSH_ED25519_CERT_TYPE) {
    throw malformed(`type "${printable(type.slice(0, 64))}" is not ${OPENSSH_ED25519_CERT_TYPE}`)
  }
  const nonce = r.string('nonce')
  if (nonce.length < 16 || nonce.length > 256) throw malformed(`nonce of ${nonce.length} bytes (expected 16 to 256)`)
  const subjectPublicKey = Buffer.from(r.string('public key'))
  checkKey(subjectPublicKey, 'subject key')
  const serial = r.u64().toString()
  const typeCode = r.u32()
  if (typeCode !== CERT_TYPE_USER && typeCode !== CERT_TYPE_HOST) throw malformed(`certificate type ${typeCode} is neither user (1) nor host (2)`)
  const keyId = checkedText(r.string('key id'), 'key id')
  const principals = parsePrincipals(r.string('principals'))
  const validAfterSeconds = r.u64()
  const validBeforeSeconds = r.u64()
  if (validBeforeSeconds <= validAfterSeconds) throw malformed('valid_before is not after valid_after')
  const criticalOptions = parseOptions(r.string('critical options'), 'critical option')
  const extensions = parseOptions(r.string('extensions'), 'extension')
  r.string('reserved') // ignored, as the spec says
  const caBlob = r.string('signature key')
  const signedData = Buffer.from(blob.subarray(0, r.position))
  const { caKeyType, caPublicKey } = parseCaKey(caBlob)
  const signature = parseSignature(r.string('signature'), caKeyType)
  if (!r.atEnd()) throw malformed(`${r.remaining} trailing bytes after the signature`)
  return {
    subjectPublicKey,
    serial,
    type: typeCode === CERT_TYPE_USER ? 'user' : 'host',
    keyId,
    principals,
    validAfterSeconds,
    validBeforeSeconds,
    criticalOptions,
    extensions,
    caPublicKey,
    caKeyType,
    signedData,
    signature,
  }
}

function checkKey(raw: Uint8Array, what: string): void {
  const weak = weakEd25519KeyReason(raw)
  if (weak !== undefined) throw malformed(`${what}: ${weak}`)
}

function checkedText(bytes: Buffer, what: string): string {
  const text = bytes.toString('utf8')
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw malformed(`${what} is not valid UTF-8`)
  if (hasControlCharacter(text)) throw malformed(`${what} contains control characters`)
  return text
}

function parsePrincipals(data: Buffer): string[] {
  const r = new SshReader(data)
  const out: string[] = []
  while (!r.atEnd()) {
    if (out.length === MAX_CERTIFICATE_PRINCIPALS) throw malformed(`more than ${MAX_CERTIFICATE_PRINCIPALS} principals`)
    const p = checkedText(r.string('principal'), 'principal')
    if (p === '') throw malformed('empty principal')
    out.push(p)
  }
  return out
}

/** name/data pairs, names sorted and unique; data is empty or exactly one inner string. */
function parseOptions(data: Buffer, what: string): Record<string, string> {
  const r = new SshReader(data)
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  let previous: string | undefined
  while (!r.atEnd()) {
    const name = checkedText(r.string(`${what} name`), `${what} name`)
    if (name === '') throw malformed(`empty ${what} name`)
    if (previous !== undefined && name <= previous) throw malformed(`${what}s not in sorted order or repeated ("${printable(name)}")`)
    previous = name
    const value = r.string(`${what} value`)
    if (value.length === 0) {
      out[name] = ''
      continue
    }
    const inner = new SshReader(value)
    const text = checkedText(inner.string(`${what} value`), `${what} "${printable(name)}" value`)
    if (!inner.atEnd()) throw malformed(`${what} "${printable(name)}" has trailing bytes after its value`)
    out[name] = text
  }
  return out
}

function parseCaKey(blob: Buffer): { caKeyType: string; caPublicKey: Buffer | undefined } {
  const r = new SshReader(blob)
  const caKeyType = r.string('CA key type').toString('latin1')
  if (caKeyType !== 'ssh-ed25519') return { caKeyType: printable(caKeyType.slice(0, 64)), caPublicKey: undefined }
  const caPublicKey = Buffer.from(r.string('CA key'))
  if (!r.atEnd()) throw malformed('trailing bytes in the CA key')
  checkKey(caPublicKey, 'CA key')
  return { caKeyType, caPublicKey }
}

function parseSignature(blob: Buffer, caKeyType: string): Buffer {
  if (caKeyType !== 'ssh-ed25519') return Buffer.alloc(0)
  const r = new SshReader(blob)
  const alg = r.string('signature algorithm').toString('latin1')
  if (alg !== 'ssh-ed25519') throw malformed(`signature algorithm "${printable(alg.slice(0, 64))}" does not match the ed25519 CA key`)
  const sig = Buffer.from(r.string('signature'))
  if (sig.length !== 64) throw malformed(`ed25519 signature of ${sig.length} bytes (expected 64)`)
  if (!r.atEnd()) throw malformed('trailing bytes in the signature')
  return sig
}

// ---------------------------------------------------------------------------------------------
// Verification

/**
 * Verifies a certificate blob against trusted CAs and the caller's expectations. Never throws
 * for bad input: every problem is a `{ ok: false, code, message }`.
 *
 * @example
 * const result = verifyOpenSshCertificate(blob, { authorities: [caRaw], now: Date.now(), toleranceSeconds: 60, expectedType: 'user', principal: 'alice' })
 * if (!result.ok) audit(result.code)
 * @throws TypeError for bad options (caller misuse), including a weak or non-32-byte authority key.
 */
export function verifyOpenSshCertificate(blob: Uint8Array, options: VerifyCertificateOptions): CertificateVerification {
  checkOptions(options)
  let cert: OpenSshCertificate
  try {
    cert = parseOpenSshCertificate(blob)
  } catch (err) {
    if (err instanceof CertificateError) return fail(err.code, err.message)
    throw err
  }
  return verifyChecked(cert, options)
}

/** {@link verifyOpenSshCertificate} for an already parsed certificate. */
export function verifyParsedCertificate(cert: OpenSshCertificate, options: VerifyCertificateOptions): CertificateVerification {
  checkOptions(options)
  return verifyChecked(cert, options)
}

function verifyChecked(cert: OpenSshCertificate, options: VerifyCertificateOptions): CertificateVerification {
  if (cert.caPublicKey === undefined) {
    return fail('cert_unknown_authority', `certificate signed by a ${cert.caKeyType} CA; only ed25519 certificate authorities are supported`)
  }
  const caFingerprint = fingerprintOf(cert.caPublicKey)
  if (!options.authorities.some((a) => fingerprintOf(a) === caFingerprint)) {
    return fail('cert_unknown_authority', `certificate signed by CA ${caFingerprint}, which is not a trusted certificate authority`)
  }
  if (!verifyBytes(publicKeyFromRaw(cert.caPublicKey), cert.signedData, cert.signature)) {
    return fail('cert_bad_signature', `the signature of CA ${caFingerprint} on certificate "${printable(cert.keyId)}" does not verify`)
  }
  const label = `certificate "${printable(cert.keyId)}" (serial ${cert.serial})`
  if (cert.type !== options.expectedType) {
    return fail('cert_wrong_type', `${label} is a ${cert.type} certificate; a ${options.expectedType} certificate is required`)
  }
  const timing = checkValidity(cert, options, label)
  if (timing) return timing
  if (options.principal !== undefined && !cert.principals.includes(options.principal)) {
    const listed = cert.principals.length === 0 ? 'no principals' : `principals ${cert.principals.map(printable).join(', ')}`
    return fail('cert_wrong_principal', `${label} lists ${listed}, not "${printable(options.principal)}"`)
  }
  const option = checkCriticalOptions(cert, options, label)
  if (option) return option
  const subjectFingerprint = fingerprintOf(cert.subjectPublicKey)
  if (options.subjectPublicKey !== undefined && fingerprintOf(options.subjectPublicKey) !== subjectFingerprint) {
    return fail('cert_key_mismatch', `${label} is for key ${subjectFingerprint}, not the key presented`)
  }
  if (options.isRevoked) {
    const ids = certificateRevocationIds(caFingerprint, cert.serial, cert.keyId)
    if (options.isRevoked(ids.serial)) return fail('cert_revoked', `${label} from CA ${caFingerprint} is revoked by serial`)
    if (options.isRevoked(ids.keyId)) return fail('cert_revoked', `${label} from CA ${caFingerprint} is revoked by key id`)
    if (options.isRevoked(subjectFingerprint)) return fail('cert_revoked', `${label}: its key ${subjectFingerprint} is revoked`)
  }
  if (options.krl) {
    if (options.krl.isCertificateRevoked(cert.caPublicKey, BigInt(cert.serial), cert.keyId)) return fail('cert_revoked', `${label} from CA ${caFingerprint} is revoked by the KRL`)
    if (options.krl.isKeyRevoked(cert.subjectPublicKey) || options.krl.isKeyRevoked(cert.caPublicKey)) {
      return fail('cert_revoked', `${label}: its key or its CA's key is revoked by the KRL`)
    }
  }
  return {
    ok: true,
    keyId: cert.keyId,
    serial: cert.serial,
    principals: cert.principals,
    extensions: cert.extensions,
    validAfter: secondsToMs(cert.validAfterSeconds),
    validBefore: secondsToMs(cert.validBeforeSeconds),
    caFingerprint,
    subjectPublicKey: cert.subjectPublicKey,
    subjectFingerprint,
  }
}

function checkOptions(o: VerifyCertificateOptions): void {
  if (o === null || typeof o !== 'object') throw new TypeError('options must be an object')
  if (!Array.isArray(o.authorities)) throw new TypeError('authorities must be an array of raw ed25519 public keys')
  for (const a of o.authorities) {
    if (!(a instanceof Uint8Array)) throw new TypeError('each authority must be a Uint8Array')
    const weak = weakEd25519KeyReason(a)
    if (weak !== undefined) throw new TypeError(`authority key refused: ${weak}`)
  }
  if (!Number.isFinite(o.now)) throw new TypeError('now must be a finite number of ms since the epoch')
  if (!Number.isFinite(o.toleranceSeconds) || o.toleranceSeconds < 0) throw new TypeError('toleranceSeconds must be a non-negative number')
  if (o.expectedType !== 'user' && o.expectedType !== 'host') throw new TypeError("expectedType must be 'user' or 'host'")
}

function checkValidity(cert: OpenSshCertificate, o: VerifyCertificateOptions, label: string): CertificateFailure | undefined {
  const nowSeconds = BigInt(Math.floor(o.now / 1000))
  const tolerance = BigInt(Math.ceil(o.toleranceSeconds))
  // OpenSSH: valid when valid_after <= now < valid_before.
  if (nowSeconds + tolerance < cert.validAfterSeconds) {
    return fail('cert_not_yet_valid', `${label} is valid from ${timeText(cert.validAfterSeconds)}; now is ${new Date(o.now).toISOString()}`)
  }
  if (cert.validBeforeSeconds !== U64_MAX && nowSeconds - tolerance >= cert.validBeforeSeconds) {
    return fail('cert_expired', `${label} expired at ${timeText(cert.validBeforeSeconds)}; now is ${new Date(o.now).toISOString()}`)
  }
  return undefined
}

/** Only `source-address` is understood, and only when the caller gives the peer's address. */
function checkCriticalOptions(cert: OpenSshCertificate, o: VerifyCertificateOptions, label: string): CertificateFailure | undefined {
  for (const [name, value] of Object.entries(cert.criticalOptions)) {
    if (name === 'source-address' && o.clientAddress !== undefined) {
      if (!sourceAddressAllows(value, o.clientAddress)) {
        return fail('cert_critical_option', `${label}: source-address ${printable(value)} does not allow ${printable(o.clientAddress)}`)
      }
      continue
    }
    return fail('cert_critical_option', `${label} carries the critical option "${printable(name)}", which this server does not enforce; certificates must not carry it`)
  }
  return undefined
}

/** OpenSSH's source-address: comma-separated addresses or CIDR blocks. A malformed list allows nothing. */
export function sourceAddressAllows(list: string, address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  const blocks = new BlockList()
  for (const item of list.split(',')) {
    const [net, bits, extra] = item.trim().split('/')
    const netFamily = isIP(net ?? '')
    if (netFamily === 0 || extra !== undefined) return false
    const type = netFamily === 4 ? 'ipv4' : 'ipv6'
    if (bits === undefined) {
      blocks.addAddress(net!, type)
      continue
    }
    const prefix = Number(bits)
    if (!/^\d{1,3}$/.test(bits) || prefix > (netFamily === 4 ? 32 : 128)) return false
    blocks.addSubnet(net!, prefix, type)
  }
  return blocks.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/**
 * The revocation-list ids of a certificate: `serial` and `keyId` scoped to the CA. They are hex
 * SHA-256 values, so they live in the same revocation list (and Redis set) as key fingerprints
 * without colliding with one: each is the hash of a domain-separated text.
 */
export function certificateRevocationIds(caFingerprint: string, serial: string, keyId: string): { serial: string; keyId: string } {
  return {
    serial: fingerprintOf(Buffer.from(`mcp-pki cert-serial\0${caFingerprint}\0${serial}`, 'utf8')),
    keyId: fingerprintOf(Buffer.from(`mcp-pki cert-key-id\0${caFingerprint}\0${keyId}`, 'utf8')),
  }
}

/**
 * Reads a `*-cert.pub` line (`ssh-ed25519-cert-v01@openssh.com AAAA… comment`) and returns the
 * certificate blob. @throws CertificateError (cert_malformed)
 */
export function parseOpenSshCertificateLine(text: string): { blob: Buffer; comment: string | undefined } {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  if (lines.length !== 1) throw malformed(`expected one certificate line, found ${lines.length}`)
  const [type, b64, ...rest] = lines[0]!.split(/\s+/)
  if (type !== OPENSSH_ED25519_CERT_TYPE) {
    throw malformed(`expected a "${OPENSSH_ED25519_CERT_TYPE} AAAA…" line (ssh-keygen -s writes one to <key>-cert.pub), got "${printable((type ?? '').slice(0, 64))}"`)
  }
  if (b64 === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) throw malformed('the certificate line has no base64 blob')
  if (b64.length > (MAX_CERTIFICATE_SIZE * 4) / 3 + 4) throw malformed(`the certificate exceeds the ${MAX_CERTIFICATE_SIZE}-byte limit`)
  const blob = Buffer.from(b64, 'base64')
  parseOpenSshCertificate(blob) // refuses a malformed blob now rather than at the handshake
  return { blob, comment: rest.length > 0 ? rest.join(' ') : undefined }
}

function fail(code: CertificateErrorCode, message: string): CertificateFailure {
  return { ok: false, code, message }
}

function secondsToMs(seconds: bigint): number {
  if (seconds === U64_MAX || seconds > BigInt(Number.MAX_SAFE_INTEGER) / 1000n) return Number.POSITIVE_INFINITY
  return Number(seconds) * 1000
}

function timeText(seconds: bigint): string {
  const ms = secondsToMs(seconds)
  return Number.isFinite(ms) && ms <= 8.64e15 ? new Date(ms).toISOString() : 'the end of time'
}
