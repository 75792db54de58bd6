/**
 * Loading the YAML configuration: parse → validate (config-schema.ts, defaults) → resolve
 * relative paths against the config file's directory → environment overrides → cross-field
 * checks → deep freeze.
 *
 * Environment variables (each overrides the file; a bad value is an error naming the variable;
 * an empty value counts as unset, except MCP_AUDIT_LOG_FILE where "" or "null" means stdout;
 * relative paths from the environment resolve against the current directory):
 *
 * | variable                | key                         | accepted values                         |
 * |-------------------------|-----------------------------|-----------------------------------------|
 * | MCP_PRIVATE_KEY_PATH    | keys.private_key_path       | path                                    |
 * | MCP_PUBLIC_KEY_PATH     | keys.public_key_path        | path                                    |
 * | MCP_CERTIFICATE_PATH    | keys.certificate_path       | path                                    |
 * | MCP_KEY_AGENT           | keys.agent                  | true/false/1/0/yes/no                   |
 * | MCP_ALLOWLIST_PATH      | acl.allowlist_path          | path                                    |
 * | MCP_TIMESTAMP_TOLERANCE | auth.timestamp_tolerance    | positive integer                        |
 * | MCP_NONCE_CACHE_SIZE    | auth.nonce_cache_size       | positive integer                        |
 * | MCP_CHALLENGE_TTL       | auth.challenge_ttl          | positive integer                        |
 * | MCP_SESSION_TTL         | auth.session_ttl            | positive integer                        |
 * | MCP_SESSION_BINDING     | auth.session_binding        | proof, bearer                           |
 * | MCP_AUDIENCE            | auth.audience               | comma-separated URLs                    |
 * | MCP_NONCE_STORE         | auth.nonce_store.type       | memory, redis                           |
 * | MCP_REDIS_URL           | auth.nonce_store.url        | redis:// or rediss:// URL               |
 * | MCP_AUDIT_ENABLED       | audit.enabled               | true/false/1/0/yes/no                   |
 * | MCP_AUDIT_LOG_FILE      | audit.log_file              | path; "" or "null" = stdout             |
 * | MCP_AUDIT_LOG_LEVEL     | audit.log_level             | DEBUG, INFO, WARN, ERROR                |
 * | MCP_TRANSPORT_TYPE      | transport.type              | http, https, ws, wss                    |
 * | MCP_TRANSPORT_HOST      | transport.host              | host name or address                    |
 * | MCP_TRANSPORT_PORT      | transport.port              | 0-65535                                 |
 * | MCP_WORKERS             | transport.workers           | positive integer or "auto"              |
 * | MCP_METRICS_ENABLED     | metrics.enabled             | true/false/1/0/yes/no                   |
 * | MCP_METRICS_HOST        | metrics.host                | host name or address                    |
 * | MCP_METRICS_PORT        | metrics.port                | 0-65535                                 |
 * @module
 */
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { loadYaml } from '../internal/load-on-use.js'
import { ConfigError } from '../errors.js'
import { isKnownEventFilter } from '../audit/audit-event.js'
import { TRANSPORT_TYPES, describeValue, isPort, isRedisUrl, validateConfigObject } from './config-schema.js'
import type { Config, LogLevel, SessionBinding, TransportType } from './types.js'

export interface ParseConfigOptions {
  /** Environment to read overrides from; default `process.env`. Pass `{}` to ignore the environment. */
  env?: NodeJS.ProcessEnv
  /** Directory relative paths in the file resolve against; default the current directory. */
  baseDir?: string
  /** Name used in error messages (the file path); default `config`. */
  source?: string
}

export interface LoadConfigOptions {
  /** Environment to read overrides from; default `process.env`. */
  env?: NodeJS.ProcessEnv
}

export interface ParsedConfig {
  config: Config
  /** Allowed but risky settings (e.g. bearer sessions over plain HTTP). */
  warnings: string[]
}

/** All defaults, paths unresolved (as written in the table in config-schema.ts). A fresh, mutable object. */
export function defaultConfig(): Config {
  const result = validateConfigObject({})
  /* c8 ignore next */
  if (!result.ok) throw new Error('internal: defaults do not validate')
  return result.config
}

function configError(source: string, problems: string[]): ConfigError {
  const message =
    problems.length === 1
      ? `${source}: ${problems[0]}`
      : `${source}: ${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`
  return new ConfigError(message, problems, { path: source })
}

function parseYaml(text: string, source: string): unknown {
  const doc = loadYaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    // Only the first: later YAML errors are usually consequences of it.
    const e = doc.errors[0]!
    const pos = e.linePos?.[0]
    const first = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
    throw configError(source, [pos ? `line ${pos.line}, column ${pos.col}: invalid YAML: ${first}` : `invalid YAML: ${first}`])
  }
  try {
    return doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    throw configError(source, [`invalid YAML: ${err instanceof Error ? err.message : String(err)}`])
  }
}

function resolveFilePaths(config: Config, baseDir: string): void {
  const r = (p: string): string => path.resolve(baseDir, p)
  config.keys.private_key_path = r(config.keys.private_key_path)
  config.keys.public_key_path = r(config.keys.public_key_path)
  if (config.keys.certificate_path !== null) config.keys.certificate_path = r(config.keys.certificate_path)
  if (config.keys.next_private_key_path !== null) config.keys.next_private_key_path = r(config.keys.next_private_key_path)
  if (config.keys.previous_private_key_path !== null) config.keys.previous_private_key_path = r(config.keys.previous_private_key_path)
  config.acl.allowlist_path = r(config.acl.allowlist_path)
  if (config.audit.log_file !== null) config.audit.log_file = r(config.audit.log_file)
  const ssl = config.transport.ssl
  if (ssl.cert_file !== null) ssl.cert_file = r(ssl.cert_file)
  if (ssl.key_file !== null) ssl.key_file = r(ssl.key_file)
  if (ssl.ca_file !== null) ssl.ca_file = r(ssl.ca_file)
  if (config.auth.revoked_keys_file !== null) config.auth.revoked_keys_file = r(config.auth.revoked_keys_file)
}

// ---------------------------------------------------------------------------------------------
// Environment overrides
// ---------------------------------------------------------------------------------------------

type EnvParser<T> = (value: string) => T | undefined

const positiveIntEnv: EnvParser<number> = (v) => (/^\d+$/.test(v.trim()) && Number(v) > 0 && Number.isSafeInteger(Number(v)) ? Number(v) : undefined)
const portEnv: EnvParser<number> = (v) => (/^\d+$/.test(v.trim()) && isPort(Number(v)) ? Number(v) : undefined)
const workersEnv: EnvParser<number | 'auto'> = (v) => (v.trim().toLowerCase() === 'auto' ? 'auto' : positiveIntEnv(v))
const boolEnv: EnvParser<boolean> = (v) => {
  const s = v.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(s)) return true
  if (['false', '0', 'no', 'off'].includes(s)) return false
  return undefined
}
function enumEnv<T extends string>(values: readonly T[], upper = false): EnvParser<T> {
  return (v) => {
    const s = upper ? v.trim().toUpperCase() : v.trim().toLowerCase()
    const norm = upper && s === 'WARNING' ? 'WARN' : s
    return (values as readonly string[]).includes(norm) ? (norm as T) : undefined
  }
}

interface EnvRule {
  name: string
  expected: string
  /** Do not echo the value in errors (URLs may carry passwords). */
  secret?: boolean
  apply: (config: Config, value: string, cwd: string) => boolean
}

function rule<T>(name: string, expected: string, parse: EnvParser<T>, set: (config: Config, value: T) => void, secret = false): EnvRule {
  return {
    name,
    expected,
    secret,
    apply: (config, value) => {
      const parsed = parse(value)
      if (parsed === undefined) return false
      set(config, parsed)
      return true
    },
  }
}

function pathRule(name: string, set: (config: Config, value: string) => void): EnvRule {
  return { name, expected: 'a file path', apply: (config, value, cwd) => (set(config, path.resolve(cwd, value)), true) }
}

const ENV_RULES: readonly EnvRule[] = [
  pathRule('MCP_PRIVATE_KEY_PATH', (c, v) => (c.keys.private_key_path = v)),
  pathRule('MCP_PUBLIC_KEY_PATH', (c, v) => (c.keys.public_key_path = v)),
  pathRule('MCP_CERTIFICATE_PATH', (c, v) => (c.keys.certificate_path = v)),
  rule('MCP_KEY_AGENT', 'true, false, 1, 0, yes or no', boolEnv, (c, v) => (c.keys.agent = v)),
  pathRule('MCP_ALLOWLIST_PATH', (c, v) => (c.acl.allowlist_path = v)),
  rule('MCP_TIMESTAMP_TOLERANCE', 'a positive integer (seconds)', positiveIntEnv, (c, v) => (c.auth.timestamp_tolerance = v)),
  rule('MCP_NONCE_CACHE_SIZE', 'a positive integer', positiveIntEnv, (c, v) => (c.auth.nonce_cache_size = v)),
  rule('MCP_CHALLENGE_TTL', 'a positive integer (seconds)', positiveIntEnv, (c, v) => (c.auth.challenge_ttl = v)),
  rule('MCP_SESSION_TTL', 'a positive integer (seconds)', positiveIntEnv, (c, v) => (c.auth.session_ttl = v)),
  rule('MCP_SESSION_BINDING', 'one of "proof", "bearer"', enumEnv<SessionBinding>(['proof', 'bearer']), (c, v) => (c.auth.session_binding = v)),
  rule('MCP_NONCE_STORE', 'one of "memory", "redis"', enumEnv<'memory' | 'redis'>(['memory', 'redis']), (c, v) => (c.auth.nonce_store.type = v)),
  rule('MCP_AUDIENCE', 'a comma-separated list of URLs', (v) => {
    const list = v.split(',').map((a) => a.trim()).filter((a) => a !== '')
    return list.length === 0 || list.some((a) => [...a].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) ? undefined : list.length === 1 ? list[0]! : list
  }, (c, v) => (c.auth.audience = v)),
  rule('MCP_REDIS_URL', 'a redis:// or rediss:// URL', (v) => (isRedisUrl(v.trim()) ? v.trim() : undefined), (c, v) => (c.auth.nonce_store.url = v), true),
  rule('MCP_AUDIT_ENABLED', 'true, false, 1, 0, yes or no', boolEnv, (c, v) => (c.audit.enabled = v)),
  {
    name: 'MCP_AUDIT_LOG_FILE',
    expected: 'a file path, or "null" for stdout',
    apply: (c, v, cwd) => {
      c.audit.log_file = v.trim() === '' || v.trim().toLowerCase() === 'null' ? null : path.resolve(cwd, v)
      return true
    },
  },
  rule('MCP_AUDIT_LOG_LEVEL', 'one of "DEBUG", "INFO", "WARN", "ERROR"', enumEnv<LogLevel>(['DEBUG', 'INFO', 'WARN', 'ERROR'], true), (c, v) => (c.audit.log_level = v)),
  rule('MCP_TRANSPORT_TYPE', 'one of "http", "https", "ws", "wss"', enumEnv<TransportType>(TRANSPORT_TYPES), (c, v) => (c.transport.type = v)),
  rule('MCP_TRANSPORT_HOST', 'a host name or address', (v) => (v.trim() !== '' && !/\s/.test(v.trim()) ? v.trim() : undefined), (c, v) => (c.transport.host = v)),
  rule('MCP_TRANSPORT_PORT', 'a port number 0-65535', portEnv, (c, v) => (c.transport.port = v)),
  rule('MCP_WORKERS', 'a positive integer or "auto"', workersEnv, (c, v) => (c.transport.workers = v)),
  rule('MCP_METRICS_ENABLED', 'true, false, 1, 0, yes or no', boolEnv, (c, v) => (c.metrics.enabled = v)),
  rule('MCP_METRICS_HOST', 'a host name or address', (v) => (v.trim() !== '' && !/\s/.test(v.trim()) ? v.trim() : undefined), (c, v) => (c.metrics.host = v)),
  rule('MCP_METRICS_PORT', 'a port number 0-65535', portEnv, (c, v) => (c.metrics.port = v)),
]

/** Names of every environment variable that overrides the configuration. */
export const CONFIG_ENV_VARIABLES: readonly string[] = ENV_RULES.map((r) => r.name)

function applyEnv(config: Config, env: NodeJS.ProcessEnv, cwd: string): string[] {
  const problems: string[] = []
  for (const r of ENV_RULES) {
    const value = env[r.name]
    if (value === undefined) continue
    if (value.trim() === '' && r.name !== 'MCP_AUDIT_LOG_FILE') continue
    if (!r.apply(config, value, cwd)) {
      problems.push(`environment variable ${r.name}: expected ${r.expected}${r.secret ? ' (value not shown)' : `, got ${describeValue(value)}`}`)
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------------
// Cross-field checks
// ---------------------------------------------------------------------------------------------

function crossCheck(config: Config): { problems: string[]; warnings: string[] } {
  const problems: string[] = []
  const warnings: string[] = []
  const t = config.transport
  const tls = t.type === 'https' || t.type === 'wss'
  if (tls) {
    if (t.ssl.cert_file === null) problems.push(`transport.ssl.cert_file: required when transport.type is "${t.type}"`)
    if (t.ssl.key_file === null) problems.push(`transport.ssl.key_file: required when transport.type is "${t.type}"`)
  } else if ((t.ssl.cert_file !== null || t.ssl.key_file !== null) && Object.keys(config.servers).length === 0) {
    // A client config (one with servers) presents cert_file/key_file as its TLS client certificate.
    warnings.push(`transport.ssl is ignored because transport.type is "${t.type}" (use "https" or "wss" to enable TLS)`)
  }
  if (config.auth.session_binding === 'bearer' && !tls) {
    warnings.push(
      `auth.session_binding: "bearer" with transport.type "${t.type}" sends session tokens in clear text; ` +
        'anyone who can read the traffic can steal and replay them (use "proof" or https/wss)',
    )
  }
  // A request proof is acceptable for ±proof_window, so its nonce must be remembered that long.
  if (2 * config.auth.proof_window > config.auth.nonce_cache_ttl) {
    problems.push(
      `auth.proof_window: must be at most half of auth.nonce_cache_ttl (${config.auth.nonce_cache_ttl}) so replays stay detectable, got ${config.auth.proof_window}`,
    )
  }
  if (config.auth.ticket_key !== null && config.auth.ticket_key_rotation !== null) {
    problems.push('auth.ticket_key_rotation: cannot be combined with auth.ticket_key (a fleet key is fixed; rotate it by configuration)')
  }
  if (config.auth.ticket_key_rotation !== null && config.auth.nonce_store.type === 'redis') {
    warnings.push(
      'auth.ticket_key_rotation keeps ticket keys in this process only: with several processes (nonce_store redis) a client must finish each handshake on the process that began it',
    )
  }
  if (config.auth.ticket_key_rotation !== null && t.workers !== 1) {
    problems.push(
      'auth.ticket_key_rotation: keeps ticket keys in one process, so it cannot be combined with transport.workers other than 1 ' +
        '(leave both ticket settings null to derive the ticket key from the server key, or set auth.ticket_key)',
    )
  }
  // A server key in the agent has no seed to derive the ticket key from: without auth.ticket_key
  // each process seals with random keys of its own (docs/operations.md, "Keys in ssh-agent").
  const randomTicketKeys = config.keys.agent && config.auth.ticket_key === null
  if (randomTicketKeys && t.workers !== 1) {
    problems.push('keys.agent: a server key in the ssh-agent gives no ticket key the processes could share, so transport.workers other than 1 needs auth.ticket_key (32 random bytes, base64url)')
  }
  if (randomTicketKeys && config.auth.ticket_key_rotation === null && config.auth.nonce_store.type === 'redis') {
    warnings.push('keys.agent without auth.ticket_key: each server process seals with random ticket keys of its own, so with several processes (nonce_store redis) a client must finish each handshake, and use its session, on the process that began it; set auth.ticket_key')
  }
  const m = config.metrics
  if (m.enabled && m.port !== 0 && m.port === t.port) {
    problems.push(`metrics.port: must differ from transport.port (${t.port}); metrics are never served on the public port, got ${m.port}`)
  }
  if (m.enabled && (m.host === '0.0.0.0' || m.host === '::' || m.host === '[::]' || m.host === '')) {
    warnings.push(`metrics.host "${m.host}" serves /metrics to every network this machine is on; restrict it with a firewall or use 127.0.0.1`)
  }
  config.audit.filter_events.forEach((name, i) => {
    if (!isKnownEventFilter(name)) warnings.push(`audit.filter_events[${i}]: unknown event ${JSON.stringify(name)}; it will never match`)
  })
  return { problems, warnings }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

/**
 * Parses and validates YAML text. Throws {@link ConfigError} (code `config_invalid`) listing
 * every problem, one per line in `problems`. The returned config is deeply frozen.
 */
export function parseConfig(yamlText: string, opts: ParseConfigOptions = {}): ParsedConfig {
  const source = opts.source ?? 'config'
  const env = opts.env ?? process.env
  const cwd = process.cwd()
  const baseDir = opts.baseDir ?? cwd
  const raw = parseYaml(yamlText, source)
  const result = validateConfigObject(raw)
  if (!result.ok) throw configError(source, result.problems)
  const config = result.config
  resolveFilePaths(config, baseDir)
  const envProblems = applyEnv(config, env, cwd)
  if (envProblems.length > 0) throw configError(source, envProblems)
  const { problems, warnings } = crossCheck(config)
  if (problems.length > 0) throw configError(source, problems)
  return { config: deepFreeze(config), warnings }
}

/** Reads, parses and validates a config file, returning the config and its warnings. */
export async function loadConfigFile(file: string, opts: LoadConfigOptions = {}): Promise<ParsedConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') {
      const role = /client/i.test(path.basename(file)) ? 'client' : 'server'
      const problem = `${file}: no such file (write a starting one with: mcp-config-validate --init ${role} ${file})`
      throw new ConfigError(problem, [problem], { path: file, cause: err })
    }
    if (code === 'EISDIR') throw new ConfigError(`${file}: is a directory`, [`${file}: is a directory`], { path: file, cause: err })
    throw new ConfigError(`${file}: cannot read (${code ?? 'error'})`, [`${file}: cannot read (${code ?? 'error'})`], { path: file, cause: err })
  }
  return parseConfig(text, { env: opts.env, baseDir: path.dirname(path.resolve(file)), source: file })
}

/** Reads, parses and validates a config file. Warnings are dropped; use {@link loadConfigFile} to see them. */
export async function loadConfig(file: string, opts: LoadConfigOptions = {}): Promise<Config> {
  return (await loadConfigFile(file, opts)).config
}
