/**
 * The audit log: JSON Lines, one event per line, written off the hot path.
 *
 * ```json
 * {"ts":"2025-01-01T00:00:00.000Z","level":"INFO","event":"handshake.success","client_fingerprint":"…","server_fingerprint":"…","duration_ms":2.1,"remote":"127.0.0.1","transport":"http"}
 * ```
 *
 * - `log()` formats the line synchronously and queues it; a writer drains the queue on the next
 *   tick (one write per batch), so a handshake never waits for the disk.
 * - Levels DEBUG < INFO < WARN < ERROR; events below `log_level` are dropped.
 * - `filter_events` (empty = all) accepts our dotted names, the description's names
 *   (`auth_success`, `auth_failure`, `key_validation`; see audit-event.ts) and `section.*`.
 * - Size-based rotation: when a line would take the file past `max_file_size` bytes, the file is
 *   renamed `log → log.1 → log.2 …` up to `backup_count` (the oldest is dropped), and a new file
 *   is started. `max_file_size: 0` disables rotation.
 * - Secret scrubbing: a field whose name looks like a secret (token, session_token, private_key,
 *   secret, mac, proof, signature, password, ticket_key, …) is written as `"[redacted]"`, at any
 *   depth, whatever the caller passes. Byte arrays are never written (`"[N bytes]"`).
 * @module
 */
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { formatTimestamp, systemClock, type Clock } from '../internal/clock.js'
import { printable, terminalSafeJson } from '../internal/text.js'
import { canonicalEventName } from './audit-event.js'

export type AuditLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'

const LEVEL_RANK: Record<AuditLevel, number> = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 }

/** The `audit` section of the configuration (structurally the same as `Config['audit']`). */
export interface AuditSettings {
  enabled: boolean
  log_file: string | null
  log_level: AuditLevel
  max_file_size: number
  backup_count: number
  include_performance: boolean
  filter_events: readonly string[]
}

export interface AuditLoggerOptions extends Partial<AuditSettings> {
  clock?: Clock
  /** Destination when `log_file` is null; default `process.stdout`. */
  stream?: NodeJS.WritableStream
  /** Called when a write fails (the batch is dropped); default: one line on stderr per distinct failure. */
  onError?: (err: Error) => void
}

export interface AuthAttempt {
  clientFingerprint?: string | null
  serverFingerprint?: string | null
  success: boolean
  /** Error code on failure (AuthErrorCode). */
  code?: string
  durationMs: number
  /** Extra fields (remote, transport, endpoint …), written at the top level of the event. */
  metadata?: Readonly<Record<string, unknown>>
}

export interface KeyValidation {
  fingerprint: string
  valid: boolean
  metadata?: Readonly<Record<string, unknown>>
}

export interface PerformanceMetrics {
  count: number
  success_count: number
  failure_count: number
  /** 0..1; 0 when nothing was recorded. */
  success_rate: number
  avg_auth_time_ms: number
  p50_ms: number
  p95_ms: number
  p99_ms: number
}

/** What the handshake and transports need from an audit log. */
export interface AuditSink {
  log(event: string, fields?: Readonly<Record<string, unknown>>, level?: AuditLevel): void
  logAuthAttempt(attempt: AuthAttempt): void
  logKeyValidation(validation: KeyValidation): void
}

// ---------------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------------

/** Exact field names (lowercase, `-`/`_` removed) that are always redacted. */
const SECRET_NAMES = new Set(['mac', 'proof', 'ticketkey', 'seed', 'cookie', 'authorization', 'credentials'])
/** Substrings of field names (lowercase, `-`/`_` removed) that are always redacted. */
const SECRET_PARTS = ['token', 'secret', 'password', 'passphrase', 'privatekey', 'signature', 'ticketkey', 'mackey', 'sessionkey']

export const REDACTED = '[redacted]'

/** True when a field with this name must never be written. */
export function isSecretFieldName(name: string): boolean {
  const n = name.toLowerCase().replace(/[-_\s]/g, '')
  if (SECRET_NAMES.has(n)) return true
  return SECRET_PARTS.some((part) => n.includes(part))
}

function scrub(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'bigint') return value.toString()
    if (typeof value === 'function' || typeof value === 'symbol') return undefined
    return value
  }
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`
  if (value instanceof Date) return Number.isFinite(value.getTime()) ? value.toISOString() : null
  if (value instanceof Error) return { name: value.name, message: value.message, ...('code' in value ? { code: (value as { code: unknown }).code } : {}) }
  if (depth >= 6) return '[nested]'
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue
    out[k] = isSecretFieldName(k) ? REDACTED : scrub(v, depth + 1)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Logger
// ---------------------------------------------------------------------------------------------

const RESERVED = new Set(['ts', 'level', 'event'])
const RING_SIZE = 10_000

const DEFAULTS: AuditSettings = {
  enabled: true,
  log_file: null,
  log_level: 'INFO',
  max_file_size: 10 * 1024 * 1024,
  backup_count: 5,
  include_performance: true,
  filter_events: [],
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[rank - 1]!
}

export class AuditLogger implements AuditSink {
  readonly settings: Readonly<AuditSettings>
  private readonly clock: Clock
  private readonly stream: NodeJS.WritableStream | undefined
  private readonly onError: (err: Error) => void
  private readonly minRank: number
  private readonly exactFilter: ReadonlySet<string> | undefined
  private readonly prefixFilter: readonly string[]

  private pending: string[] = []
  private scheduled = false
  private draining: Promise<void> | undefined
  private handle: FileHandle | undefined
  private size = 0
  private closed = false
  private readonly reportedErrors = new Set<string>()

  private count = 0
  private successCount = 0
  private totalMs = 0
  private readonly ring = new Float64Array(RING_SIZE)
  private ringLength = 0
  private ringNext = 0

  constructor(options: AuditLoggerOptions = {}) {
    const s: AuditSettings = {
      enabled: options.enabled ?? DEFAULTS.enabled,
      log_file: options.log_file === undefined ? DEFAULTS.log_file : options.log_file,
      log_level: options.log_level ?? DEFAULTS.log_level,
      max_file_size: options.max_file_size ?? DEFAULTS.max_file_size,
      backup_count: options.backup_count ?? DEFAULTS.backup_count,
      include_performance: options.include_performance ?? DEFAULTS.include_performance,
      filter_events: Object.freeze([...(options.filter_events ?? DEFAULTS.filter_events)]),
    }
    if (!(s.log_level in LEVEL_RANK)) throw new RangeError(`log_level must be one of DEBUG, INFO, WARN, ERROR, got ${String(s.log_level)}`)
    if (!Number.isSafeInteger(s.max_file_size) || s.max_file_size < 0) throw new RangeError('max_file_size must be a non-negative integer (bytes)')
    if (!Number.isSafeInteger(s.backup_count) || s.backup_count < 0) throw new RangeError('backup_count must be a non-negative integer')
    if (s.log_file !== null && (typeof s.log_file !== 'string' || s.log_file === '')) throw new TypeError('log_file must be a path or null')
    this.settings = Object.freeze(s)
    this.clock = options.clock ?? systemClock
    this.stream = s.log_file === null ? (options.stream ?? process.stdout) : undefined
    this.onError = options.onError ?? ((err) => this.reportOnce(err))
    this.minRank = LEVEL_RANK[s.log_level]
    if (s.filter_events.length === 0) {
      this.exactFilter = undefined
      this.prefixFilter = []
    } else {
      const names = s.filter_events.map(canonicalEventName)
      this.exactFilter = new Set(names.filter((n) => !n.endsWith('*')))
      this.prefixFilter = names.filter((n) => n.endsWith('*')).map((n) => n.slice(0, -1))
    }
  }

  /** A logger for the `audit` section of a loaded Config. */
  static fromConfig(audit: Readonly<AuditSettings>, extra: Omit<AuditLoggerOptions, keyof AuditSettings> = {}): AuditLogger {
    return new AuditLogger({ ...audit, ...extra })
  }

  /** True when an event with this name and level would be written. */
  isEnabled(event: string, level: AuditLevel = 'INFO'): boolean {
    if (!this.settings.enabled || this.closed) return false
    if ((LEVEL_RANK[level] ?? 0) < this.minRank) return false
    if (this.exactFilter === undefined) return true
    const name = event.toLowerCase()
    return this.exactFilter.has(name) || this.prefixFilter.some((p) => name.startsWith(p))
  }

  /**
   * Queues one event. Never throws for odd field values; never blocks on I/O.
   * `handshake.success` / `handshake.failure` events also feed the performance metrics
   * (with their `duration_ms`), so callers may use either this or {@link logAuthAttempt}.
   */
  log(event: string, fields: Readonly<Record<string, unknown>> = {}, level: AuditLevel = 'INFO'): void {
    if (event === 'handshake.success' || event === 'handshake.failure') {
      const ms = fields.duration_ms
      this.recordDuration(typeof ms === 'number' ? ms : NaN, event === 'handshake.success')
    }
    this.emit(event, fields, level)
  }

  private emit(event: string, fields: Readonly<Record<string, unknown>>, level: AuditLevel): void {
    if (!this.isEnabled(event, level)) return
    const record: Record<string, unknown> = { ts: formatTimestamp(this.clock()), level, event }
    for (const [key, value] of Object.entries(fields)) {
      if (value === undefined || RESERVED.has(key)) continue
      if (key === 'duration_ms' && !this.settings.include_performance) continue
      record[key] = isSecretFieldName(key) ? REDACTED : scrub(value, 1)
    }
    let line: string
    try {
      line = JSON.stringify(record)
    } catch {
      line = JSON.stringify({ ts: record.ts, level, event, error: 'unserializable fields' })
    }
    // Peer text (an audience, a field name) may hold C1 controls or bidi marks that JSON leaves raw.
    this.enqueue(terminalSafeJson(line) + '\n')
  }

  /** A completed or failed handshake: `handshake.success` (INFO) or `handshake.failure` (WARN). Records metrics. */
  logAuthAttempt(attempt: AuthAttempt): void {
    this.recordDuration(attempt.durationMs, attempt.success)
    const fields: Record<string, unknown> = {
      client_fingerprint: attempt.clientFingerprint ?? undefined,
      server_fingerprint: attempt.serverFingerprint ?? undefined,
      code: attempt.code,
      duration_ms: Number.isFinite(attempt.durationMs) ? Math.round(attempt.durationMs * 1000) / 1000 : undefined,
    }
    for (const [k, v] of Object.entries(attempt.metadata ?? {})) if (!(k in fields)) fields[k] = v
    this.emit(attempt.success ? 'handshake.success' : 'handshake.failure', fields, attempt.success ? 'INFO' : 'WARN')
  }

  /** A key checked against the allowlist: `key.validation` (INFO when valid, WARN otherwise). */
  logKeyValidation(validation: KeyValidation): void {
    const fields: Record<string, unknown> = { fingerprint: validation.fingerprint, valid: validation.valid }
    for (const [k, v] of Object.entries(validation.metadata ?? {})) if (!(k in fields)) fields[k] = v
    this.log('key.validation', fields, validation.valid ? 'INFO' : 'WARN')
  }

  /** Running totals plus percentiles over the last 10 000 handshake durations. */
  getPerformanceMetrics(): PerformanceMetrics {
    const sorted = this.ring.slice(0, this.ringLength).sort()
    return {
      count: this.count,
      success_count: this.successCount,
      failure_count: this.count - this.successCount,
      success_rate: this.count === 0 ? 0 : this.successCount / this.count,
      avg_auth_time_ms: this.count === 0 ? 0 : this.totalMs / this.count,
      p50_ms: percentile(sorted, 50),
      p95_ms: percentile(sorted, 95),
      p99_ms: percentile(sorted, 99),
    }
  }

  /** Resolves once every queued line has been written (or dropped after a write error). */
  async flush(): Promise<void> {
    while (this.pending.length > 0 || this.draining !== undefined) await this.drain()
  }

  /** Flushes, then closes the file. Later events are dropped. Idempotent. */
  async close(): Promise<void> {
    await this.flush()
    this.closed = true
    const handle = this.handle
    this.handle = undefined
    if (handle) await handle.close().catch(() => {})
  }

  // -------------------------------------------------------------------------------------------

  private recordDuration(ms: number, success: boolean): void {
    this.count++
    if (success) this.successCount++
    if (!Number.isFinite(ms) || ms < 0) return
    this.totalMs += ms
    this.ring[this.ringNext] = ms
    this.ringNext = (this.ringNext + 1) % RING_SIZE
    if (this.ringLength < RING_SIZE) this.ringLength++
  }

  private enqueue(line: string): void {
    this.pending.push(line)
    if (this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      void this.drain()
    })
  }

  private drain(): Promise<void> {
    if (this.draining !== undefined) return this.draining
    const run = async (): Promise<void> => {
      try {
        while (this.pending.length > 0) {
          const batch = this.pending
          this.pending = []
          try {
            await this.writeBatch(batch)
          } catch (err) {
            await this.dropHandle()
            this.onError(err instanceof Error ? err : new Error(String(err)))
          }
        }
      } finally {
        this.draining = undefined
      }
    }
    this.draining = run()
    return this.draining
  }

  private async writeBatch(lines: string[]): Promise<void> {
    if (this.stream !== undefined) {
      const stream = this.stream
      const chunk = lines.join('')
      await new Promise<void>((resolve, reject) => {
        stream.write(chunk, (err?: Error | null) => (err ? reject(err) : resolve()))
      })
      return
    }
    const max = this.settings.max_file_size
    let chunk: string[] = []
    let chunkBytes = 0
    const handle = await this.openFile()
    let current = handle
    for (const line of lines) {
      const bytes = Buffer.byteLength(line)
      if (max > 0 && this.size + chunkBytes > 0 && this.size + chunkBytes + bytes > max) {
        if (chunk.length > 0) {
          await current.write(chunk.join(''))
          this.size += chunkBytes
          chunk = []
          chunkBytes = 0
        }
        current = await this.rotate()
      }
      chunk.push(line)
      chunkBytes += bytes
    }
    if (chunk.length > 0) {
      await current.write(chunk.join(''))
      this.size += chunkBytes
    }
  }

  private async openFile(): Promise<FileHandle> {
    if (this.handle) return this.handle
    const file = this.settings.log_file!
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
    const handle = await open(file, 'a', 0o600)
    this.size = (await handle.stat()).size
    this.handle = handle
    return handle
  }

  private async rotate(): Promise<FileHandle> {
    const file = this.settings.log_file!
    await this.dropHandle()
    const n = this.settings.backup_count
    const ignoreMissing = (err: unknown): void => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    if (n === 0) {
      await unlink(file).catch(ignoreMissing)
    } else {
      // log.(n-1) → log.n overwrites (drops) the oldest.
      for (let i = n - 1; i >= 1; i--) await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(ignoreMissing)
      await rename(file, `${file}.1`).catch(ignoreMissing)
    }
    return this.openFile()
  }

  private async dropHandle(): Promise<void> {
    const handle = this.handle
    this.handle = undefined
    this.size = 0
    if (handle) await handle.close().catch(() => {})
  }

  private reportOnce(err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message
    if (this.reportedErrors.has(code)) return
    this.reportedErrors.add(code)
    const where = this.settings.log_file ?? 'stdout'
    process.stderr.write(`audit: cannot write ${printable(where)}: ${printable(err.message)}\n`)
  }
}
