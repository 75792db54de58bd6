/**
 * The configuration schema (zod v4): every YAML key, its type, its default, and the
 * formatting of validation problems into one-line, path-named messages.
 *
 * Every object is strict, so a misspelt key is an error (with a "did you mean" suggestion),
 * never a silently ignored setting. Every key is optional in the file; the defaults below are
 * the ONLY place defaults live (`defaultConfig()` is this schema applied to `{}`).
 *
 * | key                                | default                    | notes                                            |
 * |------------------------------------|----------------------------|--------------------------------------------------|
 * | keys.private_key_path              | ./keys/private.pem         | relative paths resolve against the config's dir  |
 * | keys.public_key_path               | ./keys/public.pem          |                                                  |
 * | keys.auto_generate                 | false                      |                                                  |
 * | keys.certificate_path              | null                       | OpenSSH certificate (<key>-cert.pub) to present  |
 * | keys.agent                         | false                      | sign through ssh-agent ($SSH_AUTH_SOCK)          |
 * | keys.next_private_key_path         | null                       | server-key rotation: the successor key; null =   |
 * |                                    |                            | private_key_path with .next before .pem          |
 * | keys.previous_private_key_path     | null                       | the retired key, kept after a switch; null =     |
 * |                                    |                            | private_key_path with .previous before .pem      |
 * | acl.allowlist_path                 | ./keys/allowlist.json      |                                                  |
 * | acl.auto_create                    | true                       |                                                  |
 * | acl.metadata_required              | false                      |                                                  |
 * | acl.tofu.enabled                   | false                      |                                                  |
 * | acl.tofu.prompt_unknown            | true                       |                                                  |
 * | acl.tofu.remember_decisions        | true                       |                                                  |
 * | auth.timestamp_tolerance           | 300                        | seconds                                          |
 * | auth.nonce_cache_size              | 10000                      | max live nonces (full = server_busy)             |
 * | auth.nonce_cache_ttl               | 3600                       | seconds                                          |
 * | auth.challenge_ttl                 | 60                         | seconds                                          |
 * | auth.session_ttl                   | 900                        | seconds                                          |
 * | auth.session_binding               | proof                      | proof / bearer (bearer over http/ws = warning)   |
 * | auth.proof_window                  | 30                         | seconds                                          |
 * | auth.replay_window_sessions        | 100000                     | sessions with a live request window (in memory)  |
 * | auth.fleet_clock_skew              | 5                          | seconds members' clocks may differ (Redis TTLs)  |
 * | auth.audience                      | null                       | URL or list; null = this machine's names + port  |
 * | auth.nonce_store.type              | memory                     | memory / redis                                   |
 * | auth.nonce_store.url               | redis://127.0.0.1:6379     |                                                  |
 * | auth.nonce_store.key_prefix        | mcp-pki:                   |                                                  |
 * | auth.nonce_store.eviction_checked  | false                      | true = "my Redis runs noeviction" where CONFIG   |
 * |                                    |                            | is disabled (managed Redis); see operations.md   |
 * | auth.ticket_key                    | null                       | base64url of exactly 32 bytes when set           |
 * | auth.ticket_key_rotation           | null                       | seconds; random rotating ticket keys (forward    |
 * |                                    |                            | secrecy; one process only, not with ticket_key)  |
 * | auth.revoked_keys_file             | null                       | OpenSSH KRL (ssh-keygen -k), like sshd's         |
 * |                                    |                            | RevokedKeys; reloaded when it changes            |
 * | auth.rate_limit.per_address        | 50                         | per second, 0 = off                              |
 * | auth.rate_limit.per_key            | 20                         | per second, 0 = off                              |
 * | auth.rate_limit.burst              | 100                        |                                                  |
 * | audit.enabled                      | true                       |                                                  |
 * | audit.log_file                     | null                       | null = stdout                                    |
 * | audit.log_level                    | INFO                       | DEBUG / INFO / WARN / ERROR                      |
 * | audit.max_file_size                | 10MB (10485760)            | integer bytes or "512KB", "10MB", "1GB" (KB=1024)|
 * | audit.backup_count                 | 5                          |                                                  |
 * | audit.include_performance          | true                       |                                                  |
 * | audit.filter_events                | []                         | empty = all events                               |
 * | transport.type                     | http                       | http / https / ws / wss                          |
 * | transport.host                     | 127.0.0.1                  | loopback by default; 0.0.0.0 is accepted         |
 * | transport.port                     | 8443                       | 0 = any free port                                |
 * | transport.timeout                  | 30                         | seconds                                          |
 * | transport.max_connections          | 100                        |                                                  |
 * | transport.retry_attempts           | 3                          |                                                  |
 * | transport.retry_delay              | 1.0                        | seconds                                          |
 * | transport.max_body_size            | 65536                      | bytes                                            |
 * | transport.workers                  | 1                          | processes on one port; "auto" = number of cores  |
 * | transport.ssl.cert_file            | null                       | required for https / wss                         |
 * | transport.ssl.key_file             | null                       | required for https / wss                         |
 * | transport.ssl.ca_file              | null                       |                                                  |
 * | transport.ssl.verify_mode          | none                       | none / optional / required                       |
 * | metrics.enabled                    | false                      | serve GET /metrics on its own listener           |
 * | metrics.host                       | 127.0.0.1                  | never the public port; loopback by default       |
 * | metrics.port                       | 9464                       | must differ from transport.port                  |
 * | servers                            | {}                         | name → {url (required), fingerprint, audience}   |
 * | authorization                      | (none)                     | per-tool policy, docs/authorization.md           |
 *
 * @module
 */
import { z } from 'zod'
import { fromB64u } from '../internal/bytes.js'
import { isBlockedFingerprint } from '../keys/point-check.js'
import type { Config } from './types.js'
import { authorizationSectionSchema } from '../authz/policy-schema.js'

// ---------------------------------------------------------------------------------------------
// Leaf schemas. A message that starts with "expected" gets `, got <value>` appended by the
// formatter; messages for secret-bearing keys do not start with "expected" so the value is
// never echoed.
// ---------------------------------------------------------------------------------------------

function positiveInt() {
  const error = 'expected a positive integer'
  return z.number({ error }).int({ error }).positive({ error })
}

function nonNegativeInt() {
  const error = 'expected a non-negative integer'
  return z.number({ error }).int({ error }).nonnegative({ error })
}

function positiveNumber() {
  const error = 'expected a positive number'
  return z.number({ error }).positive({ error })
}

function nonNegativeNumber() {
  const error = 'expected a non-negative number'
  return z.number({ error }).nonnegative({ error })
}

function bool() {
  return z.boolean({ error: 'expected true or false' })
}

function nonEmptyString(what: string) {
  const error = `expected ${what}`
  return z.string({ error }).min(1, { error })
}

function nullablePath() {
  const error = 'expected a file path or null'
  return z.string({ error }).min(1, { error }).nullable()
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `expected one of ${values.map((v) => JSON.stringify(v)).join(', ')}` })
}

/** Port number; 0 means "any free port" (useful for tests). */
export function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 65535
}

/** Worker processes: a positive integer or "auto" (one per core). */
function workersSchema() {
  const error = 'expected a positive integer or "auto"'
  return z.union([z.number({ error }).int({ error }).positive({ error }), z.literal('auto', { error })], { error })
}

const portSchema = z.number({ error: 'expected a port number 0-65535' }).refine(isPort, { error: 'expected a port number 0-65535' })

const SIZE_UNITS: Record<string, number> = { '': 1, B: 1, KB: 1024, K: 1024, MB: 1024 ** 2, M: 1024 ** 2, GB: 1024 ** 3, G: 1024 ** 3 }

/** Parses a size: a non-negative integer (bytes) or a string like "512KB", "10MB", "1GB" (KB = 1024). */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*$/i.exec(value)
  if (!m) return undefined
  const unit = SIZE_UNITS[(m[2] ?? '').toUpperCase()]
  if (unit === undefined) return undefined
  const bytes = Math.round(Number(m[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

const sizeSchema = z.unknown().transform((value, ctx) => {
  const bytes = parseSize(value)
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a size in bytes or a string like "512KB", "10MB", "1GB"' })
    return z.NEVER
  }
  return bytes
})

const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'] as const
const logLevelSchema = z
  .string({ error: 'expected one of "DEBUG", "INFO", "WARN", "ERROR"' })
  .transform((value, ctx) => {
    const upper = value.toUpperCase()
    const level = upper === 'WARNING' ? 'WARN' : upper
    if (!(LOG_LEVELS as readonly string[]).includes(level)) {
      ctx.addIssue({ code: 'custom', message: 'expected one of "DEBUG", "INFO", "WARN", "ERROR"' })
      return z.NEVER
    }
    return level as (typeof LOG_LEVELS)[number]
  })

/** True for a base64url (no padding) string that decodes to exactly 32 bytes. */
export function isTicketKey(value: string): boolean {
  const bytes = fromB64u(value)
  return bytes !== undefined && bytes.length === 32
}

const ticketKeySchema = z
  .string({ error: 'must be a base64url string of exactly 32 bytes, or null' })
  .refine(isTicketKey, { error: 'must be base64url (no padding) of exactly 32 bytes (value not shown)' })
  .refine((v) => !isTicketKey(v) || new Set(fromB64u(v)).size >= 12, {
    error: 'looks like a placeholder, not a random key (too few distinct bytes); make one with: openssl rand 32 | basenc --base64url | tr -d = (value not shown)',
  })
  .nullable()

/** True for a redis:// or rediss:// URL. */
export function isRedisUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return url.protocol === 'redis:' || url.protocol === 'rediss:'
  } catch {
    return false
  }
}

const redisUrlSchema = z
  .string({ error: 'must be a redis:// or rediss:// URL' })
  .refine(isRedisUrl, { error: 'must be a redis:// or rediss:// URL (value not shown)' })

/** True for an absolute http, https, ws or wss URL. */
export function isServerUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return ['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol) && url.hostname !== ''
  } catch {
    return false
  }
}

const serverUrlSchema = z
  .string({ error: 'expected an http, https, ws or wss URL' })
  .refine(isServerUrl, { error: 'expected an http, https, ws or wss URL' })

const FINGERPRINT = /^[0-9a-fA-F]{64}$/
const fingerprintSchema = z
  .string({ error: 'expected a 64-character hex SHA-256 fingerprint or null' })
  .regex(FINGERPRINT, { error: 'expected a 64-character hex SHA-256 fingerprint or null' })
  .transform((v) => v.toLowerCase())
  .refine((v) => !isBlockedFingerprint(v), {
    error: 'this is the fingerprint of a small-order or non-canonical ed25519 key, not a usable server key; pin the fingerprint of the server key made with mcp-keygen',
  })
  .nullable()

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

function section(error: string) {
  return { error: `expected a mapping (${error})` }
}

const keysSchema = z.strictObject(
  {
    private_key_path: nonEmptyString('a file path').default('./keys/private.pem'),
    public_key_path: nonEmptyString('a file path').default('./keys/public.pem'),
    auto_generate: bool().default(false),
    certificate_path: nullablePath().default(null),
    agent: bool().default(false),
    next_private_key_path: nullablePath().default(null),
    previous_private_key_path: nullablePath().default(null),
  },
  section('key: value pairs'),
)

const tofuSchema = z.strictObject(
  {
    enabled: bool().default(false),
    prompt_unknown: bool().default(true),
    remember_decisions: bool().default(true),
  },
  section('key: value pairs'),
)

const aclSchema = z.strictObject(
  {
    allowlist_path: nonEmptyString('a file path').default('./keys/allowlist.json'),
    auto_create: bool().default(true),
    metadata_required: bool().default(false),
    tofu: tofuSchema.prefault({}),
  },
  section('key: value pairs'),
)

const nonceStoreSchema = z.strictObject(
  {
    type: oneOf(['memory', 'redis'] as const).default('memory'),
    url: redisUrlSchema.default('redis://127.0.0.1:6379'),
    key_prefix: z.string({ error: 'expected a string' }).default('mcp-pki:'),
    eviction_checked: bool().default(false),
  },
  section('key: value pairs'),
)

const rateLimitSchema = z.strictObject(
  {
    per_address: nonNegativeInt().default(50),
    per_key: nonNegativeInt().default(20),
    burst: positiveInt().default(100),
  },
  section('key: value pairs'),
)

const authSchema = z.strictObject(
  {
    timestamp_tolerance: positiveInt().default(300),
    nonce_cache_size: positiveInt().default(10000),
    nonce_cache_ttl: positiveInt().default(3600),
    challenge_ttl: positiveInt().default(60),
    session_ttl: positiveInt().default(900),
    session_binding: oneOf(['proof', 'bearer'] as const).default('proof'),
    proof_window: positiveInt().default(30),
    replay_window_sessions: positiveInt().default(100_000),
    fleet_clock_skew: z.number({ error: 'expected a number of seconds' }).int({ error: 'expected a whole number of seconds' }).min(0, { error: 'expected 0 or more seconds' }).default(5),
    audience: z
      .union([nonEmptyString('a URL, a list of URLs or null'), z.array(nonEmptyString('a non-empty string'), { error: 'expected a URL, a list of URLs or null' }).min(1, { error: 'expected at least one audience (or null)' })], {
        error: 'expected a URL, a list of URLs or null',
      })
      .nullable()
      .default(null),
    nonce_store: nonceStoreSchema.prefault({}),
    ticket_key: ticketKeySchema.default(null),
    ticket_key_rotation: positiveInt().nullable().default(null),
    revoked_keys_file: nullablePath().default(null),
    rate_limit: rateLimitSchema.prefault({}),
  },
  section('key: value pairs'),
)

const auditSchema = z.strictObject(
  {
    enabled: bool().default(true),
    log_file: nullablePath().default(null),
    log_level: logLevelSchema.default('INFO'),
    max_file_size: sizeSchema.default(10 * 1024 * 1024),
    backup_count: nonNegativeInt().default(5),
    include_performance: bool().default(true),
    filter_events: z
      .array(nonEmptyString('an event name'), { error: 'expected a list of event names' })
      .default(() => []),
  },
  section('key: value pairs'),
)

const sslSchema = z.strictObject(
  {
    cert_file: nullablePath().default(null),
    key_file: nullablePath().default(null),
    ca_file: nullablePath().default(null),
    verify_mode: oneOf(['none', 'optional', 'required'] as const).default('none'),
  },
  section('key: value pairs'),
)

export const TRANSPORT_TYPES = ['http', 'https', 'ws', 'wss'] as const

const transportSchema = z.strictObject(
  {
    type: oneOf(TRANSPORT_TYPES).default('http'),
    host: nonEmptyString('a host name or address').default('127.0.0.1'),
    port: portSchema.default(8443),
    timeout: positiveNumber().default(30),
    max_connections: positiveInt().default(100),
    retry_attempts: nonNegativeInt().default(3),
    retry_delay: nonNegativeNumber().default(1.0),
    max_body_size: positiveInt().default(65536),
    workers: workersSchema().default(1),
    ssl: sslSchema.prefault({}),
  },
  section('key: value pairs'),
)

const metricsSchema = z.strictObject(
  {
    enabled: bool().default(false),
    host: nonEmptyString('a host name or address').default('127.0.0.1'),
    port: portSchema.default(9464),
  },
  section('enabled, host, port'),
)

const serverEntrySchema = z.strictObject(
  {
    url: serverUrlSchema,
    fingerprint: fingerprintSchema.default(null),
    audience: nonEmptyString('a non-empty string or null').nullable().default(null),
  },
  section('url, fingerprint, audience'),
)

const serversSchema = z.record(z.string(), serverEntrySchema, section('server name: {url, fingerprint}'))

/** The whole configuration file. */
export const configSchema = z.strictObject(
  {
    keys: keysSchema.prefault({}),
    acl: aclSchema.prefault({}),
    auth: authSchema.prefault({}),
    audit: auditSchema.prefault({}),
    transport: transportSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    servers: serversSchema.prefault({}),
    authorization: z.lazy(() => authorizationSectionSchema).optional(),
  },
  { error: 'expected a mapping of sections (keys, acl, auth, audit, transport, metrics, servers, authorization)' },
)

// Compile-time check: the schema's output is exactly the Config interface.
type SchemaOutput = z.output<typeof configSchema>
const _configMatches: [SchemaOutput] extends [Config] ? ([Config] extends [SchemaOutput] ? true : false) : false = true
void _configMatches

/** Sections and sub-sections whose `null` value (written `auth:` with nothing under it) means "all defaults". */
const NULLABLE_SECTIONS: readonly (readonly string[])[] = [
  ['keys'],
  ['acl'],
  ['acl', 'tofu'],
  ['auth'],
  ['auth', 'nonce_store'],
  ['auth', 'rate_limit'],
  ['audit'],
  ['transport'],
  ['transport', 'ssl'],
  ['metrics'],
  ['servers'],
]

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Drops sections given as YAML null so they get their defaults. Mutates and returns `raw`. */
function dropNullSections(raw: unknown): unknown {
  if (!isPlainObject(raw)) return raw
  for (const path of NULLABLE_SECTIONS) {
    let parent: unknown = raw
    for (const key of path.slice(0, -1)) parent = isPlainObject(parent) ? parent[key] : undefined
    const last = path[path.length - 1]!
    if (isPlainObject(parent) && Object.hasOwn(parent, last) && parent[last] === null) delete parent[last]
  }
  return raw
}

// ---------------------------------------------------------------------------------------------
// Problem formatting
// ---------------------------------------------------------------------------------------------

/** Edit distance (Levenshtein), for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!
    prev[0] = i
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1))
      diag = up
    }
  }
  return prev[b.length]!
}

/** The closest candidate within a small edit distance, if any. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase())
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

interface SchemaInternals {
  _zod: { def: { type: string; innerType?: unknown; in?: unknown; out?: unknown; shape?: Record<string, unknown>; valueType?: unknown } }
}

function unwrap(schema: unknown): SchemaInternals | undefined {
  let s = schema as SchemaInternals | undefined
  for (let i = 0; i < 10 && s; i++) {
    const def = s._zod.def
    if (['default', 'prefault', 'optional', 'nullable', 'readonly', 'catch'].includes(def.type)) s = def.innerType as SchemaInternals
    else if (def.type === 'pipe') s = def.in as SchemaInternals
    else return s
  }
  return s
}

/** Known keys of the mapping at `path` in the schema (for suggestions). */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let s = unwrap(configSchema)
  for (const key of path) {
    if (!s) return []
    const def = s._zod.def
    if (def.type === 'object' && def.shape) s = unwrap(def.shape[String(key)])
    else if (def.type === 'record') s = unwrap(def.valueType)
    else return []
  }
  const def = s?._zod.def
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : []
}

/** `auth.nonce_store.url`, `audit.filter_events[2]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out === '' ? String(key) : `.${String(key)}`
  }
  return out
}

/** A short description of a value for "got …". */
export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'nothing'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (Array.isArray(value)) return 'a list'
  if (value instanceof Date) return `a date (${JSON.stringify(value.toISOString())}); quote it`
  if (typeof value === 'object') return 'a mapping'
  return typeof value
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let v = raw
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined
    v = (v as Record<PropertyKey, unknown>)[key as string]
  }
  return v
}

function hasPath(raw: unknown, path: readonly PropertyKey[]): boolean {
  let v = raw
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key as string)) return false
    v = (v as Record<PropertyKey, unknown>)[key as string]
  }
  return true
}

/** Turns zod issues into one line each, naming the config path. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): string[] {
  const lines: string[] = []
  for (const issue of issues) {
    const path = issue.path
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(path)
      for (const key of issue.keys) {
        const full = formatPath([...path, key])
        const hint = suggest(key, known)
        lines.push(
          hint !== undefined
            ? `unknown key "${full}" (did you mean "${hint}"?)`
            : `unknown key "${full}"${known.length > 0 ? ` (known keys: ${known.join(', ')})` : ''}`,
        )
      }
      continue
    }
    const where = path.length > 0 ? formatPath(path) : '(top level)'
    if (path.length > 0 && !hasPath(raw, path)) {
      lines.push(`${where}: required${issue.message.startsWith('expected') ? ` (${issue.message})` : ''}`)
      continue
    }
    if (issue.message.startsWith('expected')) {
      lines.push(`${where}: ${issue.message}, got ${describeValue(valueAt(raw, path))}`)
    } else {
      lines.push(`${where}: ${issue.message}`)
    }
  }
  return [...new Set(lines)]
}

export type ValidateResult = { ok: true; config: Config } | { ok: false; problems: string[] }

/**
 * Validates a parsed YAML document (plain JS value; `null`/`undefined` = empty file) and applies
 * defaults. Does not resolve paths, read the environment or run cross-field checks.
 */
export function validateConfigObject(raw: unknown): ValidateResult {
  const input = raw === null || raw === undefined ? {} : dropNullSections(raw)
  const result = configSchema.safeParse(input)
  if (result.success) return { ok: true, config: result.data }
  return { ok: false, problems: formatIssues(result.error.issues, input) }
}
