/**
 * Red team, round 4: attacks on this round's changes — revocation at the handshake and lifted
 * revocations that must not revive sessions (src/revocation, server-handshake.ts, session-verifier.ts,
 * `mcp-allowlist revoke|unrevoke|revoked`), the per-McpAuth reuse of a verified request
 * (src/mcp/server.ts), and the HTTP server's request-deadline / idle-socket timing
 * (src/transport/http-server.ts). Sockets are real and on loopback only; Redis is the shared one on
 * 127.0.0.1:6379 with a key prefix per test (deleted afterwards), or a private redis-server where a
 * test kills connections. Tests named `held:` are regression tests for attacks the product held;
 * `finding N` tests reproduce a finding (fixed, or `todo`).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PassThrough } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { AuthenticationEngine } from '../../src/compat.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createMcpAuth, mountMcpAuth, type McpAuth, type McpRequest } from '../../src/mcp/server.js'
import type { NonceStore } from '../../src/nonce/nonce-store.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { InMemoryRevocationList } from '../../src/revocation/revocation-list.js'
import { createAuthServiceFromConfig } from '../../src/server/from-config.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createAuthService, type AuthService } from '../../src/transport/auth-service.js'
import { createAuthHttpServer, type AuthHttpServer } from '../../src/transport/http-server.js'
import { authenticateWebSocket } from '../../src/transport/ws-client.js'
import { expectCode, makeHarness, wire } from '../helpers/handshake-harness.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { collectReply } from '../helpers/http-reply.js'
import { REDIS_URL, deletePrefix, startPrivateRedis, uniquePrefix, type PrivateRedis } from '../integration/redis-helpers.js'

const ALLOWLIST_CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'cli', 'mcp-allowlist.js')

const cleanups: Array<() => Promise<void> | void> = []
after(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c()
    } catch {
      // best effort
    }
  }
})

let root: string | undefined
async function workDir(): Promise<string> {
  if (root === undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-redteam4-'))
    root = dir
    cleanups.unshift(() => rm(dir, { recursive: true, force: true }))
  }
  return root
}

let dirs = 0
const quiet = (): AuditLogger => new AuditLogger({ enabled: false })

/** An audit logger whose JSON lines are kept in `lines`. */
function capturingAudit(): { audit: AuditLogger; lines: () => string } {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (d: Buffer) => (text += d.toString()))
  return { audit: new AuditLogger({ enabled: true, log_file: null, log_level: 'DEBUG', stream }), lines: () => text }
}

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const t0 = Date.now()
  while (!(await cond())) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

// ------------------------------------------------------------------ HTTP plumbing

interface Reply {
  status: number | string
  text: string
  json: { type?: string; error?: { code?: string } | string; session_token?: unknown; reached?: boolean; client?: string } & Record<string, unknown>
  headers: http.IncomingHttpHeaders
}

interface Target {
  host: string
  port: number
}

/** One request on a fresh connection. */
function send(to: Target, o: { path?: string; method?: string; body?: string; headers?: Record<string, string> }): Promise<Reply> {
  return new Promise((resolveReply) => {
    const body = o.body ?? ''
    const req = http.request(
      { host: to.host, port: to.port, path: o.path ?? '/mcp', method: o.method ?? 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...o.headers } },
      (res) => collectReply<Reply['json']>(res, resolveReply),
    )
    const timer = setTimeout(() => {
      req.destroy()
      resolveReply({ status: 'timeout', text: '', json: {}, headers: {} })
    }, 10_000)
    req.on('error', (e: NodeJS.ErrnoException) => resolveReply({ status: `error ${e.code ?? e.message}`, text: '', json: {}, headers: {} }))
    req.on('close', () => clearTimeout(timer))
    req.end(body)
  })
}

const codeOf = (r: Reply): string | undefined => (typeof r.json.error === 'string' ? r.json.error : r.json.error?.code)
const MCP_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

/** Authorization + proof headers for one request with `session`. */
function authHeaders(session: ClientSession, path = '/mcp', body = MCP_BODY, method = 'POST', mcpSessionId = ''): Record<string, string> {
  return {
    authorization: `Bearer ${session.token}`,
    'mcp-pki-proof': createRequestProof({ session: session, method, target: path, body, mcpSessionId }),
  }
}

/** The whole handshake over HTTP; the session, or the refusing reply. */
async function handshake(to: Target, key: Ed25519KeyPair): Promise<{ session: ClientSession } | { refused: Reply; at: 'm1' | 'm3' }> {
  const c = createClientHandshake({ keyPair: key, audience: `http://${to.host}:${to.port}`, serverTrust: () => ({}) })
  const r2 = await send(to, { path: '/auth', body: JSON.stringify(c.start()) })
  if (r2.status !== 200) return { refused: r2, at: 'm1' }
  const r4 = await send(to, { path: '/auth', body: JSON.stringify(await c.handleChallenge(r2.json)) })
  if (r4.status !== 200) return { refused: r4, at: 'm3' }
  return { session: c.handleComplete(r4.json) }
}

async function sessionAt(to: Target, key: Ed25519KeyPair): Promise<ClientSession> {
  const r = await handshake(to, key)
  if (!('session' in r)) assert.fail(`handshake refused at ${r.at}: ${r.refused.status} ${r.refused.text}`)
  return r.session
}

/** Asserts a handshake is refused as authentication_failed (401) and hands out no token. */
async function assertHandshakeRefused(to: Target, key: Ed25519KeyPair, label: string): Promise<void> {
  const r = await handshake(to, key)
  assert.ok(!('session' in r), `${label}: a session was issued`)
  assert.equal(r.refused.status, 401, `${label}: ${r.refused.text}`)
  assert.equal(codeOf(r.refused), 'authentication_failed', label)
  assert.equal(r.refused.json.session_token, undefined, label)
}

/** POST /mcp with the session: 'ok' (the handler ran for this key) or the refusing code. */
async function mcpCall(to: Target, session: ClientSession, path = '/mcp'): Promise<string> {
  const r = await send(to, { path, body: MCP_BODY, headers: authHeaders(session, path) })
  if (r.status === 200) {
    assert.equal(r.json.reached, true)
    return 'ok'
  }
  assert.equal(r.json.reached, undefined, 'a refused request reached the handler')
  return `${r.status} ${codeOf(r) ?? r.text}`
}

// ------------------------------------------------------------------ fleets on Redis

const NO_LIMITS: ConfigObject = { rate_limit: { per_address: 0, per_key: 0 } }

interface Fleet {
  sb: Sandbox
  prefix: string
  redisUrl: string
}

async function redisFleet(o: { redisUrl?: string; server?: ConfigObject } = {}): Promise<Fleet> {
  const redisUrl = o.redisUrl ?? REDIS_URL
  const prefix = uniquePrefix('rt4')
  if (redisUrl === REDIS_URL) cleanups.push(() => deletePrefix(prefix))
  const sb = await createSandbox(join(await workDir(), `f${dirs++}`), {
    server: { audit: { enabled: false }, auth: { ...NO_LIMITS, nonce_store: { type: 'redis', url: redisUrl, key_prefix: prefix } }, ...o.server },
  })
  return { sb, prefix, redisUrl }
}

interface Front extends Target {
  running: RunningServer
  mcpAuth: McpAuth
  /** Times the /mcp handlers ran. */
  reached: () => number
}

/**
 * mcp-pki-server's stack (startServerFromConfig: /auth, /health, /ws) with MCP routes on the same
 * port: `/mcp` → mcpAuth.protect, `/mcp-fetch` → mcpAuth.protectFetch.
 */
async function startFront(sb: Sandbox, o: { audit?: AuditLogger } = {}): Promise<Front> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  let reached = 0
  const routes = new Map<string, http.RequestListener>()
  const running = await startServerFromConfig(config, {
    audit: o.audit ?? quiet(),
    allowlistPollMs: 100,
    fallback: (req, res) => {
      const route = routes.get((req.url ?? '').split('?')[0]!)
      if (route !== undefined) route(req, res)
      else res.writeHead(404).end()
    },
  })
  cleanups.push(() => running.close())
  const mcpAuth = createMcpAuth(running.configured.service)
  routes.set(
    '/mcp',
    mcpAuth.protect((req: McpRequest, res) => {
      reached++
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reached: true, client: req.auth?.clientId }))
    }),
  )
  routes.set(
    '/mcp-fetch',
    mcpAuth.protectFetch((_request, info) => {
      reached++
      return Response.json({ reached: true, client: info.clientId })
    }),
  )
  return { running, mcpAuth, host: running.address.address, port: running.address.port, reached: () => reached }
}

interface CliRun {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the built mcp-allowlist in `dir`; `skewMs` moves the child's clock (as on another machine). */
async function allowlistCli(dir: string, args: string[], o: { skewMs?: number; env?: Record<string, string> } = {}): Promise<CliRun> {
  assert.ok(existsSync(ALLOWLIST_CLI), `${ALLOWLIST_CLI} is missing: build first (npx tsc -p tsconfig.json)`)
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_') && k !== 'NODE_OPTIONS') env[k] = v
  Object.assign(env, o.env)
  const pre: string[] = []
  if (o.skewMs !== undefined) {
    const file = join(await workDir(), 'skew-clock.mjs')
    if (!existsSync(file)) await writeFile(file, 'const off = Number(process.env.RT4_SKEW_MS)\nconst real = Date.now\nDate.now = () => real() + off\n')
    env.RT4_SKEW_MS = String(o.skewMs)
    pre.push('--import', pathToFileURL(file).href)
  }
  return await new Promise((resolveRun) => {
    execFile(process.execPath, [...pre, ALLOWLIST_CLI, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null
      resolveRun({ status, stdout, stderr })
    })
  })
}

function cliOk(r: CliRun): CliRun {
  assert.equal(r.status, 0, `exit 0 expected; stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

async function listAt(prefix: string, redisUrl = REDIS_URL): Promise<RedisRevocationList> {
  const list = new RedisRevocationList({ redis: redisUrl, keyPrefix: prefix })
  cleanups.push(() => list.close())
  await list.ready()
  return list
}

// ================================================================== 1. revocation

test('held: a key revoked with the CLI gets nothing on any path — /auth message 1 and a pending message 3, /ws, and its live sessions on protect, protectFetch, fetchHandler and an open WebSocket', async () => {
  const { sb } = await redisFleet()
  const { audit, lines } = capturingAudit()
  const front = await startFront(sb, { audit })
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  assert.equal(await mcpCall(front, old, '/mcp-fetch'), 'ok')
  const ws = await authenticateWebSocket({ url: front.running.wsUrl, keyPair: sb.clientKey, serverTrust: () => ({}) })
  const wsFrames: string[] = []
  ws.socket.on('message', (d) => wsFrames.push(String(d)))
  const wsClosed = new Promise<number>((r) => ws.socket.once('close', (code) => r(code)))
  // A handshake under way: message 2 obtained before the revocation, message 3 sent after it.
  const pending = createClientHandshake({ keyPair: sb.clientKey, audience: `http://${front.host}:${front.port}`, serverTrust: () => ({}) })
  const m2 = await send(front, { path: '/auth', body: JSON.stringify(pending.start()) })
  assert.equal(m2.status, 200)

  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp, '--reason', 'rt4 stolen']))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'the live session is refused')
  const reachedBefore = front.reached()

  const m4 = await send(front, { path: '/auth', body: JSON.stringify(await pending.handleChallenge(m2.json)) })
  assert.equal(m4.status, 401, m4.text)
  assert.equal(codeOf(m4), 'authentication_failed')
  assert.equal(m4.json.session_token, undefined)
  await assertHandshakeRefused(front, sb.clientKey, 'fresh handshake over HTTP')
  await assert.rejects(
    authenticateWebSocket({ url: front.running.wsUrl, keyPair: sb.clientKey, serverTrust: () => ({}) }),
    (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed',
  )
  assert.equal(await mcpCall(front, old, '/mcp-fetch'), '401 session_revoked')
  let fetchRan = false
  const viaFetch = await front.mcpAuth.fetchHandler(() => {
    fetchRan = true
    return Response.json({ reached: true })
  })(new Request(`http://${front.host}:${front.port}/mcp`, { method: 'POST', headers: authHeaders(old), body: MCP_BODY }))
  assert.equal(viaFetch.status, 401)
  assert.equal(((await viaFetch.json()) as { error: string }).error, 'session_revoked')
  assert.equal(fetchRan, false)
  // The open WebSocket is told and closed at the next periodic check.
  assert.equal(await Promise.race([wsClosed, sleep(5000).then(() => -1)]), 1008)
  assert.ok(wsFrames.some((f) => f.includes('session_revoked')), wsFrames.join('\n'))
  assert.equal(front.reached(), reachedBefore, 'no handler ran after the revocation')
  // The audit log names the reason; the wire did not.
  await waitFor(() => /"code":"unknown_key"/.test(lines()) && /revoked/.test(lines()), 'audit names the revocation')
})

test('held: unrevoke (CLI) lets the key in again at once but revives nothing — the old session stays session_revoked on the running server and on one started after the unrevoke', async () => {
  const { sb, prefix } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 12)]))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revoked')
  const un = cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 12)]))
  assert.match(un.stdout, /unrevoked/)
  const fresh = await (async () => {
    for (let i = 0; i < 100; i++) {
      const r = await handshake(front, sb.clientKey)
      if ('session' in r) return r.session
      await sleep(50)
    }
    assert.fail('no fresh session after the unrevoke')
  })()
  assert.equal(await mcpCall(front, fresh), 'ok')
  assert.equal(await mcpCall(front, old), '401 session_revoked')
  // A process started after the unrevoke (same server key: it opens the old token) loads the lifted revocation.
  const later = await startFront(sb)
  assert.equal(await mcpCall(later, old), '401 session_revoked')
  // The fresh session was made for the first front's address (its audience): another port refuses it.
  assert.equal(await mcpCall(later, fresh), '401 session_invalid')
  const freshLater = await handshake(later, sb.clientKey)
  assert.ok('session' in freshLater)
  assert.equal(await mcpCall(later, freshLater.session), 'ok')
  // The list that process loaded knows when the lifted revocation began.
  const list = await listAt(prefix)
  assert.ok((list.liftedRevocationAt(fp) ?? 0) > 0)
  assert.deepEqual(list.list(), [])
})

const TEN_MINUTES = 10 * 60_000

test('finding 1 (fixed): revoke + unrevoke run on a machine whose clock is 10 min ahead locked the key out — every fresh session after the unrevoke was session_revoked', async () => {
  const { sb } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: TEN_MINUTES }))
  await waitFor(async () => !('session' in (await handshake(front, sb.clientKey))), 'revoked')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: TEN_MINUTES }))
  let fresh: ClientSession | undefined
  await waitFor(async () => {
    const r = await handshake(front, sb.clientKey)
    if ('session' in r) fresh = r.session
    return fresh !== undefined
  }, 'the key authenticates again')
  // The legitimate session made after the unrevoke must work (it did not: its start was "before"
  // the revocation as timed by the operator's clock).
  assert.equal(await mcpCall(front, fresh!), 'ok')
})

test('finding 1 (fixed): revoke + unrevoke run on a machine whose clock is 10 min behind revived a session begun shortly before the revocation', async () => {
  const { sb } = await redisFleet()
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, old), 'ok')
  await sleep(20)
  cliOk(await allowlistCli(sb.dir, ['revoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: -TEN_MINUTES }))
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revoked')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp], { skewMs: -TEN_MINUTES }))
  await waitFor(async () => 'session' in (await handshake(front, sb.clientKey)), 'the key authenticates again')
  assert.equal(await mcpCall(front, old), '401 session_revoked', 'the session the revocation cut off came back')
})

test('finding 2 (fixed): a revocation whose start is unknown (member of the revoked set without a readable info record: written by hand or damaged) — unrevoke revived every session it had cut off, also in processes started later', async () => {
  const { sb, prefix } = await redisFleet()
  const first = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(first, sb.clientKey)
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  cleanups.push(() => admin.quit().then(() => undefined))
  await admin.multi().sadd(`${prefix}revoked`, fp).hset(`${prefix}revoked-info`, fp, '{"reason":"by hand", "at": "yesterday"').exec()
  // A process started now loads the revocation (start unknown) and refuses the key and its session.
  const second = await startFront(sb)
  assert.equal(await mcpCall(second, old), '401 session_revoked')
  await assertHandshakeRefused(second, sb.clientKey, 'revoked by hand')
  cliOk(await allowlistCli(sb.dir, ['unrevoke', '--config', 'server_config.yml', '--fingerprint', fp]))
  await waitFor(async () => 'session' in (await handshake(second, sb.clientKey)), 'the key authenticates again')
  assert.equal(await mcpCall(second, old), '401 session_revoked', 'revived on the running process')
  const third = await startFront(sb)
  assert.equal(await mcpCall(third, old), '401 session_revoked', 'revived on a process started after the unrevoke')
  const fresh = await sessionAt(third, sb.clientKey)
  assert.equal(await mcpCall(third, fresh), 'ok')
  // (A session is bound to the address it was made for: `second` listens on another port.)
  assert.equal(await mcpCall(second, await sessionAt(second, sb.clientKey)), 'ok')
})

test('finding 3 (fixed): unrevoke through a RedisRevocationList that had not loaded yet (connected, before ready()) left no lifted record — a process started later revived the old sessions', async () => {
  const { sb, prefix } = await redisFleet()
  const fp = sb.clientKey.fingerprint
  const a = await listAt(prefix)
  await a.revoke(fp, 'rt4')
  const revokedAt = a.list()[0]!.revokedAt
  const early = new RedisRevocationList({ redis: REDIS_URL, keyPrefix: prefix })
  cleanups.push(() => early.close())
  // Its command connection is up; the subscription and the first load may not be.
  await new Promise<void>((r) => (early as unknown as { client: Redis }).client.once('ready', () => r()))
  await early.unrevoke(fp)
  await waitFor(() => !a.isRevoked(fp), 'a sees the lift')
  const later = await listAt(prefix)
  assert.equal(later.isRevoked(fp), false)
  assert.equal(later.liftedRevocationAt(fp), revokedAt, 'the lifted revocation is known to a process started afterwards')
  assert.equal(a.liftedRevocationAt(fp), revokedAt)
})

test('held: malformed pub/sub messages (not JSON, wrong types, uppercase or short fingerprints, unknown ops, __proto__) change nothing and crash nothing; the server keeps serving', async () => {
  const { sb, prefix } = await redisFleet()
  const front = await startFront(sb)
  const list = await listAt(prefix)
  const fp = sb.clientKey.fingerprint
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  cleanups.push(() => admin.quit().then(() => undefined))
  const channel = `${prefix}revocations`
  const garbage = [
    'not json',
    '',
    'null',
    '[]',
    '42',
    `{"op":"revoke","fp":"${fp.toUpperCase()}","at":1}`,
    `{"op":"revoke","fp":"${fp.slice(0, 63)}","at":1}`,
    `{"op":"revoke","fp":"${fp} ","at":1}`,
    `{"op":"revoke","fp":"${fp}","at":"1"}`,
    `{"op":"revoke","fp":["${fp}"],"at":1}`,
    `{"op":"REVOKE","fp":"${fp}","at":1}`,
    `{"op":"delete","fp":"${fp}"}`,
    `{"__proto__":{"op":"revoke","fp":"${fp}","at":1}}`,
    `{"op":"session","id":"","exp":9e15}`,
    `{"op":"session","id":{"x":1},"exp":9e15}`,
    `{"op":"session","id":"x","exp":"9e15"}`,
    '{"op":"revoke","fp":' + '"a'.repeat(100_000) + '"}',
  ]
  for (const g of garbage) await admin.publish(channel, g)
  // A well-formed message after them is applied (so they were all processed, in order).
  const probe = 'cd'.repeat(32)
  await admin.publish(channel, JSON.stringify({ op: 'revoke', fp: probe, at: Date.now() }))
  await waitFor(() => list.isRevoked(probe), 'the probe after the garbage')
  assert.equal(list.isRevoked(fp), false)
  assert.equal(list.liftedRevocationAt(fp), undefined)
  assert.equal(list.isSessionRevoked(''), false)
  const s = await sessionAt(front, sb.clientKey)
  assert.equal(await mcpCall(front, s), 'ok')
})

test('held: 40 revoke/unrevoke steps alternating between two processes (each answered before the next) converge: both, and a process started afterwards, agree with Redis and keep the latest lifted start', async () => {
  const { prefix } = await redisFleet()
  const a = await listAt(prefix)
  const b = await listAt(prefix)
  const fps = ['e1'.repeat(32), 'e2'.repeat(32), 'e3'.repeat(32)]
  const admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  cleanups.push(() => admin.quit().then(() => undefined))
  let seed = 7
  const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
  const lastLift = new Map<string, number>()
  for (let i = 0; i < 40; i++) {
    const who = i % 2 === 0 ? a : b
    const fp = fps[rnd(fps.length)]!
    if (rnd(2) === 0) await who.revoke(fp, `step ${i}`)
    else {
      await who.unrevoke(fp)
      const info = await admin.hget(`${prefix}revoked-info`, fp)
      if (info !== null) lastLift.set(fp, (JSON.parse(info) as { at: number }).at)
    }
  }
  const c = await listAt(prefix)
  for (const fp of fps) {
    const inRedis = (await admin.sismember(`${prefix}revoked`, fp)) === 1
    for (const [name, l] of [['a', a], ['b', b], ['c', c]] as const) {
      await waitFor(() => l.isRevoked(fp) === inRedis, `${name} agrees with Redis on ${fp.slice(0, 4)}`)
      assert.equal(l.liftedRevocationAt(fp), lastLift.get(fp), `${name}: lifted start of ${fp.slice(0, 4)}`)
    }
  }
})

test('held: a server whose subscriber was cut off while the key was revoked, then unrevoked, catches up on reconnecting — the old session stays refused, a fresh one works; with Redis gone, handshakes and proofs fail closed (503 server_busy)', async () => {
  const srv: PrivateRedis = await startPrivateRedis()
  cleanups.push(() => srv.stop())
  const { sb, prefix } = await redisFleet({ redisUrl: srv.url })
  const front = await startFront(sb)
  const fp = sb.clientKey.fingerprint
  const old = await sessionAt(front, sb.clientKey)
  const admin = new Redis(srv.url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  admin.on('error', () => undefined)
  cleanups.push(() => admin.disconnect())
  // Revoked while the server's subscriber is gone (killed in the same pipeline: it misses the message).
  const revokedAt = Date.now()
  await admin
    .pipeline()
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    .sadd(`${prefix}revoked`, fp)
    .hset(`${prefix}revoked-info`, fp, JSON.stringify({ reason: 'while away', at: revokedAt }))
    .publish(`${prefix}revocations`, JSON.stringify({ op: 'revoke', fp, at: revokedAt }))
    .exec()
  await waitFor(async () => (await mcpCall(front, old)) === '401 session_revoked', 'revocation seen after the reconnect')
  await assertHandshakeRefused(front, sb.clientKey, 'after the reconnect')
  // Lifted while the subscriber is gone again: the reload brings the lifted start, not a revival.
  await admin
    .pipeline()
    .call('CLIENT', 'KILL', 'TYPE', 'pubsub')
    .srem(`${prefix}revoked`, fp)
    .hset(`${prefix}revoked-info`, fp, JSON.stringify({ at: revokedAt, lifted: Date.now() }))
    .publish(`${prefix}revocations`, JSON.stringify({ op: 'unrevoke', fp, at: revokedAt }))
    .exec()
  let fresh: ClientSession | undefined
  await waitFor(async () => {
    const r = await handshake(front, sb.clientKey)
    if ('session' in r) fresh = r.session
    return fresh !== undefined
  }, 'lift seen after the reconnect')
  assert.equal(await mcpCall(front, old), '401 session_revoked')
  assert.equal(await mcpCall(front, fresh!), 'ok')
  // Redis gone: no handshake and no proof-bound request is accepted unchecked.
  await srv.stop()
  const r = await handshake(front, sb.clientKey)
  assert.ok(!('session' in r))
  assert.equal(r.refused.status, 503, r.refused.text)
  assert.equal(codeOf(r.refused), 'server_busy')
  assert.equal(await mcpCall(front, fresh!), '503 server_busy')
})

test('held: revoked while the nonce store answers message 3 — no session; revoked and lifted in that time — the session issued is refused at its first request', async () => {
  const revocation = new InMemoryRevocationList({ sweepIntervalMs: 0, clock: () => h.serverClock.ms })
  let during: (() => Promise<void>) | undefined
  const inner = new TestNonceStore(1000, () => h.serverClock.ms)
  const slow: NonceStore = {
    async checkAndInsert(nonce, expiresAt, epoch) {
      await during?.()
      return inner.checkAndInsert(nonce, expiresAt, epoch)
    },
    epoch: () => inner.epoch(),
    checkSequence: (...a) => inner.checkSequence(...a),
    size: () => inner.size(),
  }
  const h = makeHarness({ nonceStore: slow, server: { revocation }, verifier: { revocation, nonceStore: inner } })
  const fp = h.p.client.fingerprint
  during = () => revocation.revoke(fp)
  const c1 = h.newClient()
  const m3 = wire(await c1.handleChallenge(wire(h.server.handleRequest(wire(c1.start())))))
  const err = await expectCode(() => h.server.handleResponse(m3), 'unknown_key', 'revoked during the nonce store')
  assert.match(err.message, /revoked during the handshake/)
  await revocation.unrevoke(fp)
  h.serverClock.ms += 1000
  during = async () => {
    await revocation.revoke(fp)
    await revocation.unrevoke(fp)
  }
  const c2 = h.newClient()
  const m3b = wire(await c2.handleChallenge(wire(h.server.handleRequest(wire(c2.start())))))
  const result = await h.server.handleResponse(m3b)
  const session = c2.handleComplete(wire(result.message))
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: MCP_BODY, clock: h.clientClock.now })
  await expectCode(() => h.verifier.verify({ authorization: `Bearer ${session.token}`, proof, method: 'POST', target: '/mcp', body: MCP_BODY }), 'session_revoked', 'straddling session')
  during = undefined
  h.serverClock.ms += 1000
  const fresh = await h.run()
  const proof2 = createRequestProof({ session: fresh.session, method: 'POST', target: '/mcp', body: MCP_BODY, clock: h.clientClock.now })
  assert.equal((await h.verifier.verify({ authorization: `Bearer ${fresh.session.token}`, proof: proof2, method: 'POST', target: '/mcp', body: MCP_BODY })).clientFingerprint, fp)
  revocation.close()
})

test('held: compat AuthenticationEngine with a RedisRevocationList refuses a revoked key at message 3, new or pending (unknown_key), and takes it again after unrevoke', async () => {
  const { sb, prefix } = await redisFleet({ server: { auth: { ...NO_LIMITS, audience: 'https://mcp.example' } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const { loadAllowlistFile } = await import('../../src/allowlist/allowlist-file.js')
  const revocation = await listAt(prefix)
  const engine = new AuthenticationEngine(config, { keyPair: sb.serverKey, allowlist: await loadAllowlistFile(sb.serverAllowlistPath), revocation })
  const client = (): ReturnType<typeof createClientHandshake> => createClientHandshake({ keyPair: sb.clientKey, audience: 'https://mcp.example', serverTrust: () => ({}) })
  const pending = client()
  const m2 = engine.processAuthRequest(wire(pending.start()))
  const m3 = await pending.handleChallenge(wire(m2))
  const other = await listAt(prefix)
  await other.revoke(sb.clientKey.fingerprint, 'rt4')
  await waitFor(() => revocation.isRevoked(sb.clientKey.fingerprint), 'the engine\'s list sees it')
  // Message 1 is answered whatever the key (no allowlist oracle); its message 3 is refused.
  const late = client()
  const lateM3 = await late.handleChallenge(wire(engine.processAuthRequest(wire(late.start()))))
  await expectCode(() => engine.processAuthResponse(wire(lateM3)), 'unknown_key', 'message 3 of a new handshake')
  await expectCode(() => engine.processAuthResponse(wire(m3)), 'unknown_key', 'pending message 3')
  await other.unrevoke(sb.clientKey.fingerprint)
  await waitFor(() => !revocation.isRevoked(sb.clientKey.fingerprint), 'lifted')
  const c = client()
  const done = await engine.processAuthResponse(wire(await c.handleChallenge(wire(engine.processAuthRequest(wire(c.start()))))))
  assert.equal(done.clientFingerprint, sb.clientKey.fingerprint)
})

/** A private redis-server whose AUTH is renamed away: it answers AUTH with an error quoting the arguments. */
async function echoingRedis(): Promise<{ url: (user: string, password: string) => string }> {
  const { freePort } = await import('../integration/redis-helpers.js')
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--rename-command', 'AUTH', ''], { stdio: 'ignore' })
  const exited = new Promise<void>((r) => proc.once('exit', () => r()))
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
  })
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => undefined)
  await waitFor(async () => {
    try {
      if (probe.status !== 'ready') await probe.connect()
      return (await probe.ping()) === 'PONG'
    } catch {
      probe.disconnect()
      return false
    }
  }, 'redis-server with AUTH renamed')
  const auth = (await probe.call('AUTH', 'u', 'p').catch((e: Error) => e.message)) as string
  assert.match(auth, /unknown command .*'p'/, 'this Redis quotes AUTH arguments in its error')
  probe.disconnect()
  return { url: (user, password) => `redis://${user}:${password}@127.0.0.1:${port}` }
}

const SECRET = 'Hunter2-s3cr3t-pw'

test('held: mcp-allowlist revoke/revoked/unrevoke never print the Redis password or user, even when Redis quotes them back in its error', async () => {
  const redis = await echoingRedis()
  const { sb } = await redisFleet()
  const url = redis.url('opsadmin', SECRET)
  for (const args of [['revoked'], ['revoke', '--fingerprint', sb.clientKey.fingerprint, '--reason', 'x'], ['unrevoke', '--fingerprint', sb.clientKey.fingerprint]]) {
    const r = await allowlistCli(sb.dir, [...args, '--config', 'server_config.yml'], { env: { MCP_REDIS_URL: url } })
    assert.notEqual(r.status, 0, `${args[0]}: must fail`)
    const out = r.stdout + r.stderr
    assert.match(r.stderr, /cannot reach Redis at redis:\/\/\*\*\*@127\.0\.0\.1/)
    assert.ok(!out.includes(SECRET) && !out.includes('opsadmin'), `${args[0]} printed a credential: ${out}`)
    assert.doesNotMatch(out, /\n\s+at /, 'no stack trace')
  }
})

test('finding 4 (fixed): a server whose Redis quotes AUTH arguments in its error wrote the Redis password into the audit log (server.error reason); now scrubbed', async () => {
  const redis = await echoingRedis()
  const { sb } = await redisFleet()
  const { audit, lines } = capturingAudit()
  const config = await loadConfig(sb.serverConfigPath, { env: { MCP_REDIS_URL: redis.url('opsadmin', SECRET) } })
  await assert.rejects(createAuthServiceFromConfig(config, { audit }), (err: unknown) => err instanceof AuthError && err.code === 'server_busy')
  await audit.close()
  assert.ok(lines().length > 0, 'the failure is audited')
  assert.ok(!lines().includes(SECRET), `the audit log holds the Redis password: ${lines().split('\n')[0]}`)
})

// ================================================================== 2. MCP: a verified request reused per McpAuth

type ExpressHandler = (req: McpRequest, res: http.ServerResponse, next: (err?: unknown) => void) => unknown
interface ExpressApp {
  use(...handlers: (string | ExpressHandler)[]): unknown
  post(path: string, ...handlers: ExpressHandler[]): unknown
  all(path: string, ...handlers: ExpressHandler[]): unknown
  listen(port: number, host: string, cb: () => void): http.Server
}
// express ships without type declarations here; this is the part used.
const { default: express } = (await import('express' as string)) as { default: () => ExpressApp }

const AUD = 'http://mcp.rt4.test'

interface McpParties {
  service: AuthService
  keyA: Ed25519KeyPair
  keyB: Ed25519KeyPair
}

function mcpParties(): McpParties {
  const p = makeParties()
  const keyB = generateKeyPair()
  p.serverAllowlist.add(keyB.publicKeyRaw, { role: 'other' })
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10_000), audience: AUD })
  return { service, keyA: p.client, keyB }
}

/** A session of `key` with `service`, in process. */
async function inProcessSession(service: AuthService, key: Ed25519KeyPair): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: key, audience: AUD, serverTrust: () => ({}) })
  const r2 = await service.handleMessage(JSON.stringify(c.start()))
  const r4 = await service.handleMessage(JSON.stringify(await c.handleChallenge(r2.body)))
  assert.equal(r4.status, 200, JSON.stringify(r4.body))
  return c.handleComplete(r4.body)
}

/** The request text of a POST /mcp. */
function rawPost(o: { session?: ClientSession; sid?: string; path?: string } = {}): string {
  const path = o.path ?? '/mcp'
  const headers: Record<string, string> = { host: '127.0.0.1', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(MCP_BODY)) }
  if (o.session) Object.assign(headers, authHeaders(o.session, path, MCP_BODY, 'POST', o.sid ?? ''))
  if (o.sid !== undefined) headers['mcp-session-id'] = o.sid
  return `POST ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${MCP_BODY}`
}

/** One keep-alive connection; `exchange` writes requests (pipelined) and reads that many responses. */
async function keepAlive(port: number): Promise<{ exchange(requests: string[]): Promise<Array<{ status: number; body: string }>>; close(): void }> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j))
  let buf = Buffer.alloc(0)
  let waiter: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    waiter?.()
  })
  cleanups.push(() => {
    socket.destroy()
  })
  const parseOne = (): { status: number; body: string } | undefined => {
    const end = buf.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const head = buf.subarray(0, end).toString()
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? '0')
    if (buf.length < end + 4 + len) return undefined
    const body = buf.subarray(end + 4, end + 4 + len).toString()
    buf = buf.subarray(end + 4 + len)
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body }
  }
  return {
    async exchange(requests) {
      socket.write(requests.join(''))
      const out: Array<{ status: number; body: string }> = []
      const deadline = Date.now() + 10_000
      while (out.length < requests.length) {
        const one = parseOne()
        if (one !== undefined) {
          out.push(one)
          continue
        }
        if (Date.now() > deadline || socket.destroyed) assert.fail(`only ${out.length} of ${requests.length} responses`)
        await new Promise<void>((r) => {
          waiter = r
          setTimeout(r, 50)
        })
      }
      return out
    },
    close: () => socket.destroy(),
  }
}

/** The MCP handler under test: records who it ran for; opens MCP session `sess-<n>` when none is named. */
function recordingHandler(seen: string[]): (req: McpRequest, res: http.ServerResponse) => void {
  let n = 0
  return (req, res) => {
    const sid = req.headers['mcp-session-id']
    seen.push(`${req.auth?.clientId.slice(0, 8)}:${typeof sid === 'string' ? sid : '-'}`)
    const text = JSON.stringify({ reached: true, client: req.auth?.clientId })
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }
    if (sid === undefined) headers['mcp-session-id'] = `sess-${++n}`
    res.writeHead(200, headers).end(text)
  }
}

test('held: behind mountMcpAuth, protect of the same McpAuth (Express route, or node:http handler) — on one keep-alive connection with pipelined requests, an unauthenticated request and another key\'s MCP session id get nothing; the reused check keeps the key', async () => {
  for (const mount of ['express', 'node:http'] as const) {
    const { service, keyA, keyB } = mcpParties()
    const mcpAuth = createMcpAuth(service)
    const seen: string[] = []
    const inner = mcpAuth.protect(recordingHandler(seen))
    let server: http.Server
    if (mount === 'express') {
      const app = express()
      mountMcpAuth(app, mcpAuth)
      app.all('/mcp', inner)
      server = await new Promise<http.Server>((done) => {
        const s = app.listen(0, '127.0.0.1', () => done(s))
      })
    } else {
      server = http.createServer()
      mountMcpAuth(server, mcpAuth, { handler: inner })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    }
    cleanups.push(() => {
      server.closeAllConnections()
      server.close()
    })
    const port = (server.address() as AddressInfo).port
    const a = await inProcessSession(service, keyA)
    const b = await inProcessSession(service, keyB)
    const conn = await keepAlive(port)
    const [opened] = await conn.exchange([rawPost({ session: a })])
    assert.equal(opened!.status, 200, `${mount}: ${opened!.body}`)
    const rs = await conn.exchange([rawPost(), rawPost({ session: b, sid: 'sess-1' }), rawPost({ session: a, sid: 'sess-1' }), rawPost({ sid: 'sess-1' })])
    assert.deepEqual(rs.map((r) => r.status), [401, 404, 200, 401], `${mount}: ${rs.map((r) => r.body).join(' | ')}`)
    assert.match(rs[0]!.body, /"error":"session_invalid"/)
    const fpA = keyA.fingerprint.slice(0, 8)
    assert.deepEqual(seen, [`${fpA}:-`, `${fpA}:sess-1`], `${mount}: what the handler saw`)
    assert.equal(JSON.parse(rs[2]!.body).client, keyA.fingerprint)
    conn.close()
  }
})

test('held: behind mountMcpAuth of one McpAuth, protect/protectFetch of an McpAuth over another service re-checks and refuses (session_invalid), whichever sessions are sent; the handler never runs', async () => {
  const one = mcpParties()
  const two = mcpParties()
  const authOne = createMcpAuth(one.service)
  const authTwo = createMcpAuth(two.service)
  const seen: string[] = []
  const app = express()
  mountMcpAuth(app, authOne)
  app.all('/mcp', authTwo.protect(recordingHandler(seen)))
  app.all('/mcp/fetch', authTwo.protectFetch(() => {
    seen.push('fetch')
    return Response.json({ reached: true })
  }))
  const server = await new Promise<http.Server>((done) => {
    const s = app.listen(0, '127.0.0.1', () => done(s))
  })
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  const to = { host: '127.0.0.1', port: (server.address() as AddressInfo).port }
  const s1 = await inProcessSession(one.service, one.keyA)
  const s2 = await inProcessSession(two.service, two.keyA)
  for (const path of ['/mcp', '/mcp/fetch']) {
    const r1 = await send(to, { path, body: MCP_BODY, headers: authHeaders(s1, path) })
    assert.equal(r1.status, 401, r1.text)
    assert.equal(codeOf(r1), 'session_invalid', `${path}: a session of the front instance is not one of the inner`)
    const r2 = await send(to, { path, body: MCP_BODY, headers: authHeaders(s2, path) })
    assert.equal(r2.status, 401, r2.text)
    assert.equal(codeOf(r2), 'session_invalid', `${path}: a session of the inner instance is refused in front`)
  }
  assert.deepEqual(seen, [])
})

// ================================================================== 3. HTTP server: slow senders, idle sockets

/** createAuthHttpServer with a real service: timeout 1 s, 8 connections (2 per address). */
async function smallHttpServer(): Promise<{ http: AuthHttpServer; port: number }> {
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000), audience: AUD })
  const s = createAuthHttpServer({ service, timeoutSec: 1, maxConnections: 8 })
  const addr = await s.listen()
  cleanups.push(() => s.close(100))
  return { http: s, port: addr.port }
}

/** GET /health from `localAddress`: the status, or the error. */
function health(port: number, localAddress: string): Promise<number | string> {
  return new Promise((done) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/health', localAddress, agent: false }, (res) => {
      res.resume()
      res.on('end', () => done(res.statusCode ?? 0))
    })
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`))
    req.end()
  })
}

interface SlowPeer {
  /** The status line the server answered with, once it did. */
  status(): string | undefined
  closed(): boolean
  stop(): void
}

/**
 * A half-open client (it keeps its sending side open after the server's FIN) that writes `first`,
 * then one byte of `drip` every 300 ms, whatever the server answers.
 */
async function slowPeer(port: number, localAddress: string, first: string, drip: string): Promise<SlowPeer> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true })
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j))
  let text = ''
  let closed = false
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
  socket.on('error', () => undefined)
  socket.on('close', () => (closed = true))
  socket.write(first)
  let i = 0
  const timer = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write(drip[i++ % drip.length]!)
  }, 300)
  const stop = (): void => {
    clearInterval(timer)
    socket.destroy()
  }
  cleanups.push(stop)
  return { status: () => /^HTTP\/1\.1 (\d{3}[^\r]*)/.exec(text)?.[1], closed: () => closed, stop }
}

test('finding 5 (fixed): a slow sender told 408 (headers or body too slow) kept its connection slot for as long as it went on trickling bytes into its half-open socket — two such sockets per address locked that address out (a malformed request told 400 was already let go)', async () => {
  const { port } = await smallHttpServer()
  const peers = {
    // headers complete, body arriving 1 byte per 300 ms: request timeout
    slowBody: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.2', 'POST /auth HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{', 'a'))),
    // headers never complete: headers timeout
    slowHeaders: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.3', 'POST /auth HTTP/1.1\r\nhost: x\r\n', 'x-a: b\r\n'))),
    // not HTTP: 400 at once
    garbage: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.4', 'HELLO THERE\r\n\r\n', 'zz'))),
  }
  const expected: Record<keyof typeof peers, RegExp> = { slowBody: /^408/, slowHeaders: /^408/, garbage: /^400/ }
  for (const [kind, list] of Object.entries(peers) as Array<[keyof typeof peers, SlowPeer[]]>) {
    await waitFor(() => list.every((p) => p.status() !== undefined || p.closed()), `${kind}: answered`, 8000)
    for (const p of list) assert.match(p.status() ?? 'closed without a status', expected[kind], kind)
  }
  // The server must let go of them even though they keep sending.
  for (const [kind, list] of Object.entries(peers)) await waitFor(() => list.every((p) => p.closed()), `${kind}: connections closed by the server`, 6000)
  for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) assert.equal(await health(port, address), 200, `${address} can connect again`)
})

test('held: slowloris on headers and on the body, and silent sockets, from two addresses — each cut off (408, or closed when silent), extra sockets over the per-address cap refused, and a third address served all along', async () => {
  const { port } = await smallHttpServer()
  const t0 = Date.now()
  const attackers = [
    ...(await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.5', 'GET /health HTTP/1.1\r\n', 'x-slow: 1\r\n')))),
  ]
  const silent = await Promise.all(
    [0, 1].map(async () => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.6' })
      let closedAt = 0
      s.on('error', () => undefined)
      s.on('close', () => (closedAt = Date.now()))
      await new Promise<void>((r) => s.once('connect', () => r()))
      cleanups.push(() => {
        s.destroy()
      })
      return { closedAt: () => closedAt }
    }),
  )
  // A third socket from 127.0.0.6 is over its cap: closed at once, before it can send anything.
  assert.match(String(await health(port, '127.0.0.6')), /^error /)
  const served: Array<number | string> = []
  while (Date.now() - t0 < 2500) {
    served.push(await health(port, '127.0.0.7'))
    await sleep(100)
  }
  assert.ok(served.length >= 3 && served.every((s) => s === 200), `the third address: ${served.join(',')}`)
  await waitFor(() => attackers.every((a) => a.status() !== undefined), 'slow headers answered', 8000)
  for (const a of attackers) assert.match(a.status()!, /^408/)
  await waitFor(() => silent.every((s) => s.closedAt() > 0), 'silent sockets closed', 8000)
  for (const s of silent) assert.ok(s.closedAt() - t0 < 8000)
  await waitFor(() => attackers.every((a) => a.closed()), 'slow senders disconnected', 8000)
  assert.equal(await health(port, '127.0.0.5'), 200)
  assert.equal(await health(port, '127.0.0.6'), 200)
})

test('finding 6 (fixed): a refused WebSocket upgrade (404 for another path, 503 over the WebSocket cap) was ended but never closed — a half-open peer that kept sending held its connection slot for good', async (t) => {
  const { createAuthWebSocketServer } = await import('../../src/transport/ws-server.js')
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000), audience: AUD })
  const s = createAuthHttpServer({ service, timeoutSec: 1, maxConnections: 8 })
  const ws = createAuthWebSocketServer({ service })
  ws.attach(s.server)
  const { port } = await s.listen()
  const upgrade = 'GET /not-ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n'
  const peers = await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.8', upgrade, 'z')))
  t.after(async () => {
    for (const x of peers) x.stop()
    await ws.close()
    await Promise.race([s.close(100), sleep(2000)])
  })
  await waitFor(() => peers.every((x) => x.status() !== undefined), 'refused', 5000)
  for (const x of peers) assert.match(x.status()!, /^404/)
  await waitFor(() => peers.every((x) => x.closed()), 'closed by the server', 6000)
  assert.equal(await health(port, '127.0.0.8'), 200)
})

test('finding 6 (fixed): a peer that sent a few bytes after its WebSocket upgrade was refused and then left kept the server socket open: the slot stayed taken and a graceful close() never ended', async (t) => {
  const { createAuthWebSocketServer } = await import('../../src/transport/ws-server.js')
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000), audience: AUD })
  const s = createAuthHttpServer({ service, timeoutSec: 1, maxConnections: 8 })
  const ws = createAuthWebSocketServer({ service })
  ws.attach(s.server)
  const { port } = await s.listen()
  let closedServer = false
  t.after(async () => {
    await ws.close()
    if (!closedServer) s.server.close()
  })
  for (let i = 0; i < 2; i++) {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9', allowHalfOpen: true })
    c.on('error', () => undefined)
    c.on('data', () => undefined)
    c.write('GET /not-ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n')
    await sleep(200)
    c.write('zzz')
    await sleep(200)
    c.destroy()
  }
  await sleep(1500)
  const open = await new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)))
  const closing = s.close(100).then(() => (closedServer = true))
  await Promise.race([closing, sleep(5000)])
  assert.equal(open, 0, 'server sockets left open by peers that are gone')
  assert.equal(closedServer, true, 'close() did not end within 5 s')
})
