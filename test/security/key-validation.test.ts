/**
 * Key validation (issue 9, finding 4): no path that takes an ed25519 public key accepts one of the
 * eight small-order points or a non-canonical encoding. With the identity point as a key, the
 * signature R = identity, S = 0 verifies for every message under OpenSSL: a key like that would
 * let anyone in. Covered: the check itself (against an independent BigInt Edwards computation),
 * key files of every format, publicKeyFromRaw, allowlist add / import / load / reload and
 * fingerprint-only entries (library and CLI), a running server given such a key in message 1 and
 * the forged signature in message 3, and a client given such a server key in message 2.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { loadAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import type { KeyLookup, LookupResult } from '../../src/allowlist/types.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig, parseConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { formatOpenSshPublicKey, loadPublicKeyFile } from '../../src/keys/key-file.js'
import { fingerprintOf, generateKeyPair, publicKeyFromRaw, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import {
  blockedEncodings,
  ed25519PublicKeyProblem,
  ed25519PublicKeyProblemFast,
  isBlockedFingerprint,
} from '../../src/keys/point-check.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { authenticate } from '../../src/transport/http-client.js'
import { createAuthHttpServer } from '../../src/transport/http-server.js'
import { TestNonceStore } from '../helpers/fixtures.js'

const ALLOWLIST_CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-allowlist.js')
const PYTHON_FIXTURES = '/work/shared/fixtures/reference-python-format'

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-keyval-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return dir
}

// ---------------------------------------------------------------------------------------------
// An independent model of edwards25519 (affine BigInt arithmetic, RFC 8032 §5.1), used only here.

const p = 2n ** 255n - 19n
const mod = (a: bigint): bigint => ((a % p) + p) % p
function pow(b: bigint, e: bigint): bigint {
  let r = 1n
  let x = mod(b)
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = mod(r * x)
    x = mod(x * x)
  }
  return r
}
const inv = (a: bigint): bigint => pow(a, p - 2n)
const d = mod(-121665n * inv(121666n))
const SQRT_M1 = pow(2n, (p - 1n) / 4n)
type Pt = { x: bigint; y: bigint }
const IDENTITY: Pt = { x: 0n, y: 1n }
function add(a: Pt, b: Pt): Pt {
  const t = mod(d * a.x * b.x * a.y * b.y)
  return { x: mod((a.x * b.y + a.y * b.x) * inv(1n + t)), y: mod((a.y * b.y + a.x * b.x) * inv(1n - t)) }
}
function mul(k: number, a: Pt): Pt {
  let r = IDENTITY
  for (let i = 0; i < k; i++) r = add(r, a)
  return r
}
const isIdentity = (a: Pt): boolean => a.x === 0n && a.y === 1n
/** A square root mod p, or undefined (RFC 8032 §5.1.3 step 3). */
function sqrt(a: bigint): bigint | undefined {
  let x = pow(a, (p + 3n) / 8n)
  if (mod(x * x) !== mod(a)) x = mod(x * SQRT_M1)
  return mod(x * x) === mod(a) ? x : undefined
}
function yOf(enc: Uint8Array): bigint {
  return BigInt('0x' + Buffer.from(enc).reverse().toString('hex')) & (2n ** 255n - 1n)
}
/** Decodes an encoding the way a lenient verifier would (y reduced mod p); undefined when off the curve. */
function decodeLenient(enc: Uint8Array): Pt | undefined {
  const y = mod(yOf(enc))
  const x2 = mod((y * y - 1n) * inv(d * y * y + 1n))
  let x = sqrt(x2)
  if (x === undefined) return undefined
  if ((x & 1n) !== BigInt(enc[31]! >> 7)) x = mod(-x)
  return { x, y }
}
function encode(y: bigint, sign: number): Buffer {
  const b = Buffer.from(y.toString(16).padStart(64, '0'), 'hex').reverse()
  b[31]! |= sign << 7
  return b
}

const IDENTITY_KEY = encode(1n, 0)
/** R = identity, S = 0: verifies for every message under the identity key (cofactorless check). */
const FORGED_SIGNATURE = Buffer.concat([IDENTITY_KEY, Buffer.alloc(32)])
const jwkKey = (raw: Uint8Array): KeyObject => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' })

// ---------------------------------------------------------------------------------------------
// The check itself

test('the threat is real: OpenSSL accepts R = identity, S = 0 under the identity key for any message', () => {
  for (const msg of ['hello', 'anything at all']) assert.equal(verify(null, Buffer.from(msg), jwkKey(IDENTITY_KEY), FORGED_SIGNATURE), true)
})

test('the blocklist is exactly the 8 small-order points plus every y ≥ p, checked by an independent Edwards computation', () => {
  assert.equal(d, 37095705934669439343138083508754565189542113879843219016388785533085940283555n)
  const blocked = blockedEncodings()
  assert.equal(blocked.length, 48)
  const torsion = new Set<string>()
  for (const enc of blocked) {
    assert.notEqual(ed25519PublicKeyProblemFast(enc), undefined, Buffer.from(enc).toString('hex'))
    assert.ok(isBlockedFingerprint(fingerprintOf(enc)))
    const y = yOf(enc)
    if (y >= p) {
      assert.equal(ed25519PublicKeyProblemFast(enc), 'non_canonical')
      continue
    }
    assert.equal(ed25519PublicKeyProblemFast(enc), 'small_order')
    const pt = decodeLenient(enc)
    assert.ok(pt, `${y} decodes`)
    assert.ok(isIdentity(mul(8, pt)), `[8]P = identity for y = ${y}`)
    torsion.add(`${pt.x},${pt.y}`)
  }
  // All 8 points of order dividing 8 are covered (the two "negative zero" spellings of x = 0 decode to the same points).
  assert.equal(torsion.size, 8)
  const orders = [...torsion].map((s) => {
    const [x, y] = s.split(',').map(BigInt) as [bigint, bigint]
    return [1, 2, 4, 8].find((k) => isIdentity(mul(k, { x, y })))
  })
  assert.deepEqual(orders.sort(), [1, 2, 4, 4, 8, 8, 8, 8])
  // The order-8 y values derived from scratch: [2]Q = (±√−1, 0) ⇔ d·y⁴ + 2y² − 1 = 0.
  const disc = sqrt(mod(1n + d))!
  const derived = new Set<bigint>()
  for (const y2 of [mod((-1n + disc) * inv(d)), mod((-1n - disc) * inv(d))]) {
    const y = sqrt(y2)
    if (y !== undefined) for (const v of [y, mod(-y)]) derived.add(v)
  }
  const listed = new Set(blocked.map(yOf).filter((y) => y < p && y > 1n && y < p - 1n))
  assert.deepEqual([...derived].sort(), [...listed].sort())
})

test('random valid keys pass; for random bytes, "not on the curve" agrees with independent decompression', () => {
  for (let i = 0; i < 100; i++) assert.equal(ed25519PublicKeyProblem(generateKeyPair().publicKeyRaw), undefined)
  let off = 0
  for (let i = 0; i < 200; i++) {
    const raw = randomBytes(32)
    if (ed25519PublicKeyProblemFast(raw) !== undefined) continue
    const expected = decodeLenient(raw) === undefined ? 'not_on_curve' : undefined
    if (expected) off++
    assert.equal(ed25519PublicKeyProblem(raw), expected, raw.toString('hex'))
  }
  assert.ok(off > 50, `about half of random strings are off the curve, saw ${off}`)
})

test('publicKeyFromRaw (used for message 1 and 2 keys) refuses every blocked encoding with a message naming the problem and the fix', () => {
  for (const enc of blockedEncodings()) {
    assert.throws(
      () => publicKeyFromRaw(enc),
      (err: unknown) => err instanceof AuthError && err.code === 'key_file_invalid' && /not a usable ed25519 public key \((small-order point|non-canonical)/.test(err.message) && /mcp-keygen/.test(err.message),
    )
  }
  const ok = generateKeyPair()
  assert.equal(publicKeyFromRaw(ok.publicKeyRaw).asymmetricKeyType, 'ed25519')
})

// ---------------------------------------------------------------------------------------------
// Key files of every format

const ORDER8_KEY = blockedEncodings().find((e) => yOf(e) > 1n && yOf(e) < p - 1n)!
const NON_CANONICAL_KEY = encode(p + 2n, 0)
function offCurveKey(): Buffer {
  for (let y = 2n; ; y++) {
    const enc = encode(y, 0)
    if (decodeLenient(enc) === undefined) return enc
  }
}
function keyFileTexts(raw: Buffer): Record<string, string> {
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), raw])
  return {
    spki: `-----BEGIN PUBLIC KEY-----\n${spki.toString('base64')}\n-----END PUBLIC KEY-----\n`,
    openssh: formatOpenSshPublicKey(raw, 'mallory@example') + '\n',
    'legacy-mcp': `-----BEGIN MCP PUBLIC KEY-----\n${raw.toString('base64')}\n-----END MCP PUBLIC KEY-----`,
    'raw-base64': raw.toString('base64') + '\n',
  }
}

test('key files of every format (SPKI PEM, OpenSSH, the Python tool\'s MCP PUBLIC KEY, bare base64) refuse small-order, non-canonical and off-curve keys', async () => {
  const dir = await tempDir()
  const cases: Array<[string, Buffer, RegExp]> = [
    ['identity', IDENTITY_KEY, /small-order point/],
    ['order8', Buffer.from(ORDER8_KEY), /small-order point/],
    ['noncanonical', NON_CANONICAL_KEY, /non-canonical encoding/],
    ['offcurve', offCurveKey(), /not a point on the curve/],
  ]
  for (const [name, raw, reason] of cases) {
    for (const [format, text] of Object.entries(keyFileTexts(raw))) {
      const path = join(dir, `${name}.${format}.pub`)
      await writeFile(path, text)
      await assert.rejects(loadPublicKeyFile(path), (err: unknown) => {
        assert.ok(err instanceof AuthError, String(err))
        assert.equal(err.code, 'key_file_invalid')
        assert.match(err.message, reason, `${name} as ${format}: ${err.message}`)
        assert.ok(err.message.startsWith(`${path}: this is not a usable ed25519 public key`), err.message)
        assert.match(err.message, /generate a new key with mcp-keygen/)
        return true
      })
    }
  }
  // Positive controls: a good key in each format, and the Python tool's own fixture.
  const good = generateKeyPair()
  for (const [format, text] of Object.entries(keyFileTexts(good.publicKeyRaw))) {
    const path = join(dir, `good.${format}.pub`)
    await writeFile(path, text)
    assert.equal((await loadPublicKeyFile(path)).fingerprint, good.fingerprint, format)
  }
  assert.equal((await loadPublicKeyFile(join(PYTHON_FIXTURES, 'client-test.pub'))).format, 'legacy-mcp')
})

// ---------------------------------------------------------------------------------------------
// Allowlists: library, files, CLI

test('Allowlist.add refuses small-order / non-canonical / off-curve keys and fingerprint-only entries naming a blocked key', () => {
  const list = new Allowlist('test-list')
  for (const raw of [IDENTITY_KEY, Buffer.from(ORDER8_KEY), NON_CANONICAL_KEY, offCurveKey()]) {
    assert.throws(() => list.add({ publicKeyRaw: raw }), (err: unknown) => err instanceof AuthError && err.code === 'allowlist_invalid' && /not a usable ed25519 public key/.test(err.message))
  }
  for (const enc of blockedEncodings()) {
    const reason = yOf(enc) >= p ? /non-canonical encoding/ : /small-order point/
    assert.throws(() => list.add({ fingerprint: fingerprintOf(enc) }), (err: unknown) => err instanceof AuthError && err.code === 'allowlist_invalid' && reason.test(err.message))
  }
  assert.equal(list.size, 0)
})

/** Our file format as toJSON writes it, with one good entry and one hand-edited bad one. */
function ourFormatWith(bad: { raw?: Buffer; fingerprint?: string }): { text: string; good: Ed25519KeyPair } {
  const good = generateKeyPair()
  const list = new Allowlist('x')
  list.add({ publicKeyRaw: good.publicKeyRaw, metadata: { role: 'user' } })
  const filler = generateKeyPair()
  list.add({ publicKeyRaw: filler.publicKeyRaw, metadata: { role: 'admin' } })
  let text = list.toJSON()
  const badFp = bad.fingerprint ?? fingerprintOf(bad.raw!)
  text = text.replaceAll(filler.fingerprint, badFp)
  text = text.replace(`"${filler.publicKeyRaw.toString('base64url')}"`, bad.raw ? `"${bad.raw.toString('base64url')}"` : 'null')
  return { text, good }
}

test('a hand-edited allowlist file (our format, the Python tool\'s, fingerprint-only) with a refused key fails to load, naming the entry', async () => {
  const dir = await tempDir()
  const files: Array<[string, string, string]> = []
  for (const [name, raw] of [['identity', IDENTITY_KEY], ['order8', Buffer.from(ORDER8_KEY)], ['noncanonical', NON_CANONICAL_KEY]] as const) {
    files.push([`ours-${name}`, ourFormatWith({ raw }).text, fingerprintOf(raw)])
  }
  const fpOnly = fingerprintOf(IDENTITY_KEY)
  files.push(['ours-fingerprint-only', ourFormatWith({ fingerprint: fpOnly }).text, fpOnly])
  const python = JSON.parse(await readFile(join(PYTHON_FIXTURES, 'test-allowlist.json'), 'utf8')) as { keys: Array<Record<string, unknown>> }
  python.keys.push({ ...python.keys[0], fingerprint: fingerprintOf(IDENTITY_KEY), public_key: IDENTITY_KEY.toString('base64'), description: 'mallory' })
  files.push(['python', JSON.stringify(python, null, 2), fingerprintOf(IDENTITY_KEY)])
  for (const [name, text, fp] of files) {
    const path = join(dir, `${name}.json`)
    await writeFile(path, text)
    await assert.rejects(loadAllowlistFile(path), (err: unknown) => {
      assert.ok(err instanceof AuthError, String(err))
      assert.equal(err.code, 'allowlist_invalid', `${name}: ${err.message}`)
      assert.match(err.message, new RegExp(`entry ${fp}.*not a usable ed25519 public key`), name)
      assert.match(err.message, /mcp-keygen/)
      return true
    })
  }
  // Positive control: the same file without the edit loads.
  const clean = join(dir, 'clean.json')
  await writeFile(clean, JSON.stringify(JSON.parse(await readFile(join(PYTHON_FIXTURES, 'test-allowlist.json'), 'utf8'))))
  assert.equal((await loadAllowlistFile(clean)).size, 1)
})

interface CliRun {
  status: number | null
  stdout: string
  stderr: string
}
async function allowlistCli(dir: string, args: string[]): Promise<CliRun> {
  assert.ok(existsSync(ALLOWLIST_CLI), `${ALLOWLIST_CLI} is missing: build first (npx tsc -p tsconfig.json)`)
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_') && k !== 'NODE_OPTIONS') env[k] = v
  return await new Promise((done) => {
    execFile(process.execPath, [ALLOWLIST_CLI, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null
      done({ status, stdout, stderr })
    })
  })
}

test('mcp-allowlist add --key-file (every format) / --fingerprint / import refuse a small-order key; the allowlist file is unchanged', async () => {
  const dir = await tempDir()
  const sb = await createSandbox(dir)
  const before = await readFile(sb.serverAllowlistPath)
  for (const [format, text] of Object.entries(keyFileTexts(IDENTITY_KEY))) {
    const keyFile = join(dir, `identity.${format}.pub`)
    await writeFile(keyFile, text)
    const r = await allowlistCli(dir, ['add', '--config', sb.serverConfigPath, '--key-file', keyFile, '--metadata', '{"role":"admin"}'])
    assert.equal(r.status, 1, `${format}: ${r.stdout}${r.stderr}`)
    assert.match(r.stderr, /this is not a usable ed25519 public key \(small-order point/, format)
    assert.match(r.stderr, /generate a new key with mcp-keygen/)
  }
  const byFp = await allowlistCli(dir, ['add', '--config', sb.serverConfigPath, '--fingerprint', fingerprintOf(IDENTITY_KEY)])
  assert.equal(byFp.status, 1, byFp.stderr)
  assert.match(byFp.stderr, /not a usable ed25519 public key \(small-order point/)

  const evil = join(dir, 'evil.json')
  await writeFile(evil, ourFormatWith({ raw: IDENTITY_KEY }).text)
  for (const mode of ['--merge', '--replace']) {
    const imp = await allowlistCli(dir, ['import', '--config', sb.serverConfigPath, '--input', evil, mode])
    assert.equal(imp.status, 1, imp.stderr)
    assert.match(imp.stderr, new RegExp(`entry ${fingerprintOf(IDENTITY_KEY)}.*not a usable ed25519 public key`))
  }
  assert.deepEqual(await readFile(sb.serverAllowlistPath), before)
  // Positive control: a good key is added.
  const ok = await allowlistCli(dir, ['add', '--config', sb.serverConfigPath, '--key-file', join(PYTHON_FIXTURES, 'client-test.pub')])
  assert.equal(ok.status, 0, ok.stderr)
})

// ---------------------------------------------------------------------------------------------
// A running server

async function startSandboxServer(sb: Sandbox): Promise<{ running: RunningServer; events: Array<{ event: string; fields: Record<string, unknown> }> }> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const events: Array<{ event: string; fields: Record<string, unknown> }> = []
  const running = await startServerFromConfig(config, {
    audit: new AuditLogger({ enabled: false }),
    allowlistPollMs: 60_000,
    onEvent: (event, fields) => events.push({ event, fields: { ...fields } }),
  })
  cleanups.push(() => running.close())
  return { running, events }
}

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, json: (await res.json()) as Record<string, unknown> }
}

/**
 * Runs a handshake as a client claiming `raw` as its key: message 1 with that key; when a
 * challenge comes back, message 3 with the forged signature R = identity, S = 0. Returns every
 * HTTP status seen.
 */
async function forgedHandshake(url: string, audience: string, raw: Buffer, serverFingerprint: string): Promise<number[]> {
  const real = generateKeyPair()
  const claimed: Ed25519KeyPair = { ...real, publicKeyRaw: raw, fingerprint: fingerprintOf(raw) }
  const client = createClientHandshake({ keyPair: claimed, audience, serverTrust: createServerTrust({ pinnedFingerprint: serverFingerprint }) })
  const m1 = await post(url, client.start())
  if (m1.status !== 200) return [m1.status]
  const m3 = (await client.handleChallenge(m1.json)) as unknown as Record<string, unknown>
  m3.signature = FORGED_SIGNATURE.toString('base64url')
  const r3 = await post(url, m3)
  return [m1.status, r3.status]
}

test('a running server: message 1 with any small-order key and message 3 with R = identity, S = 0 never get a session', async () => {
  const dir = await tempDir()
  const sb = await createSandbox(dir, { server: { auth: { rate_limit: { per_address: 0, per_key: 0 } } } })
  const { running, events } = await startSandboxServer(sb)
  const audience = running.authUrl.replace(/\/auth$/, '')
  for (const enc of blockedEncodings()) {
    const statuses = await forgedHandshake(running.authUrl, audience, Buffer.from(enc), running.fingerprint)
    assert.equal(statuses.includes(200) ? statuses.length : 1, statuses.length, 'a challenge is followed by message 3')
    assert.notEqual(statuses.at(-1), 200, `${Buffer.from(enc).toString('hex')}: ${statuses.join(',')}`)
  }
  assert.equal(events.filter((e) => e.event === 'handshake.success').length, 0)
  // Positive control: the sandbox client authenticates against the same server.
  const session = await authenticate({ url: running.authUrl, keyPair: sb.clientKey, serverTrust: createServerTrust({ pinnedFingerprint: running.fingerprint }), retryAttempts: 0 })
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)
})

test('a server whose KeyLookup lists every key (a custom lookup, no checks of its own) still refuses small-order and non-canonical keys at message 1', async () => {
  const server = generateKeyPair()
  const permissive: KeyLookup = {
    lookup(fingerprint, _now, raw): LookupResult {
      if (raw === undefined) return { status: 'unknown' }
      const entry = { fingerprint, publicKeyRaw: Buffer.from(raw), description: undefined, metadata: { role: 'admin' }, addedAt: '', addedBy: undefined, notAfter: undefined }
      return { status: 'ok', entry, publicKey: jwkKey(raw) }
    },
  }
  const service = createAuthService({ keyPair: server, allowlist: permissive, nonceStore: new TestNonceStore(1000, () => Date.now()), audience: 'https://mcp.example' })
  const httpServer = createAuthHttpServer({ service, host: '127.0.0.1', port: 0 })
  await httpServer.listen()
  cleanups.push(() => httpServer.close())
  const url = httpServer.url('/auth')
  for (const enc of blockedEncodings()) {
    const statuses = await forgedHandshake(url, 'https://mcp.example', Buffer.from(enc), server.fingerprint)
    // mcp-pki/2: refused at message 1 as a malformed field (400 invalid_message), before any signature.
    assert.deepEqual(statuses, [400], Buffer.from(enc).toString('hex'))
  }
  // Positive control: an ordinary key gets through this lookup (so the 401s above are the key check).
  const ok = generateKeyPair()
  const session = await authenticate({ url, audience: 'https://mcp.example', keyPair: ok, serverTrust: createServerTrust({ pinnedFingerprint: server.fingerprint }), retryAttempts: 0 })
  assert.equal(session.clientFingerprint, ok.fingerprint)
})

test('a running server: a hand-edited allowlist with a small-order entry is refused on reload (audited, naming the entry); the last good list keeps serving', async () => {
  const dir = await tempDir()
  const sb = await createSandbox(dir)
  const { running, events } = await startSandboxServer(sb)
  const text = await readFile(sb.serverAllowlistPath, 'utf8')
  const fp = fingerprintOf(IDENTITY_KEY)
  const line = `    "${fp}": {"fingerprint":"${fp}","public_key":"${IDENTITY_KEY.toString('base64url')}","description":null,"added_at":"2026-01-01T00:00:00.000Z","added_by":null,"metadata":{"role":"admin"}},`
  await writeFile(sb.serverAllowlistPath, text.replace('  "keys": {\n', `  "keys": {\n${line}\n`))
  await running.configured.reloadAllowlist()
  const failed = events.find((e) => e.event === 'allowlist.reload_failed')
  assert.ok(failed, JSON.stringify(events))
  assert.match(String(failed.fields.reason), new RegExp(`entry ${fp}.*small-order point.*keeping the last good allowlist`))
  assert.equal(running.configured.allowlist.lookup(fp, Date.now(), IDENTITY_KEY).status, 'unknown')
  const statuses = await forgedHandshake(running.authUrl, running.authUrl.replace(/\/auth$/, ''), IDENTITY_KEY, running.fingerprint)
  assert.notEqual(statuses.at(-1), 200)
  const session = await authenticate({ url: running.authUrl, keyPair: sb.clientKey, serverTrust: createServerTrust({ pinnedFingerprint: running.fingerprint }), retryAttempts: 0 })
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)
})

test('fingerprint-only completion never takes a refused key, even from a list that holds such a fingerprint', () => {
  // Reach the completion path directly: the loaders refuse these fingerprints, so build the list
  // from a file text that bypasses nothing and check lookup with an off-curve key whose fingerprint is listed.
  const raw = offCurveKey()
  const list = Allowlist.fromValue({ version: 1, keys: { [fingerprintOf(raw)]: { fingerprint: fingerprintOf(raw), public_key: null } } })
  let completed = 0
  list.onComplete = () => completed++
  assert.equal(list.lookup(fingerprintOf(raw), Date.now(), raw).status, 'unknown')
  assert.equal(completed, 0)
  assert.equal(list.get(fingerprintOf(raw))?.publicKeyRaw, undefined)
  // Positive control: the right key completes the entry.
  const good = generateKeyPair()
  const list2 = Allowlist.fromValue({ version: 1, keys: { [good.fingerprint]: { fingerprint: good.fingerprint, public_key: null } } })
  assert.equal(list2.lookup(good.fingerprint, Date.now(), good.publicKeyRaw).status, 'ok')
})

// ---------------------------------------------------------------------------------------------
// The client side: message 2 and pins

/** A fake server: answers message 1 with a real challenge whose key and signature are replaced by `raw` and R = identity, S = 0. */
async function fakeServer(raw: Buffer): Promise<{ url: string; requests: () => number }> {
  const real = generateKeyPair()
  const service = createAuthService({ keyPair: real, allowlist: { lookup: (fp, _n, key) => (key ? { status: 'ok', entry: { fingerprint: fp, publicKeyRaw: Buffer.from(key), description: undefined, metadata: {}, addedAt: '', addedBy: undefined, notAfter: undefined }, publicKey: jwkKey(key) } : { status: 'unknown' }) }, nonceStore: new TestNonceStore(1000, () => Date.now()), audience: 'https://mcp.example' })
  let requests = 0
  const server = http.createServer((req, res) => {
    requests++
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      void (async () => {
        const reply = await service.handleMessage(body, { remote: '127.0.0.1', transport: 'http' })
        const m2 = reply.body as unknown as Record<string, unknown>
        if (m2.type === 'auth_challenge') {
          m2.server_public_key = raw.toString('base64url')
          m2.signature = FORGED_SIGNATURE.toString('base64url')
        }
        res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(m2))
      })()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(() => new Promise((r) => server.close(r)))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`, requests: () => requests }
}

test('a client given a small-order server key in message 2 refuses it before asking trust-on-first-use, and never sends message 3', async () => {
  for (const raw of [IDENTITY_KEY, Buffer.from(ORDER8_KEY)]) {
    const fake = await fakeServer(raw)
    let asked = 0
    const trust = createServerTrust({ onUnknownKey: () => (asked++, true) })
    await assert.rejects(
      authenticate({ url: fake.url, audience: 'https://mcp.example', keyPair: generateKeyPair(), serverTrust: trust, retryAttempts: 0 }),
      (err: unknown) => err instanceof AuthError && err.code === 'server_key_rejected' && /not a usable ed25519 public key \(small-order point/.test(err.message),
    )
    assert.equal(asked, 0)
    assert.equal(fake.requests(), 1)
    // A custom trust function that trusts everything: the key import still refuses it.
    const fake2 = await fakeServer(raw)
    await assert.rejects(
      authenticate({ url: fake2.url, audience: 'https://mcp.example', keyPair: generateKeyPair(), serverTrust: () => undefined, retryAttempts: 0 }),
      (err: unknown) => err instanceof AuthError && /not a usable ed25519 public key/.test(err.message),
    )
    assert.equal(fake2.requests(), 1)
  }
})

test('a client config pinning the fingerprint of a small-order key is refused, naming the server entry', () => {
  for (const enc of [IDENTITY_KEY, NON_CANONICAL_KEY]) {
    const fp = createHash('sha256').update(enc).digest('hex')
    assert.throws(
      () => parseConfig(`servers:\n  prod:\n    url: https://mcp.example\n    fingerprint: ${fp}\n`, { env: {} }),
      (err: unknown) => err instanceof AuthError && /servers\.prod\.fingerprint/.test(err.message) && /small-order or non-canonical/.test(err.message),
    )
  }
  const good = generateKeyPair()
  assert.equal(parseConfig(`servers:\n  prod:\n    url: https://mcp.example\n    fingerprint: ${good.fingerprint}\n`, { env: {} }).config.servers.prod?.fingerprint, good.fingerprint)
})
