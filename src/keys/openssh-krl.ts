/**
 * OpenSSH key revocation lists (KRL, PROTOCOL.krl in openssh-portable), as `ssh-keygen -k` writes
 * them: certificates revoked by serial (lists, ranges, bitmaps) or key id under a CA, and plain keys
 * revoked explicitly or by SHA-256 fingerprint. Read strictly: a section or subsection this reader
 * does not know, SHA-1 fingerprints, and signed KRLs are refused (a revocation list read in part
 * could let a revoked key in). Size-limited to {@link MAX_KRL_SIZE}.
 * @module
 */
import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { AuthError } from '../errors.js'
import { ed25519KeyBlob, SshReader, SshWireError } from './ssh-wire.js'

export const MAX_KRL_SIZE = 16 * 1024 * 1024
const KRL_MAGIC = 0x5353484b524c0a00n
const SECTION_CERTIFICATES = 1
const SECTION_EXPLICIT_KEY = 2
const SECTION_FINGERPRINT_SHA1 = 3
const SECTION_SIGNATURE = 4
const SECTION_FINGERPRINT_SHA256 = 5
const CERT_SERIAL_LIST = 0x20
const CERT_SERIAL_RANGE = 0x21
const CERT_SERIAL_BITMAP = 0x22
const CERT_KEY_ID = 0x23

/** What a KRL revokes under one CA. */
export interface CaRevocations {
  serials: Set<bigint>
  ranges: [bigint, bigint][]
  keyIds: Set<string>
}

/** A loaded KRL. Lookups take raw ed25519 keys. */
export class OpenSshKrl {
  readonly version: bigint
  readonly comment: string
  /** CA key blob (base64; '' = any CA) → what it revokes. */
  readonly #byCa = new Map<string, CaRevocations>()
  /** Hex SHA-256 of revoked key blobs (explicit keys are stored hashed too). */
  readonly #keyHashes = new Set<string>()
  /** Raw ed25519 keys revoked explicitly (what a fingerprint-keyed revocation check can use). */
  readonly #explicitKeys: Buffer[] = []

  constructor(version: bigint, comment: string) {
    this.version = version
    this.comment = comment
  }

  /** True when the certificate with this serial and key id, signed by `caPublicKey`, is revoked. */
  isCertificateRevoked(caPublicKey: Uint8Array, serial: bigint, keyId: string): boolean {
    for (const ca of [ed25519KeyBlob(caPublicKey).toString('base64'), '']) {
      const r = this.#byCa.get(ca)
      if (r === undefined) continue
      if (serial !== 0n && (r.serials.has(serial) || r.ranges.some(([lo, hi]) => serial >= lo && serial <= hi))) return true
      if (r.keyIds.has(keyId)) return true
    }
    return false
  }

  /** True when this ed25519 key (certified or not) is revoked explicitly or by fingerprint. */
  isKeyRevoked(publicKey: Uint8Array): boolean {
    return this.#keyHashes.has(sha256Hex(ed25519KeyBlob(publicKey)))
  }

  /** The raw ed25519 keys revoked explicitly (not by hash). */
  explicitEd25519Keys(): readonly Buffer[] {
    return this.#explicitKeys
  }

  /** Per CA: its raw ed25519 key (undefined = any CA) and what it revokes. CAs of other key types are left out. */
  certificateRevocations(): Array<{ caPublicKey: Buffer | undefined; revoked: Readonly<CaRevocations> }> {
    const out: Array<{ caPublicKey: Buffer | undefined; revoked: Readonly<CaRevocations> }> = []
    for (const [blob, revoked] of this.#byCa) {
      if (blob === '') out.push({ caPublicKey: undefined, revoked })
      else {
        const raw = ed25519RawOf(Buffer.from(blob, 'base64'))
        if (raw !== undefined) out.push({ caPublicKey: raw, revoked })
      }
    }
    return out
  }

  /** @internal */
  addExplicitKey(blob: Buffer): void {
    this.#keyHashes.add(sha256Hex(blob))
    const raw = ed25519RawOf(blob)
    if (raw !== undefined) this.#explicitKeys.push(raw)
  }

  /** @internal */
  caRevocations(caBlob: Buffer): CaRevocations {
    const k = caBlob.toString('base64')
    let r = this.#byCa.get(k)
    if (r === undefined) this.#byCa.set(k, (r = { serials: new Set(), ranges: [], keyIds: new Set() }))
    return r
  }

  /** @internal */
  addKeyHash(hex: string): void {
    this.#keyHashes.add(hex)
  }
}

/** The raw key of an `ssh-ed25519` key blob; undefined for any other blob. */
function ed25519RawOf(blob: Buffer): Buffer | undefined {
  try {
    const r = new SshReader(blob)
    if (r.string().toString('latin1') !== 'ssh-ed25519') return undefined
    const raw = r.string()
    return raw.length === 32 && r.atEnd() ? Buffer.from(raw) : undefined
  } catch {
    return undefined
  }
}

function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

class KrlError extends Error {}

/** Parses a binary KRL. @throws AuthError(key_file_invalid) naming `label` and the problem */
export function parseOpenSshKrl(data: Uint8Array, label = 'KRL'): OpenSshKrl {
  if (data.byteLength > MAX_KRL_SIZE) throw invalid(label, `${data.byteLength} bytes exceeds the ${MAX_KRL_SIZE}-byte limit`)
  try {
    const r = new SshReader(data)
    if (r.u64() !== KRL_MAGIC) throw new KrlError('not an OpenSSH KRL (bad magic; ssh-keygen -k writes one)')
    const format = r.u32()
    if (format !== 1) throw new KrlError(`KRL format version ${format} is not supported (expected 1)`)
    const version = r.u64()
    r.u64() // generated_date
    r.u64() // flags
    r.string('reserved')
    const krl = new OpenSshKrl(version, r.string('comment').toString('utf8'))
    while (!r.atEnd()) readSection(krl, r.u8(), r.string('section'))
    return krl
  } catch (err) {
    if (err instanceof KrlError || err instanceof SshWireError) throw invalid(label, err.message)
    throw err
  }
}

function readSection(krl: OpenSshKrl, type: number, data: Buffer): void {
  const r = new SshReader(data)
  switch (type) {
    case SECTION_CERTIFICATES: {
      const target = krl.caRevocations(Buffer.from(r.string('CA key')))
      r.string('reserved')
      while (!r.atEnd()) readCertSubsection(target, r.u8(), r.string('certificate subsection'))
      return
    }
    case SECTION_EXPLICIT_KEY:
      while (!r.atEnd()) krl.addExplicitKey(Buffer.from(r.string('key')))
      return
    case SECTION_FINGERPRINT_SHA256:
      while (!r.atEnd()) {
        const hash = r.string('fingerprint')
        if (hash.length !== 32) throw new KrlError(`a SHA-256 fingerprint of ${hash.length} bytes`)
        krl.addKeyHash(hash.toString('hex'))
      }
      return
    case SECTION_FINGERPRINT_SHA1:
      throw new KrlError('SHA-1 fingerprint sections are not supported; regenerate the KRL with SHA-256 fingerprints ("hash: SHA256:…")')
    case SECTION_SIGNATURE:
      throw new KrlError('signed KRLs are not supported')
    default:
      throw new KrlError(`unknown KRL section type ${type}`)
  }
}

function readCertSubsection(target: CaRevocations, type: number, data: Buffer): void {
  const r = new SshReader(data)
  switch (type) {
    case CERT_SERIAL_LIST:
      while (!r.atEnd()) target.serials.add(r.u64())
      return
    case CERT_SERIAL_RANGE: {
      const lo = r.u64()
      const hi = r.u64()
      if (hi < lo || !r.atEnd()) throw new KrlError('malformed serial range')
      target.ranges.push([lo, hi])
      return
    }
    case CERT_SERIAL_BITMAP: {
      const offset = r.u64()
      const bitmap = r.string('bitmap')
      if (!r.atEnd()) throw new KrlError('trailing bytes after a serial bitmap')
      // mpint, big-endian: bit i (from the least significant) revokes serial offset + i.
      for (let byte = 0; byte < bitmap.length; byte++) {
        const value = bitmap[bitmap.length - 1 - byte]!
        for (let bit = 0; bit < 8; bit++) if (value & (1 << bit)) target.serials.add(offset + BigInt(byte * 8 + bit))
      }
      return
    }
    case CERT_KEY_ID:
      while (!r.atEnd()) target.keyIds.add(r.string('key id').toString('utf8'))
      return
    default:
      throw new KrlError(`unknown certificate subsection type 0x${type.toString(16)}`)
  }
}

/** Reads a KRL file. @throws AuthError(key_file_invalid) */
export async function loadOpenSshKrlFile(path: string): Promise<OpenSshKrl> {
  try {
    const st = await stat(path)
    if (st.size > MAX_KRL_SIZE) throw invalid(path, `${st.size} bytes exceeds the ${MAX_KRL_SIZE}-byte limit`)
    return parseOpenSshKrl(await readFile(path), path)
  } catch (err) {
    if (err instanceof AuthError) throw err
    const code = (err as NodeJS.ErrnoException).code
    throw invalid(path, code === 'ENOENT' ? 'no such file' : (code ?? String(err)))
  }
}

function invalid(label: string, message: string): AuthError {
  return new AuthError('key_file_invalid', `${label}: ${message}`, { path: label })
}
