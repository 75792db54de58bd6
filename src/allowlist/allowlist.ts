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
import type { AllowlistEntry, KeyLookup, LookupResult } from './types.js'

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

/** Decodes a raw 32-byte key written as base64url (ours) or standard base64 (Python tool). */
function decodeKeyText(text: string): Buffer | undefined {
  if (B64URL_KEY_RE.test(text)) return Buffer.from(text, 'base64url')
  if (B64STD_KEY_RE.test(text)) return Buffer.from(text, 'base64')
  return undefined
}

// crypto.hash (Node ≥ 20.12) is several times faster than createHash for a 32-byte input.
const oneShotHash = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'hex') => string }).hash
const sha256Hex: (data: Uint8Array) => string = oneShotHash ? (data) => oneShotHash('sha256', data, 'hex') : fingerprintOf

/**
 * One stored entry. The raw key is kept as its base64url text (cheap for very large lists) and
 * imported into a KeyObject once, on first use.
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
  #keyText: string | undefined
  #key: KeyObject | undefined

  constructor(
    fingerprint: string,
    keyText: string | undefined,
    description: string | undefined,
    metadata: Readonly<Record<string, unknown>>,
    addedAt: string,
    addedBy: string | undefined,
    notAfter: number | undefined,
    notAfterText: string | undefined,
  ) {
    this.fingerprint = fingerprint
    this.#keyText = keyText
    this.description = description
    this.metadata = metadata
    this.addedAt = addedAt
    this.addedBy = addedBy
    this.notAfter = notAfter
    this.notAfterText = notAfterText
    this.#key = undefined
  }

  get publicKeyRaw(): Buffer | undefined {
    return this.#keyText === undefined ? undefined : Buffer.from(this.#keyText, 'base64url')
  }

  get hasKey(): boolean {
    return this.#keyText !== undefined
  }

  /** The imported key, imported on first call and cached. */
  keyObject(): KeyObject | undefined {
    if (this.#key === undefined && this.#keyText !== undefined) {
      this.#key = publicKeyFromRaw(Buffer.from(this.#keyText, 'base64url'))
    }
    return this.#key
  }

  /** Completes a fingerprint-only entry with its raw key (caller has checked the hash). */
  complete(raw: Uint8Array): void {
    this.#keyText = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url')
    this.#key = undefined
  }

  toRecord(): Record<string, unknown> {
    const record: Record<string, unknown> = {
      fingerprint: this.fingerprint,
      public_key: this.#keyText ?? null,
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
function parseEntry(raw: unknown, keyName: string | undefined, label: string, source: string, interner: Interner): StoredEntry {
  const where = `entry ${entryLabel(raw, keyName ?? label)}`
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(source, `${where}: must be an object`)
  const r = raw as Record<string, unknown>
  let keyText: string | undefined
  let computed: string | undefined
  const pk = r.public_key
  if (pk !== undefined && pk !== null) {
    if (typeof pk !== 'string') throw invalid(source, `${where}: public_key must be a string or null`)
    const buf = decodeKeyText(pk)
    if (!buf) throw invalid(source, `${where}: public_key is not a base64 32-byte ed25519 key`)
    keyText = pk.length === 43 ? pk : buf.toString('base64url')
    computed = sha256Hex(buf)
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
  if (keyName !== undefined && keyName !== fingerprint && keyName.toLowerCase() !== fingerprint) {
    throw invalid(source, `${where}: stored under "${keyName.slice(0, 80)}" but its fingerprint is ${fingerprint}`)
  }
  const description = r.description
  if (description !== undefined && description !== null && typeof description !== 'string') {
    throw invalid(source, `${where}: description must be a string`)
  }
  let metadata: Readonly<Record<string, unknown>> = EMPTY_METADATA
  const md = r.metadata
  if (md !== undefined && md !== null) {
    if (typeof md !== 'object' || Array.isArray(md)) throw invalid(source, `${where}: metadata must be an object`)
    if (Object.keys(md).length > 0) metadata = Object.freeze(md as Record<string, unknown>)
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
  const expires = metadata.expires
  if (expires !== undefined && expires !== null) {
    const ms = typeof expires === 'string' ? parseExpiry(expires) : undefined
    if (ms === undefined) throw invalid(source, `${where}: metadata.expires must be an ISO date (YYYY-MM-DD) or date-time`)
    notAfter = notAfter === undefined ? ms : Math.min(notAfter, ms)
  }
  return new StoredEntry(
    fingerprint,
    keyText,
    description ?? undefined,
    metadata,
    addedAt ?? '',
    addedBy === undefined || addedBy === null ? undefined : interner.get(addedBy),
    notAfter,
    notAfterText,
  )
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

type ReaderState = 'open' | 'version' | 'updated' | 'keys' | 'entries' | 'close' | 'done' | 'bad'

/**
 * Incremental reader for the one-entry-per-line layout {@link Allowlist.toJSON} writes. Returns
 * false from {@link push}/{@link finish} when the text is not in that exact layout; the caller then
 * falls back to a whole-text JSON.parse (which also produces the proper error message).
 */
export class LineLayoutReader {
  readonly #source: string
  readonly #interner = new Interner()
  readonly #list: Allowlist
  #state: ReaderState = 'open'
  #expectMore = true

  constructor(source: string) {
    this.#source = source
    this.#list = new Allowlist(source)
  }

  /** Feeds one line (without its newline). False once the layout does not match. */
  push(line: string): boolean {
    switch (this.#state) {
      case 'open':
        return this.#next(line === '{', 'version')
      case 'version':
        return this.#next(line === '  "version": 1,', 'updated')
      case 'updated':
        return this.#next(/^ {2}"updated_at": "[^"\\]*",$/.test(line), 'keys')
      case 'keys':
        if (line === '  "keys": {}') return this.#next(true, 'close')
        return this.#next(line === '  "keys": {', 'entries')
      case 'entries': {
        if (line === '  }') return this.#next(!this.#expectMore || this.#list.size === 0, 'close')
        if (!this.#expectMore || !line.startsWith('    "') || line.charCodeAt(69) !== 34 /* " */ || !line.startsWith(': {', 70)) {
          return this.#next(false, 'bad')
        }
        const key = line.slice(5, 69)
        const comma = line.endsWith(',')
        const body = line.slice(72, comma ? -1 : undefined)
        if (!body.endsWith('}')) return this.#next(false, 'bad')
        let value: unknown
        try {
          value = JSON.parse(body)
        } catch {
          return this.#next(false, 'bad')
        }
        this.#expectMore = comma
        this.#list.insertStored(parseEntry(value, key, key, this.#source, this.#interner))
        return true
      }
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
    return this.#state === 'done' ? this.#list : undefined
  }

  #next(ok: boolean, state: ReaderState): boolean {
    this.#state = ok ? state : 'bad'
    return ok
  }
}

/** Entries indexed by fingerprint. Implements {@link KeyLookup} for the handshake. */
export class Allowlist implements KeyLookup {
  readonly #map = new Map<string, StoredEntry>()
  /** Where this list came from (for messages). */
  readonly source: string
  /** Called when a lookup completes a fingerprint-only entry; the file owner may persist it. */
  onComplete: ((entry: AllowlistEntry) => void) | undefined

  constructor(source = '<memory>') {
    this.source = source
    this.onComplete = undefined
  }

  get size(): number {
    return this.#map.size
  }

  /** Parses any supported format (ours, the Python tool's, a bare array of entries). */
  static fromJSON(text: string, sourcePath = '<memory>'): Allowlist {
    const reader = new LineLayoutReader(sourcePath)
    let ok = true
    let start = 0
    while (ok) {
      const nl = text.indexOf('\n', start)
      ok = reader.push(nl === -1 ? text.slice(start) : text.slice(start, nl))
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
    } else {
      throw invalid(sourcePath, 'expected a JSON object with "version" and "keys"')
    }
    if (Array.isArray(keys)) {
      keys.forEach((raw, i) => {
        const e = parseEntry(raw, undefined, `#${i + 1}`, sourcePath, interner)
        if (list.#map.has(e.fingerprint)) throw invalid(sourcePath, `entry ${e.fingerprint}: listed twice`)
        list.#map.set(e.fingerprint, e)
      })
    } else if (keys !== null && typeof keys === 'object') {
      for (const [name, raw] of Object.entries(keys)) {
        const e = parseEntry(raw, name, name, sourcePath, interner)
        list.#map.set(e.fingerprint, e)
      }
    } else {
      throw invalid(sourcePath, '"keys" must be an object keyed by fingerprint or an array of entries')
    }
    return list
  }

  /** @internal used by the line reader. */
  insertStored(entry: StoredEntry): void {
    this.#map.set(entry.fingerprint, entry)
  }

  /**
   * Looks up `fingerprint` at `now` (ms). Imports the key once and caches it. A fingerprint-only
   * entry is completed when `publicKeyRaw` hashes to `fingerprint` (then `onComplete` is called).
   */
  lookup(fingerprint: string, now: number, publicKeyRaw?: Uint8Array): LookupResult {
    const entry = this.#map.get(fingerprint)
    if (entry === undefined) return UNKNOWN
    if (entry.notAfter !== undefined && entry.notAfter <= now) return { status: 'expired', entry }
    let key = entry.keyObject()
    if (key === undefined) {
      if (publicKeyRaw === undefined || publicKeyRaw.byteLength !== 32 || fingerprintOf(publicKeyRaw) !== fingerprint) return UNKNOWN
      entry.complete(publicKeyRaw)
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
    const entry = this.#map.get(fingerprint)
    return entry !== undefined && (entry.notAfter === undefined || now < entry.notAfter)
  }

  get(fingerprint: string): AllowlistEntry | undefined {
    return this.#map.get(fingerprint)
  }

  entries(): IterableIterator<AllowlistEntry> {
    return this.#map.values()
  }

  /**
   * The entry whose fingerprint starts with `prefix` (case-insensitive). Undefined when none;
   * AuthError(allowlist_entry_not_found) when more than one matches.
   */
  findByPrefix(prefix: string): AllowlistEntry | undefined {
    const p = prefix.toLowerCase()
    const exact = this.#map.get(p)
    if (exact) return exact
    let found: StoredEntry | undefined
    let count = 0
    for (const [fp, entry] of this.#map) {
      if (fp.startsWith(p)) {
        count++
        found ??= entry
      }
    }
    if (count > 1) throw new AuthError('allowlist_entry_not_found', `fingerprint prefix ${prefix} is ambiguous: ${count} entries match`)
    return found
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
      publicKeyFromRaw(raw) // rejects bytes that are not a key
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
    } else {
      throw new TypeError('add() needs publicKeyRaw or fingerprint')
    }
    if (this.#map.has(fingerprint) && !options.replace) {
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
    const entry = parseEntry(record, undefined, fingerprint, this.source, new Interner())
    this.#map.set(fingerprint, entry)
    return entry
  }

  /** Puts an entry taken from another allowlist (import/merge). */
  put(entry: AllowlistEntry): void {
    const record = entry instanceof StoredEntry ? entry.toRecord() : toFileRecord(entry)
    this.#map.set(entry.fingerprint, parseEntry(record, undefined, entry.fingerprint, this.source, new Interner()))
  }

  /** Removes an entry; true when it was listed. */
  remove(fingerprint: string): boolean {
    return this.#map.delete(fingerprint.toLowerCase())
  }

  /** Serializes in the version-1 format, one entry per line. */
  toJSON(now: number = Date.now()): string {
    const parts: string[] = ['{\n  "version": 1,\n  "updated_at": ', JSON.stringify(new Date(now).toISOString()), ',\n']
    if (this.#map.size === 0) {
      parts.push('  "keys": {}\n}\n')
      return parts.join('')
    }
    parts.push('  "keys": {\n')
    let first = true
    for (const [fp, entry] of this.#map) {
      if (!first) parts.push(',\n')
      first = false
      parts.push('    "', fp, '": ', JSON.stringify(entry.toRecord()))
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
