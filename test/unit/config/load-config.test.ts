import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { ConfigError } from '../../../src/errors.js'
import { defaultConfig, loadConfig, loadConfigFile, parseConfig } from '../../../src/config/load-config.js'
import { editDistance, parseSize, suggest } from '../../../src/config/config-schema.js'

const NO_ENV = {}

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    assert.equal(err.code, 'config_invalid')
    return err.problems
  }
  assert.fail('expected a ConfigError')
}

test('empty text gives every default', () => {
  const { config, warnings } = parseConfig('', { env: NO_ENV, baseDir: '/base' })
  assert.deepEqual(warnings, [])
  assert.equal(config.keys.private_key_path, '/base/keys/private.pem')
  assert.equal(config.keys.public_key_path, '/base/keys/public.pem')
  assert.equal(config.keys.auto_generate, false)
  assert.equal(config.acl.allowlist_path, '/base/keys/allowlist.json')
  assert.equal(config.acl.auto_create, true)
  assert.equal(config.acl.metadata_required, false)
  assert.deepEqual(config.acl.tofu, { enabled: false, prompt_unknown: true, remember_decisions: true })
  assert.deepEqual(config.auth, {
    timestamp_tolerance: 300,
    nonce_cache_size: 10000,
    nonce_cache_ttl: 3600,
    challenge_ttl: 60,
    session_ttl: 900,
    session_binding: 'proof',
    proof_window: 30,
    replay_window_sessions: 100_000,
    fleet_clock_skew: 5,
    audience: null,
    nonce_store: { type: 'memory', url: 'redis://127.0.0.1:6379', key_prefix: 'mcp-pki:', eviction_checked: false },
    ticket_key: null,
    ticket_key_rotation: null,
    revoked_keys_file: null,
    rate_limit: { per_address: 50, per_key: 20, burst: 100 },
  })
  assert.deepEqual(config.audit, {
    enabled: true,
    log_file: null,
    log_level: 'INFO',
    max_file_size: 10485760,
    backup_count: 5,
    include_performance: true,
    filter_events: [],
  })
  assert.deepEqual(config.transport, {
    type: 'http',
    host: '127.0.0.1',
    port: 8443,
    timeout: 30,
    max_connections: 100,
    retry_attempts: 3,
    retry_delay: 1,
    max_body_size: 65536,
    workers: 1,
    ssl: { cert_file: null, key_file: null, ca_file: null, verify_mode: 'none' },
  })
  assert.deepEqual(config.servers, {})
})

test('defaultConfig() is the schema applied to nothing, unresolved and mutable', () => {
  const d = defaultConfig()
  assert.equal(d.keys.private_key_path, './keys/private.pem')
  d.auth.session_ttl = 5
  assert.equal(defaultConfig().auth.session_ttl, 900)
})

test('null sections (`auth:` with nothing under it) mean defaults', () => {
  const { config } = parseConfig('auth:\ntransport:\n  ssl:\n', { env: NO_ENV })
  assert.equal(config.auth.timestamp_tolerance, 300)
  assert.equal(config.transport.ssl.verify_mode, 'none')
})

test('the description example file validates; 0.0.0.0 is accepted', () => {
  const yaml = `
keys:
  private_key_path: "./keys/server_private.pem"
  public_key_path: "./keys/server_public.pem"
acl:
  allowlist_path: "./keys/server_allowlist.json"
auth:
  timestamp_tolerance: 300  # 5 minutes
  nonce_cache_size: 10000
audit:
  enabled: true
  log_file: "./logs/server_audit.jsonl"
  log_level: "INFO"
  max_file_size: "10MB"
  filter_events: ["auth_success", "auth_failure", "key_validation"]
transport:
  type: "http"
  host: "0.0.0.0"
  port: 8443
  ssl:
    cert_file: "./certs/server.crt"
    key_file: "./certs/server.key"
`
  const { config, warnings } = parseConfig(yaml, { env: NO_ENV, baseDir: '/srv/app' })
  assert.equal(config.transport.host, '0.0.0.0')
  assert.equal(config.audit.log_file, '/srv/app/logs/server_audit.jsonl')
  assert.equal(config.transport.ssl.cert_file, '/srv/app/certs/server.crt')
  assert.equal(config.keys.private_key_path, '/srv/app/keys/server_private.pem')
  assert.deepEqual(config.audit.filter_events, ['auth_success', 'auth_failure', 'key_validation'])
  // ssl given with plain http: allowed, but said.
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /transport\.ssl is ignored/)
})

test('a client config (one with servers) carrying a client certificate gets no "ssl is ignored" warning', () => {
  const yaml = `servers:
  prod: { url: "https://mcp.example.com/auth" }
transport:
  ssl: { ca_file: ./certs/ca.crt, cert_file: ./certs/client.crt, key_file: ./certs/client.key }
`
  const { config, warnings } = parseConfig(yaml, { env: NO_ENV, baseDir: '/srv/app' })
  assert.deepEqual(warnings, [])
  assert.equal(config.transport.ssl.cert_file, '/srv/app/certs/client.crt')
})

test('wrong type names the path and the value', () => {
  const problems = problemsOf(() => parseConfig('auth:\n  timestamp_tolerance: "5m"\n', { env: NO_ENV }))
  assert.deepEqual(problems, ['auth.timestamp_tolerance: expected a positive integer, got "5m"'])
})

test('unknown keys are errors with a suggestion', () => {
  const problems = problemsOf(() => parseConfig('auth:\n  nonce_cache_sise: 5\nbogus_section: {}\n', { env: NO_ENV }))
  assert.deepEqual(problems, [
    'unknown key "auth.nonce_cache_sise" (did you mean "nonce_cache_size"?)',
    'unknown key "bogus_section" (known keys: keys, acl, auth, audit, transport, metrics, servers, authorization)',
  ])
})

test('every problem is reported, each on its own line', () => {
  const yaml = 'transport:\n  port: 70000\n  type: ftp\naudit:\n  log_level: LOUD\n  max_file_size: huge\nservers:\n  x:\n    fingerprint: abc\n'
  const problems = problemsOf(() => parseConfig(yaml, { env: NO_ENV }))
  assert.deepEqual([...problems].sort(), [
    'audit.log_level: expected one of "DEBUG", "INFO", "WARN", "ERROR", got "LOUD"',
    'audit.max_file_size: expected a size in bytes or a string like "512KB", "10MB", "1GB", got "huge"',
    'servers.x.fingerprint: expected a 64-character hex SHA-256 fingerprint or null, got "abc"',
    'servers.x.url: required (expected an http, https, ws or wss URL)',
    'transport.port: expected a port number 0-65535, got 70000',
    'transport.type: expected one of "http", "https", "ws", "wss", got "ftp"',
  ].sort())
  for (const p of problems) assert.ok(!p.includes('\n'))
})

test('max_file_size accepts bytes and KB/MB/GB strings', () => {
  assert.equal(parseSize(123), 123)
  assert.equal(parseSize('512KB'), 512 * 1024)
  assert.equal(parseSize('10MB'), 10485760)
  assert.equal(parseSize('1GB'), 1024 ** 3)
  assert.equal(parseSize('-1'), undefined)
  assert.equal(parseSize(1.5), undefined)
  const { config } = parseConfig('audit:\n  max_file_size: 512KB\n', { env: NO_ENV })
  assert.equal(config.audit.max_file_size, 524288)
})

test('servers: fingerprints are lowercased, urls checked', () => {
  const fp = 'AB'.repeat(32)
  const { config } = parseConfig(`servers:\n  local:\n    url: http://127.0.0.1:8443/auth\n    fingerprint: ${fp}\n`, { env: NO_ENV })
  assert.deepEqual(config.servers.local, { url: 'http://127.0.0.1:8443/auth', fingerprint: fp.toLowerCase(), audience: null })
  const problems = problemsOf(() => parseConfig('servers:\n  a:\n    url: ftp://x/\n', { env: NO_ENV }))
  assert.deepEqual(problems, ['servers.a.url: expected an http, https, ws or wss URL, got "ftp://x/"'])
})

test('ticket_key must be base64url of 32 bytes and is never echoed', () => {
  const good = randomBytes(32).toString('base64url')
  assert.equal(parseConfig(`auth:\n  ticket_key: "${good}"\n`, { env: NO_ENV }).config.auth.ticket_key, good)
  const bad = Buffer.alloc(31, 7).toString('base64url')
  const problems = problemsOf(() => parseConfig(`auth:\n  ticket_key: ${bad}\n`, { env: NO_ENV }))
  assert.equal(problems.length, 1)
  assert.match(problems[0]!, /^auth\.ticket_key: /)
  assert.ok(!problems[0]!.includes(bad))
})

test('bad YAML names the file, line and column', () => {
  let caught: unknown
  try {
    parseConfig('auth:\n  timestamp_tolerance: 300\n  x: a: b\n', { env: NO_ENV, source: 'server_config.yml' })
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof ConfigError)
  assert.match(caught.message, /^server_config\.yml: line 3, column 6: invalid YAML: /)
  assert.equal(caught.problems.length, 1)
})

test('duplicate keys are a YAML error', () => {
  const problems = problemsOf(() => parseConfig('auth:\n  session_ttl: 1\n  session_ttl: 2\n', { env: NO_ENV }))
  assert.match(problems[0]!, /line 3, column 3: invalid YAML/)
})

test('https/wss need ssl.cert_file and ssl.key_file', () => {
  const problems = problemsOf(() => parseConfig('transport:\n  type: https\n', { env: NO_ENV }))
  assert.deepEqual(problems, [
    'transport.ssl.cert_file: required when transport.type is "https"',
    'transport.ssl.key_file: required when transport.type is "https"',
  ])
  const ok = parseConfig('transport:\n  type: wss\n  ssl:\n    cert_file: c.pem\n    key_file: k.pem\n', { env: NO_ENV, baseDir: '/etc/mcp' })
  assert.equal(ok.config.transport.ssl.key_file, '/etc/mcp/k.pem')
  assert.deepEqual(ok.warnings, [])
})

test('bearer sessions over plain http are allowed with a warning', () => {
  const { config, warnings } = parseConfig('auth:\n  session_binding: bearer\n', { env: NO_ENV })
  assert.equal(config.auth.session_binding, 'bearer')
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /clear text.*steal/)
})

test('unknown filter_events produce a warning', () => {
  const { warnings } = parseConfig('audit:\n  filter_events: [auth_sucess, handshake.*]\n', { env: NO_ENV })
  assert.deepEqual(warnings, ['audit.filter_events[0]: unknown event "auth_sucess"; it will never match'])
})

test('the result is deeply frozen', () => {
  const { config } = parseConfig('servers:\n  a:\n    url: http://127.0.0.1/\n', { env: NO_ENV })
  assert.ok(Object.isFrozen(config))
  assert.ok(Object.isFrozen(config.auth.nonce_store))
  assert.ok(Object.isFrozen(config.servers.a))
  assert.ok(Object.isFrozen(config.audit.filter_events))
  assert.throws(() => {
    ;(config.auth as { session_ttl: number }).session_ttl = 1
  }, TypeError)
})

// --- environment overrides -----------------------------------------------------------------

const cwd = process.cwd()
const ENV_CASES: { name: string; value: string; check: (c: ReturnType<typeof defaultConfig>) => unknown; expected: unknown; bad?: string }[] = [
  { name: 'MCP_PRIVATE_KEY_PATH', value: 'k/priv.pem', check: (c) => c.keys.private_key_path, expected: path.resolve(cwd, 'k/priv.pem') },
  { name: 'MCP_PUBLIC_KEY_PATH', value: '/abs/pub.pem', check: (c) => c.keys.public_key_path, expected: '/abs/pub.pem' },
  { name: 'MCP_ALLOWLIST_PATH', value: 'al.json', check: (c) => c.acl.allowlist_path, expected: path.resolve(cwd, 'al.json') },
  { name: 'MCP_TIMESTAMP_TOLERANCE', value: '120', check: (c) => c.auth.timestamp_tolerance, expected: 120, bad: '5m' },
  { name: 'MCP_NONCE_CACHE_SIZE', value: '77', check: (c) => c.auth.nonce_cache_size, expected: 77, bad: '-3' },
  { name: 'MCP_CHALLENGE_TTL', value: '15', check: (c) => c.auth.challenge_ttl, expected: 15, bad: '0' },
  { name: 'MCP_SESSION_TTL', value: '60', check: (c) => c.auth.session_ttl, expected: 60, bad: '1.5' },
  { name: 'MCP_SESSION_BINDING', value: 'proof', check: (c) => c.auth.session_binding, expected: 'proof', bad: 'cookie' },
  { name: 'MCP_AUDIENCE', value: 'https://a.example, https://b.example', check: (c) => c.auth.audience, expected: ['https://a.example', 'https://b.example'], bad: ' , ' },
  { name: 'MCP_NONCE_STORE', value: 'redis', check: (c) => c.auth.nonce_store.type, expected: 'redis', bad: 'disk' },
  { name: 'MCP_REDIS_URL', value: 'redis://127.0.0.1:6380/2', check: (c) => c.auth.nonce_store.url, expected: 'redis://127.0.0.1:6380/2', bad: 'http://x' },
  { name: 'MCP_AUDIT_ENABLED', value: 'no', check: (c) => c.audit.enabled, expected: false, bad: 'maybe' },
  { name: 'MCP_AUDIT_LOG_FILE', value: 'logs/a.jsonl', check: (c) => c.audit.log_file, expected: path.resolve(cwd, 'logs/a.jsonl') },
  { name: 'MCP_AUDIT_LOG_LEVEL', value: 'debug', check: (c) => c.audit.log_level, expected: 'DEBUG', bad: 'LOUD' },
  { name: 'MCP_TRANSPORT_TYPE', value: 'ws', check: (c) => c.transport.type, expected: 'ws', bad: 'ftp' },
  { name: 'MCP_TRANSPORT_HOST', value: '0.0.0.0', check: (c) => c.transport.host, expected: '0.0.0.0', bad: 'a b' },
  { name: 'MCP_TRANSPORT_PORT', value: '9000', check: (c) => c.transport.port, expected: 9000, bad: '65536' },
  { name: 'MCP_WORKERS', value: 'auto', check: (c) => c.transport.workers, expected: 'auto', bad: 'many' },
]

for (const c of ENV_CASES) {
  test(`env ${c.name} overrides the file`, () => {
    const yaml = 'audit:\n  log_file: file.jsonl\ntransport:\n  host: 127.0.0.2\n'
    const { config } = parseConfig(yaml, { env: { [c.name]: c.value }, baseDir: '/cfg' })
    assert.deepEqual(c.check(config), c.expected)
  })
  if (c.bad !== undefined) {
    const bad = c.bad
    test(`env ${c.name} with a bad value is an error naming the variable`, () => {
      const problems = problemsOf(() => parseConfig('', { env: { [c.name]: bad } }))
      assert.equal(problems.length, 1)
      assert.match(problems[0]!, new RegExp(`^environment variable ${c.name}: expected `))
    })
  }
}

test('env MCP_AUDIT_ENABLED accepts true/false/1/0/yes/no', () => {
  for (const [v, want] of [['true', true], ['false', false], ['1', true], ['0', false], ['YES', true], ['no', false]] as const) {
    assert.equal(parseConfig('audit:\n  enabled: ' + String(!want) + '\n', { env: { MCP_AUDIT_ENABLED: v } }).config.audit.enabled, want)
  }
})

test('env MCP_AUDIT_LOG_FILE "null" or "" means stdout', () => {
  for (const v of ['null', '']) {
    assert.equal(parseConfig('audit:\n  log_file: a.jsonl\n', { env: { MCP_AUDIT_LOG_FILE: v } }).config.audit.log_file, null)
  }
})

test('env MCP_REDIS_URL errors do not echo the value', () => {
  const problems = problemsOf(() => parseConfig('', { env: { MCP_REDIS_URL: 'http://user:hunter2@x' } }))
  assert.ok(!problems[0]!.includes('hunter2'))
})

test('env override is checked against cross-field rules (https needs certs)', () => {
  const problems = problemsOf(() => parseConfig('', { env: { MCP_TRANSPORT_TYPE: 'https' } }))
  assert.equal(problems[0], 'transport.ssl.cert_file: required when transport.type is "https"')
})

// --- files ---------------------------------------------------------------------------------

test('loadConfig resolves relative paths against the config file directory', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcp-cfg-'))
  try {
    await mkdir(path.join(dir, 'etc'))
    const file = path.join(dir, 'etc', 'server.yml')
    await writeFile(file, 'keys:\n  private_key_path: ../keys/p.pem\naudit:\n  log_file: logs/a.jsonl\n')
    const config = await loadConfig(file, { env: {} })
    assert.equal(config.keys.private_key_path, path.join(dir, 'keys', 'p.pem'))
    assert.equal(config.keys.public_key_path, path.join(dir, 'etc', 'keys', 'public.pem'))
    assert.equal(config.audit.log_file, path.join(dir, 'etc', 'logs', 'a.jsonl'))
    assert.ok(Object.isFrozen(config.keys))
    const empty = path.join(dir, 'empty.yml')
    await writeFile(empty, '')
    const { config: d, warnings } = await loadConfigFile(empty, { env: {} })
    assert.equal(d.auth.session_ttl, 900)
    assert.deepEqual(warnings, [])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a missing config file is a ConfigError "<path>: no such file" that says how to write one', async () => {
  const file = path.join(tmpdir(), 'definitely-missing-mcp-config.yml')
  await assert.rejects(loadConfig(file, { env: {} }), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.message, `${file}: no such file (write a starting one with: mcp-config-validate --init server ${file})`)
    return true
  })
  const client = path.join(tmpdir(), 'missing-client_config.yml')
  await assert.rejects(loadConfig(client, { env: {} }), /--init client /)
})

test('suggestions use a small edit distance', () => {
  assert.equal(editDistance('kitten', 'sitting'), 3)
  assert.equal(suggest('nonce_cache_sise', ['nonce_cache_size', 'nonce_cache_ttl']), 'nonce_cache_size')
  assert.equal(suggest('zzz', ['nonce_cache_size']), undefined)
})

test('auth.ticket_key_rotation is a positive integer and cannot be combined with auth.ticket_key', () => {
  assert.equal(parseConfig('auth:\n  ticket_key_rotation: 3600\n').config.auth.ticket_key_rotation, 3600)
  assert.throws(() => parseConfig('auth:\n  ticket_key_rotation: "1h"\n'), /auth\.ticket_key_rotation: expected a positive integer/)
  const key = randomBytes(32).toString('base64url')
  assert.throws(() => parseConfig(`auth:\n  ticket_key: "${key}"\n  ticket_key_rotation: 60\n`), /cannot be combined with auth\.ticket_key/)
})

test('auth.audience: a URL, a list of URLs, or null; an empty list or a number is an error naming the key', () => {
  assert.equal(parseConfig('auth:\n  audience: https://mcp.example.com\n', { env: {} }).config.auth.audience, 'https://mcp.example.com')
  assert.deepEqual(parseConfig('auth:\n  audience: [https://a.example, https://b.example]\n', { env: {} }).config.auth.audience, ['https://a.example', 'https://b.example'])
  assert.equal(parseConfig('auth:\n  audience: null\n', { env: {} }).config.auth.audience, null)
  for (const bad of ['[]', '42', '[""]']) {
    const problems = problemsOf(() => parseConfig(`auth:\n  audience: ${bad}\n`, { env: {} }))
    assert.equal(problems.length, 1, bad)
    assert.match(problems[0]!, /^auth\.audience/, bad)
  }
  assert.equal(parseConfig('', { env: { MCP_AUDIENCE: 'https://one.example' } }).config.auth.audience, 'https://one.example')
})

test('transport.workers: 1 by default, a positive integer or "auto"; refused with rotating ticket keys', () => {
  assert.equal(parseConfig('', { env: NO_ENV }).config.transport.workers, 1)
  assert.equal(parseConfig('transport: {workers: 4}', { env: NO_ENV }).config.transport.workers, 4)
  assert.equal(parseConfig('transport: {workers: auto}', { env: NO_ENV }).config.transport.workers, 'auto')
  assert.equal(parseConfig('', { env: { MCP_WORKERS: '3' } }).config.transport.workers, 3)
  for (const bad of ['0', '-1', '1.5', 'all']) {
    assert.throws(() => parseConfig(`transport: {workers: ${bad}}`, { env: NO_ENV }), (err: ConfigError) => err.problems.some((p) => p.includes('transport.workers') && p.includes('"auto"')))
  }
  assert.throws(
    () => parseConfig('transport: {workers: 2}\nauth: {ticket_key_rotation: 3600}', { env: NO_ENV }),
    (err: ConfigError) => err.problems.some((p) => p.startsWith('auth.ticket_key_rotation') && p.includes('transport.workers')),
  )
})

test('auth.revoked_keys_file resolves against the config folder; a non-string is an error naming the key', () => {
  assert.equal(parseConfig('auth:\n  revoked_keys_file: keys/revoked.krl\n', { env: {}, baseDir: '/cfg' }).config.auth.revoked_keys_file, '/cfg/keys/revoked.krl')
  assert.throws(() => parseConfig('auth:\n  revoked_keys_file: 7\n', { env: {} }), (err: unknown) => err instanceof ConfigError && /auth\.revoked_keys_file/.test(err.message))
})
