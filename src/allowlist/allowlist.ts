/**
 * The in-memory allowlist: entries indexed by fingerprint for O(1) lookup.
 *
 * File format (version 1, written by {@link Allowlist.toJSON}; one entry per line so a large file
 * can be read a line at a time):
 *
 * ```json
 * {
 *   "version": 1,
 *   "updated_at": "2025-01-01T00:00:00.000Z",
 *   "keys": {
 *     "<fingerprint>": {"fingerprint": "<64 lowercase hex>", "public_key": "<base64url of the raw 32-byte key>" | null,
 *                        "description": "…" | null, "added_at": "<ISO>", "added_by": "user@host" | null,
 *                        "metadata": {"role": "…", "expires": "2024-12-31", …}, "not_after": "<ISO>"?}
 *   }
 * }
 * ```
 *
 * `public_key: null` is a fingerprint-only entry; the first handshake that presents the matching key
 * completes it. `fingerprint` must equal the hex SHA-256 of the raw key, checked on load.
 * Expiry is the earlier of `not_after` and `metadata.expires` (ISO date or date-time; a date alone
 * means the end of that day, UTC).
 *
 * Also read: the Python tool's format (`"version": "1.0"`, `keys` an array, `public_key` standard
 * base64) and a bare array of entries.
 * @module
 */
import * as nodeCrypto from 'node:crypto'
import type { KeyObject } from 'node:crypto'
import { AuthError } from '../errors.js'
import { fingerprintOf, publicKeyFromRaw } from '../keys/key-pair.js'
import { blockedFingerprintProblem, ed25519PublicKeyProblem, ed25519PublicKeyProblemFast, isBlockedFingerprint, unusableKeyError, type Ed25519KeyProblem } from '../keys/point-check.js'
import type { AllowlistEntry, KeyLookup, LookupResult } from './types.js'
import {
  certAuthorityRecord,
  makeCertAuthorityEntry,
  parseCertAuthorityRecord,
  type CertAuthorityEntry,
  type CertAuthorityLookup,
  type NewCertAuthorityEntry,
} from './cert-authority.js'

const FINGERPRINT_RE = /^[0-9a-f]{64}$/
const FINGERPRINT_ANY_CASE_RE = /^[0-9a-fA-F]{64}$/
// 32 bytes = 43 base64 characters whose last one carries 4 bits (canonical: low 2 bits zero).
const B64URL_KEY_RE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/
const B64STD_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/
const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})$/

const EMPTY_METADATA: Readonly<Record<string, unknown>> = Object.freeze({})
const UNKNOWN: LookupResult = Object.freeze({ status: 'unknown' })

/** What {@link Allowlist.add} accepts. Either `publicKeyRaw` or `fingerprint` (or both, consistent). */
export interface NewAllowlistEntry {
  fingerprint?: string
  publicKeyRaw?: Uint8Array
  description?: string
  metadata?: Record<string, unknown>
  /** ISO time; default now. */
  addedAt?: string
  addedBy?: string
  /** ISO date or date-time. */
  notAfter?: string
}

/** True when `text` is 64 hex characters (any case). */
export function isFingerprint(text: string): boolean {
  return FINGERPRINT_ANY_CASE_RE.test(text)
}

/**
 * Parses an expiry: `YYYY-MM-DD` (end of that day, UTC: the instant the next day starts) or an
 * ISO date-time with a zone. Returns ms since epoch, or undefined when the text is not one.
 */
export function parseExpiry(text: string): number | undefined {
  const d = DATE_RE.exec(text)
  if (d) {
    const y = Number(d[1])
    const m = Number(d[2])
    const day = Number(d[3])
    const start = Date.UTC(y, m - 1, day)
    const check = new Date(start)
    if (check.getUTCFullYear() !== y || check.getUTCMonth() !== m - 1 || check.getUTCDate() !== day) return undefined
    return Date.UTC(y, m - 1, day + 1)
  }
  if (!DATE_TIME_RE.test(text)) return undefined
  const ms = Date.parse(text)
  return Number.isFinite(ms) ? ms : undefined
}

function invalid(source: string, message: string): AuthError {
  return new AuthError('allowlist_invalid', `${source}: ${message}`, { path: source })
}

/** An entry whose key (or, fingerprint-only, whose fingerprint) is not a usable ed25519 public key. */
function unusableKey(source: string, where: string, problem: Ed25519KeyProblem): AuthError {
  return unusableKeyError(problem, `${source}: ${where}`, {
    code: 'allowlist_invalid',
    path: source,
    fix: 'remove this entry and ask its owner for a new key made with mcp-keygen',
  })
}

/** Decodes a raw 32-byte key written as base64url (ours) or standard base64 (Python tool). */
function decodeKeyText(text: string): Buffer | undefined {
  if (B64URL_KEY_RE.test(text)) return Buffer.from(text, 'base64url')
  if (B64STD_KEY_RE.test(text)) return Buffer.from(text, 'base64')
  return undefined
}

// crypto.hash (Node ≥ 20.12) is several times faster than createHash for a 32-byte input.
type OneShotHash = (alg: string, data: Uint8Array, enc: 'hex') => string
const oneShotHash = (nodeCrypto as { hash?: OneShotHash }).hash
const sha256Hex: (data: Uint8Array) => string = oneShotHash ? (data) => oneShotHash('sha256', data, 'hex') : fingerprintOf

/**
 * One entry as handed out (lookup results, get(), entries()). A snapshot: built from the compact
 * table when asked for; the table keeps the ones lookups return, with their imported key.
 */
class StoredEntry implements AllowlistEntry {
  readonly fingerprint: string
  readonly description: string | undefined
  readonly metadata: Readonly<Record<string, unknown>>
  readonly addedAt: string
  readonly addedBy: string | undefined
  readonly notAfter: number | undefined
  /** `not_after` exactly as written (kept for saving). */
  readonly notAfterText: string | undefined
  readonly #keyRaw: Buffer | undefined
  #key: KeyObject | undefined

  constructor(
    fingerprint: string,
    keyRaw: Buffer | undefined,
    description: string | undefined,
    metadata: Readonly<Record<string, unknown>>,
    addedAt: string,
    addedBy: string | undefined,
    notAfter: number | undefined,
    notAfterText: string | undefined,
  ) {
    this.fingerprint = fingerprint
    this.#keyRaw = keyRaw
    this.description = description
    this.metadata = metadata
    this.addedAt = addedAt
    this.addedBy = addedBy
    this.notAfter = notAfter
    this.notAfterText = notAfterText
    this.#key = undefined
  }

  get publicKeyRaw(): Buffer | undefined {
    return this.#keyRaw === undefined ? undefined : Buffer.from(this.#keyRaw)
  }

  get hasKey(): boolean {
    return this.#keyRaw !== undefined
  }

  /** The imported key, imported on first call and cached. */
  keyObject(): KeyObject | undefined {
    if (this.#key === undefined && this.#keyRaw !== undefined) this.#key = publicKeyFromRaw(this.#keyRaw)
    return this.#key
  }

  toRecord(): Record<string, unknown> {
    const record: Record<string, unknown> = {
      fingerprint: this.fingerprint,
      public_key: this.#keyRaw === undefined ? null : this.#keyRaw.toString('base64url'),
      description: this.description ?? null,
      added_at: this.addedAt,
      added_by: this.addedBy ?? null,
      metadata: this.metadata,
    }
    if (this.notAfterText !== undefined) record.not_after = this.notAfterText
    return record
  }

  toJSON(): Record<string, unknown> {
    return this.toRecord()
  }
}

/** Small string interner so a million entries added by the same user share one string. */
class Interner {
  readonly #map = new Map<string, string>()
  get(text: string): string {
    const hit = this.#map.get(text)
    if (hit !== undefined) return hit
    if (this.#map.size < 10_000) this.#map.set(text, text)
    return text
  }
}

/** An entry's fields once validated, before it goes into the table. */
interface ParsedEntry {
  fingerprint: string
  keyRaw: Buffer | undefined
  description: string | undefined
  /** JSON text of a non-empty metadata object, '' for none. */
  metadataText: string
  addedAt: string
  addedBy: string | undefined
  notAfter: number | undefined
  notAfterText: string | undefined
}

/** What is kept of a metadata object: its JSON text and its `expires` (NaN = none). */
interface MetadataInfo {
  readonly text: string
  readonly expires: number
}

const NO_METADATA: MetadataInfo = Object.freeze({ text: '', expires: Number.NaN })

/**
 * `value` and every object and array in it, frozen: an entry's metadata is shared by every request
 * of its key (AuthInfo.extra.metadata, the default scopes), so a handler must not be able to change
 * a nested value (a `scopes` array) that a later request or session then reads.
 */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value as object)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

/** Validates a metadata object; undefined when `expires` is present but not an expiry. */
function metadataInfoOf(md: Record<string, unknown>): MetadataInfo | undefined {
  if (Object.keys(md).length === 0) return NO_METADATA
  const expires = md.expires
  let ms = Number.NaN
  if (expires !== undefined && expires !== null) {
    const parsed = typeof expires === 'string' ? parseExpiry(expires) : undefined
    if (parsed === undefined) return undefined
    ms = parsed
  }
  return { text: JSON.stringify(md), expires: ms }
}

function entryLabel(raw: unknown, fallback: string): string {
  if (raw !== null && typeof raw === 'object' && typeof (raw as { fingerprint?: unknown }).fingerprint === 'string') {
    return (raw as { fingerprint: string }).fingerprint.slice(0, 80)
  }
  return fallback
}

/**
 * Validates one entry as read from a file (our format or the Python tool's). `keyName` is the
 * object key it was stored under, if any. Throws AuthError(allowlist_invalid) naming the entry.
 */
function parseEntry(raw: unknown, keyName: string | undefined, label: string, source: string, interner: Interner): ParsedEntry {
  const where = `entry ${entryLabel(raw, keyName ?? label)}`
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(source, `${where}: must be an object`)
  const r = raw as Record<string, unknown>
  let keyRaw: Buffer | undefined
  let computed: string | undefined
  const pk = r.public_key
  if (pk !== undefined && pk !== null) {
    if (typeof pk !== 'string') throw invalid(source, `${where}: public_key must be a string or null`)
    keyRaw = decodeKeyText(pk)
    if (!keyRaw) throw invalid(source, `${where}: public_key is not a base64 32-byte ed25519 key`)
    const problem = ed25519PublicKeyProblemFast(keyRaw)
    if (problem !== undefined) throw unusableKey(source, where, problem)
    computed = sha256Hex(keyRaw)
  }
  let fingerprint: string
  const fp = r.fingerprint ?? keyName
  if (fp === undefined || fp === null) {
    if (computed === undefined) throw invalid(source, `${where}: needs a fingerprint or a public_key`)
    fingerprint = computed
  } else if (computed !== undefined && fp === computed) {
    fingerprint = computed // the common case: no regex, no case folding
  } else {
    if (typeof fp !== 'string' || !FINGERPRINT_ANY_CASE_RE.test(fp)) {
      throw invalid(source, `${where}: fingerprint must be 64 hex characters`)
    }
    fingerprint = fp.toLowerCase()
    if (computed !== undefined && computed !== fingerprint) {
      throw invalid(source, `${where}: fingerprint does not match public_key (SHA-256 of the key is ${computed})`)
    }
  }
  const blocked = keyRaw === undefined ? blockedFingerprintProblem(fingerprint) : undefined
  if (blocked !== undefined) throw unusableKey(source, `${where} (fingerprint only)`, blocked)
  if (keyName !== undefined && keyName !== fingerprint && keyName.toLowerCase() !== fingerprint) {
    throw invalid(source, `${where}: stored under "${keyName.slice(0, 80)}" but its fingerprint is ${fingerprint}`)
  }
  const description = r.description
  if (description !== undefined && description !== null && typeof description !== 'string') {
    throw invalid(source, `${where}: description must be a string`)
  }
  let metadata: MetadataInfo = NO_METADATA
  const md = r.metadata
  if (md !== undefined && md !== null) {
    if (typeof md !== 'object' || Array.isArray(md)) throw invalid(source, `${where}: metadata must be an object`)
    const info = metadataInfoOf(md as Record<string, unknown>)
    if (info === undefined) throw invalid(source, `${where}: metadata.expires must be an ISO date (YYYY-MM-DD) or date-time`)
    metadata = info
  }
  const addedAt = r.added_at
  if (addedAt !== undefined && addedAt !== null && typeof addedAt !== 'string') throw invalid(source, `${where}: added_at must be a string`)
  const addedBy = r.added_by
  if (addedBy !== undefined && addedBy !== null && typeof addedBy !== 'string') throw invalid(source, `${where}: added_by must be a string`)
  let notAfter: number | undefined
  let notAfterText: string | undefined
  if (r.not_after !== undefined && r.not_after !== null) {
    if (typeof r.not_after !== 'string' || (notAfter = parseExpiry(r.not_after)) === undefined) {
      throw invalid(source, `${where}: not_after must be an ISO date or date-time`)
    }
    notAfterText = r.not_after
  }
  if (!Number.isNaN(metadata.expires)) notAfter = notAfter === undefined ? metadata.expires : Math.min(notAfter, metadata.expires)
  return {
    fingerprint,
    keyRaw,
    description: description ?? undefined,
    metadataText: metadata.text,
    addedAt: interner.get(addedAt ?? ''),
    addedBy: addedBy === undefined || addedBy === null ? undefined : interner.get(addedBy),
    notAfter,
    notAfterText,
  }
}

// ---------------------------------------------------------------------------------------------
// The compact table: per entry 32 bytes of fingerprint and 32 of key in two big buffers, the expiry
// in a Float64Array, the rarely used fields as (mostly shared) strings; an open-addressing index.

const HEX_VALUE = new Int8Array(256).fill(-1)
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i
const B64URL_VALUE = new Int8Array(256).fill(-1)
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((c, i) => (B64URL_VALUE[c.charCodeAt(0)] = i))

/** Decodes 64 lowercase hex characters (bytes or string) into `out[outOff..+32]`; false if not. */
function decodeHex64Bytes(src: Uint8Array, at: number, out: Uint8Array, outOff: number): boolean {
  for (let i = 0; i < 32; i++) {
    const hi = HEX_VALUE[src[at + 2 * i]!]!
    const lo = HEX_VALUE[src[at + 2 * i + 1]!]!
    if ((hi | lo) < 0) return false
    out[outOff + i] = (hi << 4) | lo
  }
  return true
}

function decodeHex64String(text: string, out: Uint8Array): boolean {
  if (text.length !== 64) return false
  for (let i = 0; i < 32; i++) {
    const hi = HEX_VALUE[text.charCodeAt(2 * i) & 0xff]!
    const lo = HEX_VALUE[text.charCodeAt(2 * i + 1) & 0xff]!
    if ((hi | lo) < 0 || text.charCodeAt(2 * i) > 0x7f || text.charCodeAt(2 * i + 1) > 0x7f) return false
    out[i] = (hi << 4) | lo
  }
  return true
}

/** Decodes 43 canonical base64url characters into 32 bytes; false if not. */
function decodeB64Key(src: Uint8Array, at: number, out: Uint8Array): boolean {
  let o = 0
  for (let i = 0; i < 40; i += 4) {
    const a = B64URL_VALUE[src[at + i]!]!
    const b = B64URL_VALUE[src[at + i + 1]!]!
    const c = B64URL_VALUE[src[at + i + 2]!]!
    const d = B64URL_VALUE[src[at + i + 3]!]!
    if ((a | b | c | d) < 0) return false
    const n = (a << 18) | (b << 12) | (c << 6) | d
    out[o++] = n >>> 16
    out[o++] = (n >>> 8) & 0xff
    out[o++] = n & 0xff
  }
  const a = B64URL_VALUE[src[at + 40]!]!
  const b = B64URL_VALUE[src[at + 41]!]!
  const c = B64URL_VALUE[src[at + 42]!]!
  if ((a | b | c) < 0 || (c & 3) !== 0) return false
  const n = (a << 12) | (b << 6) | c
  out[o++] = n >>> 10
  out[o] = (n >>> 2) & 0xff
  return true
}

/** Hash of 32 fingerprint bytes (mixes all of them: fingerprint-only entries are not hashes of keys). */
function hashAt(b: Uint8Array, off: number): number {
  let h = 0x811c9dc5
  for (let i = 0; i < 32; i += 4) {
    h = Math.imul(h ^ (b[off + i]! | (b[off + i + 1]! << 8) | (b[off + i + 2]! << 16) | (b[off + i + 3]! << 24)), 0x01000193)
    h ^= h >>> 15
  }
  return h >>> 0
}

function equal32(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < 32; i++) if (a[aOff + i] !== b[bOff + i]) return false
  return true
}

const LIVE = 1
const HAS_KEY = 2

class EntryTable {
  fp = Buffer.alloc(0)
  key = Buffer.alloc(0)
  flags = new Uint8Array(0)
  notAfter = new Float64Array(0)
  description: (string | undefined)[] = []
  addedAt: string[] = []
  addedBy: (string | undefined)[] = []
  metadata: string[] = []
  notAfterText: (string | undefined)[] = []
  /**
   * The index: slot k is `slots[2k]` (0 empty, else entry index + 1) and `slots[2k + 1]` (the
   * entry's hash, compared before its bytes). Linear probing, at most half full.
   */
  slots = new Int32Array(32)
  /** Indices used (live or removed). */
  count = 0
  live = 0

  /** Slot of the fingerprint `fpBytes[off..off+32)`, or of the empty slot where it would go. */
  #probe(fpBytes: Uint8Array, off: number, hash: number): number {
    const slots = this.slots
    const mask = (slots.length >> 1) - 1
    for (let k = hash & mask; ; k = (k + 1) & mask) {
      const v = slots[2 * k]!
      if (v === 0 || (slots[2 * k + 1] === hash && equal32(this.fp, (v - 1) * 32, fpBytes, off))) return k
    }
  }

  find(fpBytes: Uint8Array, off: number): number {
    return this.slots[2 * this.#probe(fpBytes, off, hashAt(fpBytes, off) | 0)]! - 1
  }

  /**
   * Inserts or overwrites (keeping the position, like Map.set). Fingerprint from `fpBytes[fpOff..]`,
   * key from `keyBytes[keyOff..]` when given. Returns the index.
   */
  set(
    fpBytes: Uint8Array,
    fpOff: number,
    keyBytes: Uint8Array | undefined,
    keyOff: number,
    description: string | undefined,
    addedAt: string,
    addedBy: string | undefined,
    metadata: string,
    notAfter: number,
    notAfterText: string | undefined,
  ): number {
    if (this.live + 1 > this.slots.length >> 2) this.#rehash(this.slots.length)
    const hash = hashAt(fpBytes, fpOff) | 0
    const k = this.#probe(fpBytes, fpOff, hash)
    let i = this.slots[2 * k]! - 1
    if (i < 0) {
      i = this.count++
      if (i >= this.flags.length) this.#grow()
      const fp = this.fp
      for (let b = 0, o = i * 32; b < 32; b++) fp[o + b] = fpBytes[fpOff + b]!
      this.description.push(description)
      this.addedAt.push(addedAt)
      this.addedBy.push(addedBy)
      this.metadata.push(metadata)
      this.notAfterText.push(notAfterText)
      this.slots[2 * k] = i + 1
      this.slots[2 * k + 1] = hash
      this.live++
    } else {
      this.description[i] = description
      this.addedAt[i] = addedAt
      this.addedBy[i] = addedBy
      this.metadata[i] = metadata
      this.notAfterText[i] = notAfterText
    }
    if (keyBytes === undefined) {
      this.flags[i] = LIVE
    } else {
      const key = this.key
      for (let b = 0, o = i * 32; b < 32; b++) key[o + b] = keyBytes[keyOff + b]!
      this.flags[i] = LIVE | HAS_KEY
    }
    this.notAfter[i] = notAfter
    return i
  }

  setKey(i: number, raw: Uint8Array): void {
    this.key.set(raw, i * 32)
    this.flags[i] = LIVE | HAS_KEY
  }

  remove(i: number): void {
    const slots = this.slots
    const mask = (slots.length >> 1) - 1
    let s = this.#probe(this.fp, i * 32, hashAt(this.fp, i * 32) | 0)
    // backward-shift deletion keeps every probe chain unbroken without tombstones
    for (let j = (s + 1) & mask; slots[2 * j] !== 0; j = (j + 1) & mask) {
      const home = slots[2 * j + 1]! & mask
      const stays = s <= j ? s < home && home <= j : s < home || home <= j
      if (!stays) {
        slots[2 * s] = slots[2 * j]!
        slots[2 * s + 1] = slots[2 * j + 1]!
        s = j
      }
    }
    slots[2 * s] = 0
    slots[2 * s + 1] = 0
    this.flags[i] = 0
    this.description[i] = undefined
    this.addedAt[i] = ''
    this.addedBy[i] = undefined
    this.metadata[i] = ''
    this.notAfterText[i] = undefined
    this.live--
  }

  /** Drops removed indices; returns old index → new index (−1 for removed). */
  compact(): Int32Array {
    const map = new Int32Array(this.count).fill(-1)
    let n = 0
    for (let i = 0; i < this.count; i++) {
      if (this.flags[i] === 0) continue
      map[i] = n
      if (n !== i) {
        this.fp.copy(this.fp, n * 32, i * 32, i * 32 + 32)
        this.key.copy(this.key, n * 32, i * 32, i * 32 + 32)
        this.flags[n] = this.flags[i]!
        this.notAfter[n] = this.notAfter[i]!
        this.description[n] = this.description[i]
        this.addedAt[n] = this.addedAt[i]!
        this.addedBy[n] = this.addedBy[i]
        this.metadata[n] = this.metadata[i]!
        this.notAfterText[n] = this.notAfterText[i]
      }
      n++
    }
    this.flags.fill(0, n)
    for (const a of [this.description, this.addedAt, this.addedBy, this.metadata, this.notAfterText]) a.length = n
    this.count = n
    this.#rehash(this.slots.length)
    return map
  }

  /** Sizes the index for `n` entries (avoids rehashing while loading a big file). */
  reserve(n: number): void {
    let length = this.slots.length
    while (length < n * 4) length *= 2
    if (length > this.slots.length) this.#rehash(length)
  }

  fingerprintHex(i: number): string {
    return this.fp.toString('hex', i * 32, i * 32 + 32)
  }

  /** Rebuilds the index with `length` / 2 slots (at least twice the live entries). */
  #rehash(length: number): void {
    while (this.live * 4 >= length) length *= 2
    const slots = new Int32Array(length)
    const mask = (length >> 1) - 1
    for (let i = 0; i < this.count; i++) {
      if (this.flags[i] === 0) continue
      const hash = hashAt(this.fp, i * 32) | 0
      let k = hash & mask
      while (slots[2 * k] !== 0) k = (k + 1) & mask
      slots[2 * k] = i + 1
      slots[2 * k + 1] = hash
    }
    this.slots = slots
  }

  #grow(): void {
    const cap = Math.max(64, this.flags.length * 2)
    const fp = Buffer.allocUnsafeSlow(cap * 32)
    this.fp.copy(fp)
    const key = Buffer.allocUnsafeSlow(cap * 32)
    this.key.copy(key)
    const flags = new Uint8Array(cap)
    flags.set(this.flags)
    const notAfter = new Float64Array(cap)
    notAfter.set(this.notAfter)
    this.fp = fp
    this.key = key
    this.flags = flags
    this.notAfter = notAfter
  }
}

/** Line index → "line L column C" for a character offset. */
function positionLabel(text: string, offset: number): string {
  let line = 1
  let lineStart = 0
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++
    lineStart = i + 1
  }
  return `line ${line} column ${offset - lineStart + 1}`
}

function parseJsonText(text: string, source: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    const message = (err as Error).message
    const m = /at position (\d+)/.exec(message)
    let at: string
    if (m) at = positionLabel(text, Number(m[1]))
    else if (/end of JSON input/.test(message)) at = positionLabel(text, text.length)
    else {
      // "Unexpected token 'x', …": find the token's first occurrence after leading whitespace as a hint.
      const t = /Unexpected token '(.)'/.exec(message)
      const idx = t ? text.indexOf(t[1]!) : -1
      at = idx >= 0 ? positionLabel(text, idx) : 'line 1 column 1'
    }
    throw new AuthError('allowlist_invalid', `${source}: invalid JSON at ${at}: ${message.slice(0, 200)}`, { path: source, cause: err })
  }
}

const TABLE = Symbol('table')
/** Typical bytes of one entry line with a key (fingerprint twice, key, field names); sizes the index. */
export const ENTRY_LINE_BYTES = 300

/** A valid ed25519 public key (RFC 8032 test 1), used to warm up the lookup path. */
const WARM_UP_KEY = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex')
let warmedUp = false

/**
 * Runs the lookup path once on a throwaway list the first time it is called in this process: the
 * first ed25519 import of a process costs ~0.5 ms (OpenSSL set-up) and every function's first call
 * compiles it; neither should land on the first handshake after a load.
 */
export function warmUpLookup(): void {
  if (warmedUp) return
  warmedUp = true
  try {
    const list = new Allowlist('<warm-up>')
    const entry = list.add({ publicKeyRaw: WARM_UP_KEY, description: 'warm-up', metadata: { role: 'warm-up' }, addedAt: '1970-01-01T00:00:00.000Z' })
    list.has(entry.fingerprint, 0)
    list.lookup(entry.fingerprint, 0)
    list.lookup('0'.repeat(64), 0)
  } catch {
    // only a warm-up
  }
}

interface FastSlices {
  latin1Slice?: (start: number, end: number) => string
  utf8Slice?: (start: number, end: number) => string
}

/** `buf[start..end)` as a fresh string (`ascii`: every byte < 0x80, so latin1 decoding is exact). */
function sliceText(buf: Buffer, start: number, end: number, ascii: boolean): string {
  const b = buf as Buffer & FastSlices
  if (ascii) return b.latin1Slice !== undefined ? b.latin1Slice(start, end) : buf.toString('latin1', start, end)
  return b.utf8Slice !== undefined ? b.utf8Slice(start, end) : buf.toString('utf8', start, end)
}

/**
 * The last string read for one field, with its bytes: in a generated or long-lived list most lines
 * repeat the previous line's added_by / added_at / metadata, which then costs a byte compare.
 */
class RecentText {
  #bytes = Buffer.alloc(64)
  #length = -1
  #value = ''

  static of(buf: Buffer, start: number, end: number): RecentText {
    const r = new RecentText()
    r.#remember(buf, start, end, '')
    return r
  }

  same(buf: Buffer, start: number, end: number): boolean {
    const n = end - start
    if (n !== this.#length) return false
    const b = this.#bytes
    for (let i = 0; i < n; i++) if (b[i] !== buf[start + i]) return false
    return true
  }

  get(buf: Buffer, start: number, end: number, ascii: boolean, interner: Interner): string {
    if (this.same(buf, start, end)) return this.#value
    const value = interner.get(sliceText(buf, start, end, ascii))
    this.#remember(buf, start, end, value)
    return value
  }

  #remember(buf: Buffer, start: number, end: number, value: string): void {
    const n = end - start
    if (n > this.#bytes.length) this.#bytes = Buffer.alloc(Math.max(n, this.#bytes.length * 2))
    buf.copy(this.#bytes, 0, start, end)
    this.#length = n
    this.#value = value
  }
}

type ReaderState = 'open' | 'version' | 'updated' | 'keys' | 'entries' | 'close' | 'done' | 'bad'

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1')
const P_FINGERPRINT = latin1('{"fingerprint":"')
const P_PUBLIC_KEY = latin1('","public_key":')
const P_DESCRIPTION = latin1(',"description":')
const P_ADDED_AT = latin1(',"added_at":')
const P_ADDED_BY = latin1(',"added_by":')
const P_METADATA = latin1(',"metadata":')
const P_NOT_AFTER = latin1(',"not_after":')
const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

function startsAt(buf: Uint8Array, at: number, literal: Uint8Array): boolean {
  if (at < 0 || at + literal.length > buf.length) return false
  for (let i = 0; i < literal.length; i++) if (buf[at + i] !== literal[i]) return false
  return true
}

function isNullAt(buf: Uint8Array, at: number): boolean {
  return buf[at] === 0x6e && buf[at + 1] === 0x75 && buf[at + 2] === 0x6c && buf[at + 3] === 0x6c
}

/**
 * Incremental reader for the one-entry-per-line layout {@link Allowlist.toJSON} writes. Works on
 * bytes: an entry line exactly as `toJSON` writes it is decoded without JSON.parse and without an
 * object per entry; any other entry line goes through JSON.parse and the full validation (which
 * produces the error messages). Returns false from {@link pushLine}/{@link push} when the text is
 * not in that layout; the caller then falls back to a whole-text JSON.parse.
 */
export class LineLayoutReader {
  readonly #source: string
  readonly #interner = new Interner()
  readonly #list: Allowlist
  readonly #table: EntryTable
  readonly #fp = Buffer.alloc(32)
  readonly #key = Buffer.alloc(32)
  readonly #metadata = new Map<string, MetadataInfo | undefined>()
  readonly #recentAddedAt = new RecentText()
  readonly #recentAddedBy = new RecentText()
  #recentMetadata: RecentText | undefined
  #recentMetadataInfo: MetadataInfo | undefined
  #state: ReaderState = 'open'
  #expectMore = true
  /** Position after the string last read by #string. */
  #pos = 0

  /** `expectedEntries`: a guess (e.g. from the file size) used to size the index up front. */
  constructor(source: string, expectedEntries = 0) {
    this.#source = source
    this.#list = new Allowlist(source)
    this.#table = this.#list[TABLE]()
    if (expectedEntries > 0) this.#table.reserve(Math.min(expectedEntries, 1 << 26))
  }

  /** Feeds one line (without its newline). False once the layout does not match. */
  push(line: string): boolean {
    const buf = Buffer.from(line, 'utf8')
    return this.pushLine(buf, 0, buf.length)
  }

  /** Feeds the line `buf[start..end)` (UTF-8, without its newline). False once the layout does not match. */
  pushLine(buf: Buffer, start: number, end: number): boolean {
    if (this.#state === 'entries') return this.#entry(buf, start, end)
    const line = buf.toString('utf8', start, end)
    switch (this.#state) {
      case 'open':
        return this.#next(line === '{', 'version')
      case 'version':
        return this.#next(line === '  "version": 1,', 'updated')
      case 'updated':
        return this.#next(/^ {2}"updated_at": "[^"\\]*",$/.test(line), 'keys')
      case 'keys':
        if (line.startsWith(CERT_AUTHORITIES_LINE) && line.endsWith(',')) return this.#next(this.#certAuthorities(line), 'keys')
        if (line === '  "keys": {}') return this.#next(true, 'close')
        return this.#next(line === '  "keys": {', 'entries')
      case 'close':
        return this.#next(line === '}', 'done')
      case 'done':
        return this.#next(line === '', 'done')
      default:
        return false
    }
  }

  /** The allowlist, or undefined when the text was not in the line layout. */
  finish(): Allowlist | undefined {
    if (this.#state !== 'done') return undefined
    if (this.#list.size > 0) warmUpLookup()
    return this.#list
  }

  /** The one-line `cert_authorities` section toJSON writes; false when it is not exactly that. */
  #certAuthorities(line: string): boolean {
    let value: unknown
    try {
      value = JSON.parse(line.slice(CERT_AUTHORITIES_LINE.length, -1))
    } catch {
      return false
    }
    readCertAuthorities(this.#list, value, this.#source)
    return true
  }

  #next(ok: boolean, state: ReaderState): boolean {
    this.#state = ok ? state : 'bad'
    return ok
  }

  #entry(buf: Buffer, s: number, e: number): boolean {
    if (e - s === 3 && buf[s] === 0x20 && buf[s + 1] === 0x20 && buf[s + 2] === CLOSE_BRACE) {
      return this.#next(!this.#expectMore || this.#list.size === 0, 'close')
    }
    if (
      !this.#expectMore ||
      e - s < 75 ||
      buf[s] !== 0x20 ||
      buf[s + 1] !== 0x20 ||
      buf[s + 2] !== 0x20 ||
      buf[s + 3] !== 0x20 ||
      buf[s + 4] !== QUOTE ||
      buf[s + 69] !== QUOTE ||
      buf[s + 70] !== 0x3a /* : */ ||
      buf[s + 71] !== 0x20 ||
      buf[s + 72] !== OPEN_BRACE
    ) {
      return this.#next(false, 'bad')
    }
    const comma = buf[e - 1] === 0x2c
    const bodyEnd = comma ? e - 1 : e
    if (buf[bodyEnd - 1] !== CLOSE_BRACE) return this.#next(false, 'bad')
    this.#expectMore = comma
    if (this.#fast(buf, s, s + 72, bodyEnd)) return true
    const key = buf.toString('utf8', s + 5, s + 69)
    let value: unknown
    try {
      value = JSON.parse(buf.toString('utf8', s + 72, bodyEnd))
    } catch {
      return this.#next(false, 'bad')
    }
    this.#list[TABLE_INSERT](parseEntry(value, key, key, this.#source, this.#interner))
    return true
  }

  /**
   * The entry body `buf[b..end)` exactly as toJSON writes it, stored without JSON.parse. False for
   * anything else (nothing stored then): the caller takes the general path.
   */
  #fast(buf: Buffer, s: number, b: number, end: number): boolean {
    if (!startsAt(buf, b, P_FINGERPRINT)) return false
    let p = b + P_FINGERPRINT.length
    for (let i = 0; i < 64; i++) if (buf[p + i] !== buf[s + 5 + i]) return false
    if (!decodeHex64Bytes(buf, p, this.#fp, 0)) return false
    p += 64
    if (!startsAt(buf, p, P_PUBLIC_KEY)) return false
    p += P_PUBLIC_KEY.length
    let hasKey = false
    if (buf[p] === QUOTE) {
      if (buf[p + 44] !== QUOTE || !decodeB64Key(buf, p + 1, this.#key)) return false
      if (ed25519PublicKeyProblemFast(this.#key) !== undefined) return false // parseEntry names the problem
      // The security check: the fingerprint is the SHA-256 of the key (hex digest: faster than 'buffer').
      const digest = sha256Hex(this.#key)
      for (let i = 0; i < 64; i++) if (digest.charCodeAt(i) !== buf[s + 5 + i]) return false
      hasKey = true
      p += 45
    } else if (isNullAt(buf, p)) {
      if (isBlockedFingerprint(buf.toString('latin1', s + 5, s + 69))) return false // parseEntry names the problem
      p += 4
    } else {
      return false
    }
    if (!startsAt(buf, p, P_DESCRIPTION)) return false
    p += P_DESCRIPTION.length
    let description: string | undefined
    if (isNullAt(buf, p)) {
      p += 4
    } else {
      description = this.#string(buf, p, end)
      if (description === undefined) return false
      p = this.#pos
    }
    if (!startsAt(buf, p, P_ADDED_AT)) return false
    const addedAt = this.#string(buf, p + P_ADDED_AT.length, end, this.#recentAddedAt)
    if (addedAt === undefined) return false
    p = this.#pos
    if (!startsAt(buf, p, P_ADDED_BY)) return false
    p += P_ADDED_BY.length
    let addedBy: string | undefined
    if (isNullAt(buf, p)) {
      p += 4
    } else {
      addedBy = this.#string(buf, p, end, this.#recentAddedBy)
      if (addedBy === undefined) return false
      p = this.#pos
    }
    if (!startsAt(buf, p, P_METADATA)) return false
    p += P_METADATA.length
    // metadata is the last field but for an optional not_after: `,"not_after":"<text>"}`
    let metadataEnd: number
    let notAfterText: string | undefined
    let notAfter = Number.NaN
    if (buf[end - 2] === CLOSE_BRACE) {
      metadataEnd = end - 1
    } else if (buf[end - 2] === QUOTE) {
      let q = end - 3
      while (q > p && buf[q] !== QUOTE) q--
      if (!startsAt(buf, q - P_NOT_AFTER.length, P_NOT_AFTER)) return false
      notAfterText = this.#string(buf, q, end)
      if (notAfterText === undefined || this.#pos !== end - 1) return false
      const ms = parseExpiry(notAfterText)
      if (ms === undefined) return false
      notAfter = ms
      metadataEnd = q - P_NOT_AFTER.length
    } else {
      return false
    }
    if (buf[p] !== OPEN_BRACE || buf[metadataEnd - 1] !== CLOSE_BRACE || metadataEnd <= p) return false
    let metadata: MetadataInfo | undefined
    if (this.#recentMetadata !== undefined && this.#recentMetadata.same(buf, p, metadataEnd)) {
      metadata = this.#recentMetadataInfo
    } else {
      metadata = this.#metadataInfo(buf.toString('utf8', p, metadataEnd))
      this.#recentMetadata = metadata === undefined ? undefined : RecentText.of(buf, p, metadataEnd)
      this.#recentMetadataInfo = metadata
    }
    if (metadata === undefined) return false
    if (!Number.isNaN(metadata.expires) && !(metadata.expires >= notAfter)) notAfter = metadata.expires
    const i = this.#table.set(
      this.#fp,
      0,
      hasKey ? this.#key : undefined,
      0,
      description,
      addedAt,
      addedBy,
      metadata.text,
      notAfter,
      notAfterText,
    )
    this.#list[TABLE_TOUCHED](i)
    return true
  }

  /** A JSON string at `buf[p]` with no escapes (else undefined); sets #pos after its closing quote. */
  #string(buf: Buffer, p: number, limit: number, recent?: RecentText): string | undefined {
    if (buf[p] !== QUOTE) return undefined
    let q = p + 1
    let high = 0
    for (; q < limit; q++) {
      const c = buf[q]!
      if (c === QUOTE) break
      if (c === BACKSLASH || c < 0x20) return undefined
      high |= c
    }
    if (q >= limit) return undefined
    this.#pos = q + 1
    if (recent !== undefined) return recent.get(buf, p + 1, q, high < 0x80, this.#interner)
    return sliceText(buf, p + 1, q, high < 0x80)
  }

  #metadataInfo(text: string): MetadataInfo | undefined {
    if (text === '{}') return NO_METADATA
    const cached = this.#metadata.get(text)
    if (cached !== undefined || this.#metadata.has(text)) return cached
    let info: MetadataInfo | undefined
    try {
      info = metadataInfoOf(JSON.parse(text) as Record<string, unknown>)
    } catch {
      info = undefined
    }
    if (info !== undefined && info.text === text) info = { text, expires: info.expires } // share the one string
    if (this.#metadata.size < 10_000) this.#metadata.set(text, info)
    return info
  }
}

const TABLE_INSERT = Symbol('insert')
const CA_INSERT = Symbol('ca-insert')
/** The start of the one line holding every certificate-authority entry (written before `keys`). */
const CERT_AUTHORITIES_LINE = '  "cert_authorities": '

/** Stores the `cert_authorities` object of a file into `list`. @throws AuthError(allowlist_invalid) */
function readCertAuthorities(list: Allowlist, value: unknown, source: string): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(source, '"cert_authorities" must be an object keyed by fingerprint')
  for (const [name, raw] of Object.entries(value)) list[CA_INSERT](parseCertAuthorityRecord(raw, name, source))
}
const TABLE_TOUCHED = Symbol('touched')

/**
 * Entries indexed by fingerprint. Implements {@link KeyLookup} for the handshake.
 *
 * Stored compactly (see EntryTable): ~100 bytes per entry plus its description. Entry objects are
 * built when asked for; those returned by {@link lookup} are kept, with their imported key.
 */
export class Allowlist implements KeyLookup, CertAuthorityLookup {
  readonly #t = new EntryTable()
  /** Certificate-authority entries by fingerprint (few). */
  readonly #authorities = new Map<string, CertAuthorityEntry>()
  /** Entries built by lookup(), holding their imported KeyObject, by table index. */
  #hot = new Map<number, StoredEntry>()
  readonly #scratch = Buffer.alloc(32)
  /** Where this list came from (for messages). */
  readonly source: string
  /** Called when a lookup completes a fingerprint-only entry; the file owner may persist it. */
  onComplete: ((entry: AllowlistEntry) => void) | undefined

  constructor(source = '<memory>') {
    this.source = source
    this.onComplete = undefined
  }

  get size(): number {
    return this.#t.live
  }

  /** @internal the reader fills the table directly. */
  [TABLE](): EntryTable {
    return this.#t
  }

  /** @internal an index was (re)written: forget what was built from it. */
  [TABLE_TOUCHED](i: number): void {
    if (this.#hot.size !== 0) this.#hot.delete(i)
  }

  /** @internal stores a validated entry (overwrites one with the same fingerprint, keeping its place). */
  [TABLE_INSERT](e: ParsedEntry): number {
    decodeHex64String(e.fingerprint, this.#scratch)
    const i = this.#t.set(this.#scratch, 0, e.keyRaw, 0, e.description, e.addedAt, e.addedBy, e.metadataText, e.notAfter ?? Number.NaN, e.notAfterText)
    this[TABLE_TOUCHED](i)
    return i
  }

  /** Parses any supported format (ours, the Python tool's, a bare array of entries). */
  static fromJSON(text: string, sourcePath = '<memory>'): Allowlist {
    const buf = Buffer.from(text, 'utf8')
    const reader = new LineLayoutReader(sourcePath, Math.floor(buf.length / ENTRY_LINE_BYTES))
    let ok = true
    let start = 0
    while (ok) {
      const nl = buf.indexOf(10, start)
      ok = reader.pushLine(buf, start, nl === -1 ? buf.length : nl)
      if (nl === -1) break
      start = nl + 1
    }
    const fast = ok ? reader.finish() : undefined
    if (fast) return fast
    return Allowlist.fromValue(parseJsonText(text, sourcePath), sourcePath)
  }

  /** Builds an allowlist from an already-parsed JSON value (any supported format). */
  static fromValue(value: unknown, sourcePath = '<memory>'): Allowlist {
    const list = new Allowlist(sourcePath)
    const interner = new Interner()
    let keys: unknown
    if (Array.isArray(value)) {
      keys = value
    } else if (value !== null && typeof value === 'object') {
      const v = value as Record<string, unknown>
      if (v.version !== 1 && v.version !== '1' && v.version !== '1.0' && v.version !== undefined) {
        throw invalid(sourcePath, `unsupported allowlist version ${JSON.stringify(v.version)} (expected 1)`)
      }
      keys = v.keys ?? {}
      if (v.cert_authorities !== undefined && v.cert_authorities !== null) readCertAuthorities(list, v.cert_authorities, sourcePath)
    } else {
      throw invalid(sourcePath, 'expected a JSON object with "version" and "keys"')
    }
    if (Array.isArray(keys)) {
      keys.forEach((raw, i) => {
        const e = parseEntry(raw, undefined, `#${i + 1}`, sourcePath, interner)
        if (list.#indexOf(e.fingerprint) >= 0) throw invalid(sourcePath, `entry ${e.fingerprint}: listed twice`)
        list[TABLE_INSERT](e)
      })
    } else if (keys !== null && typeof keys === 'object') {
      for (const [name, raw] of Object.entries(keys)) list[TABLE_INSERT](parseEntry(raw, name, name, sourcePath, interner))
    } else {
      throw invalid(sourcePath, '"keys" must be an object keyed by fingerprint or an array of entries')
    }
    if (list.size > 0) warmUpLookup()
    return list
  }

  /** Index of a fingerprint (exactly 64 lowercase hex characters), −1 when not listed. */
  #indexOf(fingerprint: string): number {
    if (!decodeHex64String(fingerprint, this.#scratch)) return -1
    return this.#t.find(this.#scratch, 0)
  }

  /** Builds the entry object for index `i`. */
  #build(i: number): StoredEntry {
    const t = this.#t
    const metadataText = t.metadata[i]!
    const notAfter = t.notAfter[i]!
    return new StoredEntry(
      t.fingerprintHex(i),
      (t.flags[i]! & HAS_KEY) !== 0 ? Buffer.from(t.key.subarray(i * 32, i * 32 + 32)) : undefined,
      t.description[i],
      metadataText === '' ? EMPTY_METADATA : deepFreeze(JSON.parse(metadataText) as Record<string, unknown>),
      t.addedAt[i]!,
      t.addedBy[i],
      Number.isNaN(notAfter) ? undefined : notAfter,
      t.notAfterText[i],
    )
  }

  #entryAt(i: number): StoredEntry {
    return this.#hot.get(i) ?? this.#build(i)
  }

  /**
   * Looks up `fingerprint` at `now` (ms). Imports the key once and caches it. A fingerprint-only
   * entry is completed when `publicKeyRaw` hashes to `fingerprint` (then `onComplete` is called).
   */
  lookup(fingerprint: string, now: number, publicKeyRaw?: Uint8Array): LookupResult {
    const i = this.#indexOf(fingerprint)
    if (i < 0) return UNKNOWN
    if (this.#t.notAfter[i]! <= now) return { status: 'expired', entry: this.#entryAt(i) }
    let entry = this.#hot.get(i)
    if (entry === undefined) {
      entry = this.#build(i)
      this.#hot.set(i, entry)
    }
    let key = entry.keyObject()
    if (key === undefined) {
      if (publicKeyRaw === undefined || publicKeyRaw.byteLength !== 32 || fingerprintOf(publicKeyRaw) !== fingerprint) return UNKNOWN
      // The full check (≈0.1 ms, once per entry): a refused key never completes an entry.
      if (ed25519PublicKeyProblem(publicKeyRaw) !== undefined) return UNKNOWN
      this.#t.setKey(i, publicKeyRaw)
      entry = this.#build(i)
      this.#hot.set(i, entry)
      key = entry.keyObject()
      if (key === undefined) return UNKNOWN
      try {
        this.onComplete?.(entry)
      } catch {
        // persisting is best effort; the in-memory entry is complete either way
      }
    }
    return { status: 'ok', entry, publicKey: key }
  }

  /** True when `fingerprint` is listed and not expired at `now`. O(1), allocates nothing. */
  has(fingerprint: string, now: number): boolean {
    const i = this.#indexOf(fingerprint)
    return i >= 0 && !(this.#t.notAfter[i]! <= now)
  }

  get(fingerprint: string): AllowlistEntry | undefined {
    const i = this.#indexOf(fingerprint)
    return i < 0 ? undefined : this.#entryAt(i)
  }

  /** Fingerprints listed here that `next` does not list (expiry aside): what replacing this list by `next` removes. */
  removedIn(next: Allowlist): string[] {
    const a = this.#t
    const b = next.#t
    const out: string[] = []
    for (let i = 0; i < a.count; i++) {
      if (a.flags[i] === 0) continue
      const j = b.find(a.fp, i * 32)
      if (j < 0 || b.flags[j] === 0) out.push(a.fingerprintHex(i))
    }
    // A removed CA ends what it certified: its fingerprint is reported like a removed key's.
    for (const fp of this.#authorities.keys()) if (!next.#authorities.has(fp)) out.push(fp)
    return out
  }

  /** Every entry, in insertion order (an entry replaced in place keeps its position). */
  *entries(): IterableIterator<AllowlistEntry> {
    const t = this.#t
    for (let i = 0; i < t.count; i++) if (t.flags[i] !== 0) yield this.#entryAt(i)
  }

  /**
   * The entry whose fingerprint starts with `prefix` (case-insensitive). Undefined when none;
   * AuthError(allowlist_entry_not_found) when more than one matches.
   */
  findByPrefix(prefix: string): AllowlistEntry | undefined {
    const p = prefix.toLowerCase()
    const exact = this.#indexOf(p)
    if (exact >= 0) return this.#entryAt(exact)
    if (p.length > 64) return undefined
    const t = this.#t
    let found = -1
    let count = 0
    for (let i = 0; i < t.count; i++) {
      if (t.flags[i] !== 0 && t.fingerprintHex(i).startsWith(p)) {
        count++
        if (found < 0) found = i
      }
    }
    if (count > 1) throw new AuthError('allowlist_entry_not_found', `fingerprint prefix ${prefix} is ambiguous: ${count} entries match`)
    return found < 0 ? undefined : this.#entryAt(found)
  }

  /**
   * Adds an entry. Throws AuthError(allowlist_entry_exists) when the fingerprint is listed, unless
   * `replace`; AuthError(allowlist_invalid) for a bad fingerprint, key or expiry.
   */
  add(input: NewAllowlistEntry, options: { replace?: boolean; now?: number } = {}): AllowlistEntry {
    let keyText: string | undefined
    let fingerprint: string
    if (input.publicKeyRaw !== undefined) {
      if (input.publicKeyRaw.byteLength !== 32) throw invalid(this.source, 'an ed25519 public key is 32 bytes')
      const raw = Buffer.from(input.publicKeyRaw)
      const problem = ed25519PublicKeyProblem(raw)
      if (problem !== undefined) throw unusableKey(this.source, 'the new entry', problem)
      keyText = raw.toString('base64url')
      fingerprint = fingerprintOf(raw)
      if (input.fingerprint !== undefined && input.fingerprint.toLowerCase() !== fingerprint) {
        throw invalid(this.source, `fingerprint ${input.fingerprint} does not match the key (${fingerprint})`)
      }
    } else if (input.fingerprint !== undefined) {
      if (!FINGERPRINT_ANY_CASE_RE.test(input.fingerprint)) {
        throw invalid(this.source, `fingerprint must be 64 hex characters (SHA-256 of the raw key), got "${input.fingerprint.slice(0, 80)}"`)
      }
      fingerprint = input.fingerprint.toLowerCase()
      const blocked = blockedFingerprintProblem(fingerprint)
      if (blocked !== undefined) throw unusableKey(this.source, `fingerprint ${fingerprint}`, blocked)
    } else {
      throw new TypeError('add() needs publicKeyRaw or fingerprint')
    }
    if (this.#indexOf(fingerprint) >= 0 && !options.replace) {
      throw new AuthError('allowlist_entry_exists', `${fingerprint} is already on the allowlist (use --replace to overwrite it)`)
    }
    const record: Record<string, unknown> = {
      fingerprint,
      public_key: keyText ?? null,
      description: input.description ?? null,
      added_at: input.addedAt ?? new Date(options.now ?? Date.now()).toISOString(),
      added_by: input.addedBy ?? null,
      metadata: input.metadata ? { ...input.metadata } : {},
    }
    if (input.notAfter !== undefined) record.not_after = input.notAfter
    const i = this[TABLE_INSERT](parseEntry(record, undefined, fingerprint, this.source, new Interner()))
    return this.#entryAt(i)
  }

  /**
   * Adds the key to a fingerprint-only entry, leaving every other field as it is. Returns the
   * entry afterwards (unchanged when it already had its key); undefined when `fingerprint` is not
   * listed or `publicKeyRaw` does not hash to it.
   */
  completeKey(fingerprint: string, publicKeyRaw: Uint8Array): AllowlistEntry | undefined {
    const i = this.#indexOf(fingerprint)
    if (i < 0 || publicKeyRaw.byteLength !== 32 || fingerprintOf(publicKeyRaw) !== fingerprint) return undefined
    if ((this.#t.flags[i]! & HAS_KEY) === 0) {
      this.#t.setKey(i, publicKeyRaw)
      this[TABLE_TOUCHED](i)
    }
    return this.#entryAt(i)
  }

  /** Puts an entry taken from another allowlist (import/merge). */
  put(entry: AllowlistEntry): void {
    const record = entry instanceof StoredEntry ? entry.toRecord() : toFileRecord(entry)
    this[TABLE_INSERT](parseEntry(record, undefined, entry.fingerprint, this.source, new Interner()))
  }

  /** Removes an entry; true when it was listed. */
  remove(fingerprint: string): boolean {
    const i = this.#indexOf(fingerprint.toLowerCase())
    if (i < 0) return false
    this.#t.remove(i)
    this.#hot.delete(i)
    const dead = this.#t.count - this.#t.live
    if (dead > 1024 && dead > this.#t.live) {
      const map = this.#t.compact()
      const hot = new Map<number, StoredEntry>()
      for (const [old, e] of this.#hot) if (map[old]! >= 0) hot.set(map[old]!, e)
      this.#hot = hot
    }
    return true
  }

  // --- certificate authorities (see cert-authority.ts) ---------------------------------------

  /** Every certificate-authority entry, in insertion order. */
  certAuthorities(): readonly CertAuthorityEntry[] {
    return [...this.#authorities.values()]
  }

  getCertAuthority(fingerprint: string): CertAuthorityEntry | undefined {
    return this.#authorities.get(fingerprint.toLowerCase())
  }

  /** Adds a CA entry. Throws allowlist_entry_exists when the CA (or a key with its fingerprint) is listed, unless `replace`. */
  addCertAuthority(input: NewCertAuthorityEntry, options: { replace?: boolean; now?: number } = {}): CertAuthorityEntry {
    const entry = makeCertAuthorityEntry(input, this.source, options.now)
    if (this.#authorities.has(entry.fingerprint) && !options.replace) {
      throw new AuthError('allowlist_entry_exists', `certificate authority ${entry.fingerprint} is already on the allowlist (use --replace to overwrite it)`)
    }
    if (this.#indexOf(entry.fingerprint) >= 0) {
      throw new AuthError('allowlist_entry_exists', `${entry.fingerprint} is on the allowlist as a client key; a key cannot be both (remove it first)`)
    }
    this.#authorities.set(entry.fingerprint, entry)
    return entry
  }

  /** Removes a CA entry; true when it was listed. */
  removeCertAuthority(fingerprint: string): boolean {
    return this.#authorities.delete(fingerprint.toLowerCase())
  }

  /** The CA entry whose fingerprint starts with `prefix`; AuthError(allowlist_entry_not_found) when ambiguous. */
  findCertAuthorityByPrefix(prefix: string): CertAuthorityEntry | undefined {
    const p = prefix.toLowerCase()
    const found = [...this.#authorities.values()].filter((a) => a.fingerprint.startsWith(p))
    if (found.length > 1) throw new AuthError('allowlist_entry_not_found', `fingerprint prefix ${prefix} is ambiguous: ${found.length} certificate authorities match`)
    return found[0]
  }

  /** @internal the readers store parsed CA entries. */
  [CA_INSERT](entry: CertAuthorityEntry): void {
    if (this.#authorities.has(entry.fingerprint)) throw invalid(this.source, `certificate authority ${entry.fingerprint}: listed twice`)
    this.#authorities.set(entry.fingerprint, entry)
  }

  /** Serializes in the version-1 format, one entry per line. */
  toJSON(now: number = Date.now()): string {
    const t = this.#t
    const parts: string[] = ['{\n  "version": 1,\n  "updated_at": ', JSON.stringify(new Date(now).toISOString()), ',\n']
    if (this.#authorities.size > 0) {
      const cas = Object.fromEntries([...this.#authorities.values()].map((a) => [a.fingerprint, certAuthorityRecord(a)]))
      parts.push(CERT_AUTHORITIES_LINE, JSON.stringify(cas), ',\n')
    }
    if (t.live === 0) {
      parts.push('  "keys": {}\n}\n')
      return parts.join('')
    }
    parts.push('  "keys": {\n')
    let first = true
    for (let i = 0; i < t.count; i++) {
      const flags = t.flags[i]!
      if (flags === 0) continue
      const fp = t.fingerprintHex(i)
      const description = t.description[i]
      const addedBy = t.addedBy[i]
      const notAfterText = t.notAfterText[i]
      // Same text as JSON.stringify(entry.toRecord()), without building the entry.
      parts.push(
        `${first ? '' : ',\n'}    "${fp}": {"fingerprint":"${fp}","public_key":${(flags & HAS_KEY) !== 0 ? `"${t.key.toString('base64url', i * 32, i * 32 + 32)}"` : 'null'}` +
          `,"description":${description === undefined ? 'null' : JSON.stringify(description)},"added_at":${JSON.stringify(t.addedAt[i])}` +
          `,"added_by":${addedBy === undefined ? 'null' : JSON.stringify(addedBy)},"metadata":${t.metadata[i] || '{}'}` +
          `${notAfterText === undefined ? '' : `,"not_after":${JSON.stringify(notAfterText)}`}}`,
      )
      first = false
    }
    parts.push('\n  }\n}\n')
    return parts.join('')
  }
}

/** The file record (snake_case) of an entry. */
export function toFileRecord(entry: AllowlistEntry): Record<string, unknown> {
  if (entry instanceof StoredEntry) return entry.toRecord()
  return {
    fingerprint: entry.fingerprint,
    public_key: entry.publicKeyRaw ? Buffer.from(entry.publicKeyRaw).toString('base64url') : null,
    description: entry.description ?? null,
    added_at: entry.addedAt,
    added_by: entry.addedBy ?? null,
    metadata: entry.metadata,
    ...(entry.notAfter !== undefined && entry.metadata.expires === undefined ? { not_after: new Date(entry.notAfter).toISOString() } : {}),
  }
}

/** Whether an entry has its public key (false for fingerprint-only entries). */
export function entryHasKey(entry: AllowlistEntry): boolean {
  return entry instanceof StoredEntry ? entry.hasKey : entry.publicKeyRaw !== undefined
}

export { FINGERPRINT_RE }
