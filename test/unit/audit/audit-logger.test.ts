import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { AuditLogger, isSecretFieldName, REDACTED } from '../../../src/audit/audit-logger.js'
import { canonicalEventName, isKnownEventFilter } from '../../../src/audit/audit-event.js'
import { snippetArgs, srcModule } from '../../helpers/node-snippet.js'

const FIXED = Date.UTC(2025, 0, 2, 3, 4, 5, 678)

/** A logger writing to memory. */
function memoryLogger(options: ConstructorParameters<typeof AuditLogger>[0] = {}) {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'))
      cb()
    },
  })
  const logger = new AuditLogger({ clock: () => FIXED, ...options, log_file: null, stream })
  const records = async (): Promise<Record<string, unknown>[]> => {
    await logger.flush()
    return chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  }
  return { logger, records, chunks }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mcp-audit-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test('lines are JSON objects with ts, level, event first', async () => {
  const { logger, records, chunks } = memoryLogger()
  logger.logAuthAttempt({
    clientFingerprint: 'a'.repeat(64),
    serverFingerprint: 'b'.repeat(64),
    success: true,
    durationMs: 8.5,
    metadata: { transport: 'http', remote: '127.0.0.1', endpoint: '/auth' },
  })
  logger.logAuthAttempt({ clientFingerprint: 'c'.repeat(64), success: false, code: 'unknown_key', durationMs: 1 })
  logger.log('server.start', { host: '127.0.0.1', port: 8443 })
  const recs = await records()
  assert.equal(recs.length, 3)
  assert.deepEqual(Object.keys(recs[0]!).slice(0, 3), ['ts', 'level', 'event'])
  assert.deepEqual(recs[0], {
    ts: '2025-01-02T03:04:05.678Z',
    level: 'INFO',
    event: 'handshake.success',
    client_fingerprint: 'a'.repeat(64),
    server_fingerprint: 'b'.repeat(64),
    duration_ms: 8.5,
    transport: 'http',
    remote: '127.0.0.1',
    endpoint: '/auth',
  })
  assert.equal(recs[1]!.event, 'handshake.failure')
  assert.equal(recs[1]!.level, 'WARN')
  assert.equal(recs[1]!.code, 'unknown_key')
  assert.equal(recs[2]!.event, 'server.start')
  // Exactly one newline-terminated line per event.
  assert.equal(chunks.join('').split('\n').length, 4)
})

test('nothing is written synchronously (off the hot path)', async () => {
  const { logger, chunks } = memoryLogger()
  logger.log('server.start')
  assert.equal(chunks.length, 0)
  await logger.flush()
  assert.equal(chunks.length, 1)
})

test('log_level filters lower levels', async () => {
  const { logger, records } = memoryLogger({ log_level: 'WARN' })
  logger.log('a.debug', {}, 'DEBUG')
  logger.log('a.info', {}, 'INFO')
  logger.log('a.warn', {}, 'WARN')
  logger.log('a.error', {}, 'ERROR')
  logger.logAuthAttempt({ success: true, durationMs: 1 })
  logger.logAuthAttempt({ success: false, durationMs: 1, code: 'invalid_signature' })
  assert.deepEqual(
    (await records()).map((r) => r.event),
    ['a.warn', 'a.error', 'handshake.failure'],
  )
})

test('filter_events accepts the description names, dotted names and wildcards', async () => {
  const { logger, records } = memoryLogger({ filter_events: ['auth_failure', 'key_validation', 'server.*'] })
  logger.logAuthAttempt({ success: true, durationMs: 1 })
  logger.logAuthAttempt({ success: false, durationMs: 1 })
  logger.logKeyValidation({ fingerprint: 'f'.repeat(64), valid: false, metadata: { source: 'allowlist' } })
  logger.log('server.start')
  logger.log('session.rejected', { code: 'session_expired' }, 'WARN')
  const recs = await records()
  assert.deepEqual(recs.map((r) => r.event), ['handshake.failure', 'key.validation', 'server.start'])
  assert.deepEqual(recs[1], { ts: recs[1]!.ts, level: 'WARN', event: 'key.validation', fingerprint: 'f'.repeat(64), valid: false, source: 'allowlist' })
  assert.equal(canonicalEventName('auth_success'), 'handshake.success')
  assert.ok(isKnownEventFilter('handshake.*'))
  assert.ok(!isKnownEventFilter('auth_sucess'))
})

test('disabled logger writes nothing; include_performance false drops duration_ms', async () => {
  const off = memoryLogger({ enabled: false })
  off.logger.log('server.start')
  off.logger.logAuthAttempt({ success: true, durationMs: 3 })
  assert.deepEqual(await off.records(), [])
  assert.equal(off.logger.getPerformanceMetrics().count, 1)

  const noPerf = memoryLogger({ include_performance: false })
  noPerf.logger.logAuthAttempt({ success: true, durationMs: 3, clientFingerprint: 'a'.repeat(64) })
  const [rec] = await noPerf.records()
  assert.equal(rec!.client_fingerprint, 'a'.repeat(64))
  assert.ok(!('duration_ms' in rec!))
})

test('secret-named fields are redacted whatever the caller passes', async () => {
  const { logger, records, chunks } = memoryLogger()
  const secrets = {
    token: 'TOKEN-SECRET-1',
    session_token: 'TOKEN-SECRET-2',
    private_key: 'PRIV-SECRET-3',
    secret: 'SECRET-4',
    mac: 'MAC-SECRET-5',
    proof: 'PROOF-SECRET-6',
    signature: 'SIG-SECRET-7',
    password: 'PW-SECRET-8',
    ticket_key: 'TK-SECRET-9',
    sessionToken: 'TOKEN-SECRET-10',
    'X-Session-Token': 'TOKEN-SECRET-11',
  }
  logger.log('session.rejected', { ...secrets, code: 'proof_invalid', nested: { password: 'PW-SECRET-12', ok: 1 }, raw: Buffer.from('SEED-SECRET-13') }, 'WARN')
  logger.logAuthAttempt({ success: true, durationMs: 1, metadata: { session_token: 'TOKEN-SECRET-14' } })
  const [rec, rec2] = await records()
  for (const key of Object.keys(secrets)) assert.equal(rec![key], REDACTED, key)
  assert.deepEqual(rec!.nested, { password: REDACTED, ok: 1 })
  assert.equal(rec!.raw, '[14 bytes]')
  assert.equal(rec!.code, 'proof_invalid')
  assert.equal(rec2!.session_token, REDACTED)
  assert.doesNotMatch(chunks.join(''), /SECRET/)
  assert.ok(isSecretFieldName('mac_key'))
  assert.ok(!isSecretFieldName('client_fingerprint'))
  assert.ok(!isSecretFieldName('machine'))
})

test('reserved fields cannot be overridden by callers', async () => {
  const { logger, records } = memoryLogger()
  logger.log('server.stop', { ts: 'forged', level: 'DEBUG', event: 'forged' })
  const [rec] = await records()
  assert.equal(rec!.ts, '2025-01-02T03:04:05.678Z')
  assert.equal(rec!.level, 'INFO')
  assert.equal(rec!.event, 'server.stop')
})

test('metrics: count, success rate, average and percentiles on known durations', () => {
  const logger = new AuditLogger({ enabled: false })
  assert.deepEqual(logger.getPerformanceMetrics(), {
    count: 0, success_count: 0, failure_count: 0, success_rate: 0, avg_auth_time_ms: 0, p50_ms: 0, p95_ms: 0, p99_ms: 0,
  })
  // 1..100 ms in shuffled order; every 4th fails.
  const order = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1)
  for (const ms of order) logger.logAuthAttempt({ success: ms % 4 !== 0, durationMs: ms })
  const m = logger.getPerformanceMetrics()
  assert.equal(m.count, 100)
  assert.equal(m.success_count, 75)
  assert.equal(m.failure_count, 25)
  assert.equal(m.success_rate, 0.75)
  assert.equal(m.avg_auth_time_ms, 50.5)
  assert.equal(m.p50_ms, 50)
  assert.equal(m.p95_ms, 95)
  assert.equal(m.p99_ms, 99)
})

test('handshake events logged through log() feed the metrics too (no double counting)', () => {
  const logger = new AuditLogger({ enabled: false })
  logger.log('handshake.success', { duration_ms: 4 })
  logger.log('handshake.failure', { duration_ms: 2, code: 'unknown_key' }, 'WARN')
  logger.log('server.start', { duration_ms: 100 })
  logger.logAuthAttempt({ success: true, durationMs: 6 })
  const m = logger.getPerformanceMetrics()
  assert.equal(m.count, 3)
  assert.equal(m.success_count, 2)
  assert.equal(m.avg_auth_time_ms, 4)
})

test('percentiles use the most recent 10 000 durations; totals use all', () => {
  const logger = new AuditLogger({ enabled: false })
  for (let i = 0; i < 10_000; i++) logger.logAuthAttempt({ success: true, durationMs: 1000 })
  for (let i = 0; i < 10_000; i++) logger.logAuthAttempt({ success: true, durationMs: 1 })
  const m = logger.getPerformanceMetrics()
  assert.equal(m.count, 20_000)
  assert.equal(m.p99_ms, 1)
  assert.equal(m.avg_auth_time_ms, 500.5)
})

test('file mode: appends JSON lines, creates the directory, mode 0600', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'logs', 'audit.jsonl')
    const logger = new AuditLogger({ log_file: file })
    logger.log('server.start', { port: 1 })
    await logger.close()
    const again = new AuditLogger({ log_file: file })
    again.log('server.stop')
    await again.close()
    const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { event: string })
    assert.deepEqual(lines.map((l) => l.event), ['server.start', 'server.stop'])
    const { stat } = await import('node:fs/promises')
    assert.equal((await stat(file)).mode & 0o777, 0o600)
    // After close, events are dropped.
    again.log('late.event')
    await again.flush()
    assert.equal((await readFile(file, 'utf8')).trim().split('\n').length, 2)
  })
})

test('rotation: small max_file_size with backup_count 2 keeps log, log.1, log.2 only', async () => {
  await withTempDir(async (dir) => {
    const file = path.join(dir, 'audit.jsonl')
    const logger = new AuditLogger({ log_file: file, max_file_size: 300, backup_count: 2, clock: () => FIXED })
    for (let i = 0; i < 40; i++) {
      logger.log('handshake.success', { n: i, pad: 'x'.repeat(20) })
      if (i % 7 === 0) await logger.flush()
    }
    await logger.close()
    assert.deepEqual((await readdir(dir)).sort(), ['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2'])
    const read = async (name: string) =>
      (await readFile(path.join(dir, name), 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as { n: number }).n)
    const current = await read('audit.jsonl')
    const one = await read('audit.jsonl.1')
    const two = await read('audit.jsonl.2')
    for (const name of ['audit.jsonl', 'audit.jsonl.1', 'audit.jsonl.2']) {
      assert.ok((await readFile(path.join(dir, name))).length <= 300, `${name} exceeds max_file_size`)
    }
    // Newest last, contiguous across files: .2 → .1 → current.
    const all = [...two, ...one, ...current]
    assert.equal(all[all.length - 1], 39)
    for (let i = 1; i < all.length; i++) assert.equal(all[i], all[i - 1]! + 1)
    assert.ok(all[0]! > 0, 'the oldest lines were dropped')
  })
})

test('a write failure is reported, not thrown, and does not stop later events', async () => {
  await withTempDir(async (dir) => {
    const errors: Error[] = []
    // A directory where the file should be: open() fails with EISDIR.
    const logger = new AuditLogger({ log_file: dir, onError: (e) => errors.push(e) })
    logger.log('server.start')
    await logger.flush()
    assert.equal(errors.length, 1)
  })
})

test('stdout mode writes one JSON line per event (child process)', async () => {
  const script = `
    import { AuditLogger } from ${srcModule('audit/audit-logger.js')}
    const logger = new AuditLogger({ log_file: null, clock: () => 0 })
    logger.log('server.start', { port: 8443 })
    logger.logAuthAttempt({ success: false, code: 'timestamp_skew', durationMs: 2, metadata: { token: 'NOPE' } })
    await logger.close()
  `
  const child = spawn(process.execPath, snippetArgs(script), { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr.on('data', (d: Buffer) => (err += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  assert.equal(code, 0, err)
  const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines.length, 2)
  assert.deepEqual(lines[0], { ts: '1970-01-01T00:00:00.000Z', level: 'INFO', event: 'server.start', port: 8443 })
  assert.equal(lines[1]!.event, 'handshake.failure')
  assert.equal(lines[1]!.token, REDACTED)
})

test('fromConfig takes the audit section of a Config', async () => {
  const { defaultConfig } = await import('../../../src/config/load-config.js')
  const logger = AuditLogger.fromConfig({ ...defaultConfig().audit, log_level: 'ERROR' })
  assert.equal(logger.settings.log_level, 'ERROR')
  assert.equal(logger.isEnabled('server.start', 'WARN'), false)
  assert.throws(() => new AuditLogger({ backup_count: -1 }), RangeError)
})
