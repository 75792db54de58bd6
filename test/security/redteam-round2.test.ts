/**
 * Red team, round 2: attacks on what changed most recently — the default audience check
 * (local-audience.ts), the per-request session fast path (session-verifier.ts, session-token.ts,
 * hmac-sha256.ts, memory-nonce-store.ts), the SDK 2.x integration (protectFetch, fetchHandler,
 * fetchAuthHandler) and the ephemeral key pool. Every attack is made as an outsider over real
 * sockets on loopback (a Unix socket where that is the point). Tests named `held:` are regression
 * tests for attacks the product held; `finding N` tests reproduce a finding (fixed, or `todo`).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import { createMcpAuth, mountMcpAuth, type McpAuth, type McpFetchHandler } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { collectReply } from '../helpers/http-reply.js'

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const quiet = (): AuditLogger => new AuditLogger({ enabled: false })

async function sandbox(server: ConfigObject = {}): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-redteam2-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return createSandbox(dir, { server: { audit: { enabled: false }, ...server } })
}

/** The real server (mcp-pki-server's code path) from a sandbox config. */
async function startServer(server: ConfigObject = {}, sb?: Sandbox): Promise<{ sb: Sandbox; running: RunningServer; port: number }> {
  const box = sb ?? (await sandbox(server))
  const config = await loadConfig(box.serverConfigPath, { env: {} })
  const running = await startServerFromConfig(config, { audit: quiet(), allowlistPollMs: 100 })
  cleanups.push(() => running.close())
  return { sb: box, running, port: running.address.port }
}

interface Reply {
  status: number | string
  text: string
  json: { type?: string; error?: { code?: string } | string; challenge_token?: unknown } & Record<string, unknown>
  headers: http.IncomingHttpHeaders
}

type Target = { port: number } | { socketPath: string }

/** One request on a fresh connection; resolves `timeout` instead of hanging. */
function send(
  to: Target,
  o: { method?: string; path?: string; body?: string | Buffer; headers?: Record<string, string | string[]>; rawHeaders?: string[]; timeoutMs?: number; chunked?: boolean },
): Promise<Reply> {
  return new Promise((resolve) => {
    const body = o.body ?? ''
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json', ...(o.chunked === true ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...o.headers }
    const req = http.request({ ...('port' in to ? { host: '127.0.0.1', port: to.port } : { socketPath: to.socketPath }), path: o.path ?? '/mcp', method: o.method ?? 'POST', agent: false, headers }, (res) => collectReply<Reply['json']>(res, resolve))
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 'timeout', text: '', json: {}, headers: {} })
    }, o.timeoutMs ?? 4000)
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, text: '', json: {}, headers: {} }))
    req.on('close', () => clearTimeout(timer))
    if (o.chunked === true && Buffer.byteLength(body) > 0) {
      // Two chunks, so the body is really streamed.
      const b = Buffer.from(body)
      req.write(b.subarray(0, b.byteLength >> 1))
      req.end(b.subarray(b.byteLength >> 1))
    } else req.end(body)
  })
}

const codeOf = (r: Reply): string | undefined => (typeof r.json.error === 'string' ? r.json.error : r.json.error?.code)

const m1For = (sb: Sandbox, audience: string): unknown => createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start()

async function handshakeAt(to: Target, sb: Sandbox, audience: string, authPath = '/auth'): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) })
  const r2 = await send(to, { path: authPath, body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const r4 = await send(to, { path: authPath, body: JSON.stringify(await c.handleChallenge(r2.json)) })
  assert.equal(r4.status, 200, r4.text)
  return c.handleComplete(r4.json)
}

// ------------------------------------------------------------------ 1. default audience check

test('held: audience spellings that really mean this machine on this port are accepted; look-alikes and other ports are refused', async () => {
  const { sb, port } = await startServer()
  const to = { port }
  // Each of these is parsed (WHATWG URL, as every client does) to a loopback name of this machine
  // on the port the request came in on: accepting them grants nothing meant for another server.
  const same = [
    `http://127.1:${port}`,
    `http://0x7f.1:${port}`,
    `http://2130706433:${port}`,
    `http://0177.0.0.1:${port}`,
    `http://%6c%6fcalhost:${port}`,
    `HTTP://LOCALHOST:${port}`,
    `http:\\\\127.0.0.1:${port}`,
    ` http://127.0.0.1:${port} `,
    `http://127.0.0.1:0${port}`,
    `http://127.0.0.1.:${port}`,
    `http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:${port}`,
    `ws://127.0.0.1:${port}`,
    `wss://localhost:${port}/ws`,
    `http://127.0.0.1:${port}\\@evil.example`,
    // the socket's own IPv4 address written as IPv4-mapped IPv6: the same address
    `http://[::ffff:127.0.0.1]:${port}`,
  ]
  for (const audience of same) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 200, `${audience}: ${r.text}`)
    assert.equal(r.json.type, 'auth_challenge', audience)
  }
  // Another port (explicit or by a scheme's default), a wildcard, another loopback address this
  // machine does not list, names that merely contain or resemble ours, userinfo and non-web schemes.
  const other = [
    `http://127.0.0.1:${port + 1}`,
    'http://127.0.0.1:443',
    'https://127.0.0.1',
    'ws://127.0.0.1',
    `http://127.0.0.1:${port + 65536}`,
    `http://0.0.0.0:${port}`,
    `http://0:${port}`,
    `http://127.0.0.2:${port}`,
    // ::1 is this machine too, but not the address this server's socket is on (127.0.0.1)
    `http://[0:0:0:0:0:0:0:1]:${port}`,
    `http://[::1]:${port}`,
    `http://localhost.:${port}`,
    `http://localhost.evil.example:${port}`,
    `http://127.0.0.1.nip.io:${port}`,
    `http://xn--localhost:${port}`,
    `http://user@127.0.0.1:${port}`,
    `http://127.0.0.1:${port}@evil.example`,
    `http://evil.example#@127.0.0.1:${port}`,
    `http://evil.example?@127.0.0.1:${port}`,
    `http://localhost:${port}:80`,
    `file://127.0.0.1:${port}`,
    `blob:http://127.0.0.1:${port}`,
    `ftp://127.0.0.1:${port}`,
    `127.0.0.1:${port}`,
    `//127.0.0.1:${port}`,
  ]
  for (const audience of other) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, `${audience}: ${r.text}`)
    assert.equal(codeOf(r), 'invalid_message', audience)
    assert.equal(r.json.challenge_token, undefined, `nothing granted for ${audience}`)
  }
})

test('held: message 3 is checked against the socket port too (a challenge won on one server cannot be finished on another port)', async () => {
  // Two instances of one server (same key, same derived ticket key) on two ports.
  const a = await startServer()
  const b = await startServer({}, a.sb)
  assert.notEqual(a.port, b.port)
  const c = createClientHandshake({ keyPair: a.sb.clientKey, audience: `http://127.0.0.1:${a.port}`, serverTrust: () => ({}) })
  const r2 = await send({ port: a.port }, { path: '/auth', body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const m3 = JSON.stringify(await c.handleChallenge(r2.json))
  const atB = await send({ port: b.port }, { path: '/auth', body: m3 })
  assert.equal(atB.status, 400, atB.text)
  assert.equal(codeOf(atB), 'invalid_message')
  assert.equal(atB.json.session_token, undefined)
  // The refusal consumed nothing: the client can still finish where it meant to.
  const atA = await send({ port: a.port }, { path: '/auth', body: m3 })
  assert.equal(atA.status, 200, atA.text)
})

test(
  'finding 1 (fixed): the default audience check binds the address the connection arrived on (a message 1 for another server on [::1]:P is refused by the server on 127.0.0.1:P)',
  async () => {
    const a = await startServer()
    // Another server (another key) listens on the same port number on the IPv6 loopback.
    const b = await startServer({ transport: { host: '::1', port: a.port } })
    assert.equal(b.port, a.port)
    // A client of B (audience B's URL) relayed to A: A must refuse it.
    const r = await send({ port: a.port }, { path: '/auth', body: JSON.stringify(m1For(a.sb, `http://[::1]:${a.port}`)) })
    assert.equal(r.status, 400, r.text)
    assert.equal(codeOf(r), 'invalid_message')
  },
)

/** createMcpAuth + mountMcpAuth on a node:http server listening on `where` (port 0 on loopback, or a Unix socket path). */
async function mcpServer(
  sb: Sandbox,
  o: { where?: string; fetchHandler?: McpFetchHandler; clock?: () => number } = {},
): Promise<{ to: Target; port: number | undefined; configured: ConfiguredAuthService; mcpAuth: McpAuth; server: http.Server }> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100, ...(o.clock === undefined ? {} : { clock: o.clock }) })
  const mcpAuth = createMcpAuth(configured.service)
  const server = http.createServer()
  mountMcpAuth(server, mcpAuth, { fetchHandler: o.fetchHandler ?? ((_req, info) => Response.json({ reached: true, client: info.clientId })) })
  await new Promise<void>((r) => (o.where === undefined ? server.listen(0, '127.0.0.1', r) : server.listen(o.where, r)))
  cleanups.push(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    await configured.close()
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr !== null ? (addr as AddressInfo).port : undefined
  return { to: o.where === undefined ? { port: port! } : { socketPath: o.where }, port, configured, mcpAuth, server }
}

test('finding 2 (fixed): mcpAuth.authHandler on a Unix socket (no local port) no longer skips the default audience check', async () => {
  const sb = await sandbox()
  const path = join(sb.dir, 'mcp.sock')
  const { to } = await mcpServer(sb, { where: path })
  for (const audience of ['https://another-server.example', 'http://localhost', 'http://127.0.0.1:0', 'x']) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, `${audience}: ${r.text}`)
    assert.equal(codeOf(r), 'invalid_message', audience)
    assert.equal(r.json.challenge_token, undefined, 'nothing granted')
  }
  // With the audience configured (what a server behind a proxy needs anyway) the handshake completes.
  const sb2 = await sandbox({ auth: { audience: 'https://mcp.example.com' } })
  const configuredAt = await mcpServer(sb2, { where: join(sb2.dir, 'mcp.sock') })
  const session = await handshakeAt(configuredAt.to, sb2, 'https://mcp.example.com')
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: '{}' })
  const ok = await send(configuredAt.to, { body: '{}', headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(ok.status, 200, ok.text)
})

/** A node:http front for fetch-style handlers (what @hono/node-server and friends do): streams the body. */
async function fetchFront(app: (request: Request) => Promise<Response>): Promise<number> {
  const server = http.createServer((req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
    const headers = new Headers()
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v)
    const init: RequestInit & { duplex?: 'half' } = { method: req.method ?? 'GET', headers }
    if (hasBody) {
      init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>
      init.duplex = 'half'
    }
    app(new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, init)).then(
      async (response) => {
        res.writeHead(response.status, Object.fromEntries(response.headers))
        res.end(Buffer.from(await response.arrayBuffer()))
      },
      () => res.writeHead(500).end(),
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })
  return (server.address() as AddressInfo).port
}

test(
  'finding 3 (fixed): fetchAuthHandler without a configured audience fails closed (it has no socket to check against)',
  async () => {
    const sb = await sandbox()
    const configured = await createAuthServiceFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), { audit: quiet() })
    cleanups.push(() => configured.close())
    const mcpAuth = createMcpAuth(configured.service)
    const port = await fetchFront((request) => mcpAuth.fetchAuthHandler(request))
    const r = await send({ port }, { path: '/auth', body: JSON.stringify(m1For(sb, 'https://another-server.example')) })
    assert.equal(r.status, 400, r.text)
    assert.equal(codeOf(r), 'invalid_message')
  },
)

test('held: WebSocket /ws refuses a message 1 for another port or another server; the gateway-style authHandler checks the socket port', async () => {
  const sb = await sandbox()
  const { to, port } = await mcpServer(sb)
  for (const audience of [`http://127.0.0.1:${port! + 1}`, 'https://another-server.example']) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, r.text)
    assert.equal(codeOf(r), 'invalid_message')
  }
  const ok = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, `http://localhost:${port!}/mcp`)) })
  assert.equal(ok.status, 200, ok.text)
})

// ------------------------------------------------------------------ 2. per-request session checks

interface SessionSetup {
  sb: Sandbox
  to: Target
  port: number
  clock: { ms: number }
  session: ClientSession
  seen: Array<{ method: string; url: string; body: string; sid: string | null }>
  configured: ConfiguredAuthService
  mcpAuth: McpAuth
  headers(proof: string, token?: string): Record<string, string>
  proof(o?: { method?: string; target?: string; body?: string; at?: number; sid?: string }): string
}

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

async function sessionSetup(o: { fetchHandler?: McpFetchHandler } = {}): Promise<SessionSetup> {
  const sb = await sandbox()
  const clock = { ms: Date.now() }
  const seen: SessionSetup['seen'] = []
  const fetchHandler: McpFetchHandler =
    o.fetchHandler ??
    (async (request, info) => {
      const body = request.body === null ? '' : await request.text()
      seen.push({ method: request.method, url: new URL(request.url).pathname + new URL(request.url).search, body, sid: request.headers.get('mcp-session-id') })
      return Response.json({ reached: true, client: info.clientId }, { headers: { 'mcp-session-id': 'sess-' + info.clientId.slice(0, 8) } })
    })
  const s = await mcpServer(sb, { clock: () => clock.ms, fetchHandler })
  const session = await handshakeAt(s.to, sb, `http://127.0.0.1:${s.port!}/mcp`)
  return {
    sb,
    to: s.to,
    port: s.port!,
    clock,
    session,
    seen,
    configured: s.configured,
    mcpAuth: s.mcpAuth,
    headers: (proof, token = session.token) => ({ authorization: `Bearer ${token}`, 'mcp-pki-proof': proof }),
    proof: (p = {}) =>
      createRequestProof({ session: session, method: p.method ?? 'POST', target: p.target ?? '/mcp', body: p.body ?? BODY, timestamp: p.at ?? clock.ms, mcpSessionId: p.sid ?? '' }),
  }
}

async function expectRefused(s: SessionSetup, r: Reply, status: number, code: string, label: string): Promise<void> {
  assert.equal(r.status, status, `${label}: ${r.text}`)
  assert.equal(codeOf(r), code, `${label}: ${r.text}`)
  if (status === 401) assert.match(String(r.headers['www-authenticate']), /^Bearer /, label)
  await Promise.resolve()
  void s
}

test('held: a proof replayed with another method, target or body is proof_invalid and reaches nothing', async () => {
  const s = await sessionSetup()
  const proof = s.proof()
  const variants: Array<{ label: string; method?: string; path?: string; body?: string }> = [
    { label: 'GET', method: 'GET', body: '' },
    { label: 'DELETE', method: 'DELETE', body: '' },
    { label: 'HEAD', method: 'HEAD', body: '' },
    { label: 'PUT same body', method: 'PUT' },
    { label: 'query added', path: '/mcp?x=1' },
    { label: 'empty query', path: '/mcp?' },
    { label: 'body + space', body: BODY + ' ' },
    { label: 'body, duplicated key', body: BODY.replace('"method"', '"method":"tools/call","method"') },
    { label: 'empty body', body: '' },
  ]
  for (const v of variants) {
    const r = await send(s.to, { method: v.method ?? 'POST', path: v.path ?? '/mcp', body: v.body ?? BODY, headers: s.headers(proof) })
    if (v.method === 'HEAD') {
      assert.equal(r.status, 401, v.label)
      continue
    }
    await expectRefused(s, r, 401, 'proof_invalid', v.label)
  }
  assert.deepEqual(s.seen, [])
  // The untouched request still goes through once (the failures consumed no nonce) and only once.
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(proof) })).status, 200)
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(proof) }), 401, 'replay_detected', 'replay')
  assert.equal(s.seen.length, 1)
})

test('held: proof header parsing — duplicates, extra fields, other spellings, huge values are proof_invalid', async () => {
  const s = await sessionSetup()
  const good = s.proof()
  const m = /^t=(\d+), s=(\d+), e=([\w-]{11}), m=([\w-]{43})$/.exec(good)!
  const [t, q, e, mac] = [m[1]!, m[2]!, m[3]!, m[4]!]
  const bad = [
    `${good}, x=1`,
    `${good},`,
    `x=1, ${good}`,
    `T=${t}, s=${q}, e=${e}, m=${mac}`,
    `t=${t}, e=${e}, s=${q}, m=${mac}`,
    `t=${t}, s=${q}, m=${mac}, e=${e}`,
    `t=${t},  s=${q}, e=${e}, m=${mac}`,
    `t=${t}; s=${q}; e=${e}; m=${mac}`,
    `t=${t}, s=0${q}, e=${e}, m=${mac}`,
    `t=${t}, s=0, e=${e}, m=${mac}`,
    `t=${t}, s=-${q}, e=${e}, m=${mac}`,
    `t=${t}, s=${'9'.repeat(17)}, e=${e}, m=${mac}`,
    `t=${t}, s=${q}, e=${e}=, m=${mac}`,
    `t=${t}, s=${q}, e=${e}, m=${mac}=`,
    `t=+${t}, s=${q}, e=${e}, m=${mac}`,
    `t=${t}.0, s=${q}, e=${e}, m=${mac}`,
    `t=${t}, s=${q}, e=${e}, m=${mac.slice(0, 42)}${mac[42] === 'A' ? 'E' : 'A'}`,
    `t=${t}, s=${q}, e=${e.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/'))}, m=${mac.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/'))}`,
    `t=${'9'.repeat(16)}, s=${q}, e=${e}, m=${mac}`,
    `t=${'1'.repeat(17)}, s=${q}, e=${e}, m=${mac}`,
    `${good}${' '.repeat(200)}x`,
    'x'.repeat(8000),
  ].filter((p) => p !== good) // the standard-alphabet spelling equals the proof when it has no - or _
  for (const p of bad) {
    const r = await send(s.to, { body: BODY, headers: s.headers(p) })
    await expectRefused(s, r, 401, 'proof_invalid', JSON.stringify(p.slice(0, 120)))
  }
  // Two proof headers (the good one twice, or a good and a bad one): node joins them, never picks one.
  for (const twice of [[good, good], [good, `t=${t}, s=${q}, e=${e}, m=${'A'.repeat(43)}`], [`t=${t}, s=${q}, e=${e}, m=${'A'.repeat(43)}`, good]]) {
    const r = await send(s.to, { body: BODY, headers: { authorization: `Bearer ${s.session.token}`, 'mcp-pki-proof': twice } })
    await expectRefused(s, r, 401, 'proof_invalid', 'two proof headers')
  }
  assert.deepEqual(s.seen, [])
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(good) })).status, 200, 'the good proof was never consumed')
})

test('held: a cached token is matched exactly — other spellings of it (case, padding, spacing, non-canonical base64url) are session_invalid', async () => {
  const s = await sessionSetup()
  // Cache the real token.
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof()) })).status, 200)
  const tok = s.session.token
  const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const unused = tok.length % 4 === 2 ? 4 : tok.length % 4 === 3 ? 2 : 0
  assert.ok(unused > 0, 'the token length leaves unused bits in its last character')
  const sameBytes = tok.slice(0, -1) + B64U[B64U.indexOf(tok[tok.length - 1]!) ^ 1]!
  const authorizations = [
    `bearer ${tok}`,
    `BEARER ${tok}`,
    `Bearer  ${tok}`,
    `Bearer\t${tok}`,
    `Bearer ${tok}=`,
    `Bearer ${tok}==`,
    `Bearer ${sameBytes}`,
    `Bearer ${tok.replace(/-/g, '+').replace(/_/g, '/')}`,
    `Bearer ${tok},`,
    `Bearer ${tok} x`,
    `Bearer ${tok}${tok}`,
    `Bearer ${tok.slice(0, -1)}`,
    `Basic ${tok}`,
    tok,
  ].filter((a) => a !== `Bearer ${tok}`) // the standard-alphabet spelling equals the token when it has no - or _
  for (const authorization of authorizations) {
    const r = await send(s.to, { body: BODY, headers: { authorization, 'mcp-pki-proof': s.proof() } })
    await expectRefused(s, r, 401, 'session_invalid', authorization.slice(0, 20))
  }
  // A duplicate Authorization header: node keeps the first; a bogus first one is refused.
  const dup = await send(s.to, { body: BODY, headers: { authorization: [`Bearer ${'A'.repeat(174)}`, `Bearer ${tok}`], 'mcp-pki-proof': s.proof() } })
  await expectRefused(s, dup, 401, 'session_invalid', 'two Authorization headers')
  assert.equal(s.seen.length, 1)
})

test('held: proof window and session expiry at the exact boundaries (server clock controlled)', async () => {
  const s = await sessionSetup()
  const now = s.clock.ms
  // |now − t| = 30 s passes (both sides), 30.001 s does not.
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof({ at: now - 30_000 })) })).status, 200)
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof({ at: now + 30_000 })) })).status, 200)
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof({ at: now - 30_001 })) }), 401, 'proof_invalid', 'too old')
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof({ at: now + 30_001 })) }), 401, 'proof_invalid', 'too new')
  // A proof from the future, replayed until the last instant its window allows, is still a replay.
  const future = s.proof({ at: now + 30_000 })
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(future) })).status, 200)
  s.clock.ms = now + 60_000
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(future) }), 401, 'replay_detected', 'future proof at its last valid instant')
  // Session expiry: one ms before is fine; at expires_at (and later, and back again) it is over.
  const expiresAt = s.session.expiresAt
  s.clock.ms = expiresAt - 1
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof()) })).status, 200)
  s.clock.ms = expiresAt
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof()) }), 401, 'session_expired', 'at expires_at')
  s.clock.ms = expiresAt + 1
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof()) }), 401, 'session_expired', 'after expires_at')
  assert.equal(s.seen.length, 4)
})

test('held: a cached token of a removed key is session_revoked at the next request; the same proof then cannot be replayed', async () => {
  const s = await sessionSetup()
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof()) })).status, 200)
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...(JSON.parse(text) as object), keys: {} }))
  await s.configured.reloadAllowlist()
  const p = s.proof()
  await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(p) }), 401, 'session_revoked', 'removed key')
  assert.equal(s.seen.length, 1)
})

test(
  'finding 4 (fixed): a session of a removed key stays over when the key is added again',
  async () => {
    const s = await sessionSetup()
    const original = await readFile(s.sb.serverAllowlistPath, 'utf8')
    await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...(JSON.parse(original) as object), keys: {} }))
    await s.configured.reloadAllowlist()
    await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof()) }), 401, 'session_revoked', 'removed')
    // The operator adds the key again (a new entry, added now): the old session must stay dead.
    const list = JSON.parse(original) as { keys: Record<string, Record<string, unknown>> }
    for (const k of Object.values(list.keys)) k.added_at = new Date(Date.now() + 1000).toISOString()
    await writeFile(s.sb.serverAllowlistPath, JSON.stringify(list))
    await s.configured.reloadAllowlist()
    await expectRefused(s, await send(s.to, { body: BODY, headers: s.headers(s.proof()) }), 401, 'session_revoked', 're-added')
  },
)

test('held: the same proof sent on 8 connections at once is accepted exactly once', async () => {
  const s = await sessionSetup()
  const proof = s.proof()
  const replies = await Promise.all(Array.from({ length: 8 }, () => send(s.to, { body: BODY, headers: s.headers(proof) })))
  const statuses = replies.map((r) => `${r.status}:${codeOf(r) ?? ''}`).sort()
  assert.deepEqual(statuses, ['200:', ...Array.from({ length: 7 }, () => '401:replay_detected')])
  assert.equal(s.seen.length, 1)
})

// ------------------------------------------------------------------ 3. SDK 2.x integration

test('held: protectFetch hands the handler exactly the verified bytes, method and target (chunked bodies included)', async () => {
  const s = await sessionSetup()
  const bodies = [BODY, '{"a":"\u00e9\u20ac\ud83d\ude00"}', '{"x":1}\n', '{"id":1,"id":2}']
  for (const body of bodies) {
    for (const chunked of [false, true]) {
      const r = await send(s.to, { body, chunked, headers: s.headers(s.proof({ body })) })
      assert.equal(r.status, 200, r.text)
      assert.equal(s.seen.at(-1)?.body, body)
      assert.equal(s.seen.at(-1)?.method, 'POST')
    }
  }
  // A GET with a body: the body was covered by the proof; the handler sees none (never other bytes).
  const r = await send(s.to, { method: 'GET', path: '/mcp?q=1', body: BODY, headers: s.headers(s.proof({ method: 'GET', target: '/mcp?q=1' })) })
  assert.equal(r.status, 200, r.text)
  assert.deepEqual(s.seen.at(-1), { method: 'GET', url: '/mcp?q=1', body: '', sid: null })
})

test('held: Mcp-Session-Id binding holds against another key whatever the spelling (case, duplicates, whitespace, empty)', async () => {
  const s = await sessionSetup()
  const opened = await send(s.to, { body: BODY, headers: s.headers(s.proof()) })
  assert.equal(opened.status, 200)
  const sid = String(opened.headers['mcp-session-id'])
  assert.equal(s.mcpAuth.sessions.ownerOf(sid), s.session.clientFingerprint)
  // Another allowlisted key.
  const other = await sandbox()
  const text = JSON.parse(await readFile(s.sb.serverAllowlistPath, 'utf8')) as { keys: Record<string, unknown> }
  const otherList = JSON.parse(await readFile(other.serverAllowlistPath, 'utf8')) as { keys: Record<string, unknown> }
  await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...text, keys: { ...text.keys, ...otherList.keys } }))
  await s.configured.reloadAllowlist()
  const mallory = await handshakeAt(s.to, other, `http://127.0.0.1:${s.port}`)
  const as = (sessionId: string | string[], signed: string): Promise<Reply> => {
    const proof = createRequestProof({ session: mallory, method: 'POST', target: '/mcp', body: BODY, mcpSessionId: signed, timestamp: s.clock.ms })
    return send(s.to, { body: BODY, headers: { authorization: `Bearer ${mallory.token}`, 'mcp-pki-proof': proof, 'mcp-session-id': sessionId } })
  }
  const seenBefore = s.seen.length
  // Mallory's proof signs the Mcp-Session-Id she sends (as node hands it to the server: duplicates
  // joined): the binding, not the proof, must refuse her (404).
  for (const v of [sid, sid.toUpperCase(), ` ${sid} `, [sid, sid], [sid, 'x'], `${sid}, ${sid}`]) {
    const r = await as(v, (Array.isArray(v) ? v.join(', ') : v).trim())
    assert.equal(r.status, 404, `${JSON.stringify(v)}: ${r.text}`)
    assert.match(r.text, /Session not found/)
  }
  // A proof made for no MCP session (or another one) does not carry over to this one (mcp-pki/2).
  const moved = await as(sid, '')
  assert.equal(moved.status, 401, moved.text)
  assert.match(moved.text, /proof_invalid/)
  assert.equal(s.seen.length, seenBefore, 'the handler never saw the other key with that session id')
  // The owner's own id in another case is simply unknown (404), not another session.
  const upper = await send(s.to, { body: BODY, headers: { ...s.headers(s.proof({ sid: sid.toUpperCase() })), 'mcp-session-id': sid.toUpperCase() } })
  assert.equal(upper.status, 404)
  const own = await send(s.to, { body: BODY, headers: { ...s.headers(s.proof({ sid })), 'mcp-session-id': sid } })
  assert.equal(own.status, 200)
})

test('held: oversized bodies (declared or streamed) are 413 and reach nothing; a client that goes away aborts request.signal', async () => {
  let aborted = 0
  let started = 0
  const s = await sessionSetup({
    fetchHandler: (request) => {
      started++
      return new Promise<Response>((resolve) => {
        request.signal.addEventListener('abort', () => {
          aborted++
          resolve(new Response(null, { status: 499 }))
        })
      })
    },
  })
  const big = 'x'.repeat(4 * 1024 * 1024 + 1)
  const declared = await send(s.to, { body: big, headers: s.headers(s.proof({ body: big })) })
  assert.equal(declared.status, 413, declared.text)
  const streamed = await send(s.to, { body: big, chunked: true, headers: s.headers(s.proof({ body: big })) })
  assert.ok(streamed.status === 413 || String(streamed.status).startsWith('error'), String(streamed.status))
  assert.equal(started, 0)
  // A client that sends a valid request and hangs up while the handler waits.
  const sock = net.connect({ host: '127.0.0.1', port: s.port })
  await new Promise<void>((r) => sock.once('connect', () => r()))
  const proof = s.proof()
  sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(BODY)}\r\nAuthorization: Bearer ${s.session.token}\r\nMCP-PKI-Proof: ${proof}\r\n\r\n${BODY}`)
  for (let i = 0; i < 100 && started === 0; i++) await sleep(20)
  assert.equal(started, 1)
  sock.destroy()
  for (let i = 0; i < 100 && aborted === 0; i++) await sleep(20)
  assert.equal(aborted, 1)
})

test('finding 5 (fixed): a stranger with a made-up bearer token no longer makes the MCP endpoint wait for (and buffer) a 4 MiB body', async () => {
  const s = await sessionSetup()
  const bogus = `Bearer ${'A'.repeat(174)}`
  // Headers declare a 4 MiB body; only 1 KiB is ever sent. The token is checked first, so the
  // answer comes without the rest of the body.
  const answer = new Promise<string>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port: s.port })
    let data = ''
    sock.on('data', (d: Buffer) => {
      data += d.toString()
      if (data.includes('\r\n\r\n')) {
        resolve(data)
        sock.destroy()
      }
    })
    sock.on('error', () => resolve('error'))
    sock.on('close', () => resolve(data || 'closed'))
    sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024}\r\nAuthorization: ${bogus}\r\nMCP-PKI-Proof: ${s.proof()}\r\n\r\n${'x'.repeat(1024)}`)
    setTimeout(() => {
      resolve('no answer')
      sock.destroy()
    }, 4000).unref()
  })
  assert.match(await answer, /^HTTP\/1\.1 401 /)
  // The same through fetchHandler / verifyWebRequest (fetch-native runtimes): a body that never ends.
  const handle = s.mcpAuth.fetchHandler(() => Response.json({ reached: true }))
  const port = await fetchFront(handle)
  const r = await new Promise<string>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    let data = ''
    sock.on('data', (d: Buffer) => {
      data += d.toString()
      if (data.includes('\r\n\r\n')) {
        resolve(data)
        sock.destroy()
      }
    })
    sock.on('error', () => resolve('error'))
    sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nAuthorization: ${bogus}\r\n\r\n400\r\n${'x'.repeat(1024)}\r\n`)
    setTimeout(() => {
      resolve('no answer')
      sock.destroy()
    }, 4000).unref()
  })
  assert.match(r, /^HTTP\/1\.1 401 /)
  // An honest request still works where its session was made; a fetch front on another port (no
  // socket to check the audience against, no auth.audience) refuses the session (mcp-pki/2: a
  // session is checked against its audience on every request, failing closed without one).
  assert.equal((await send(s.to, { body: BODY, headers: s.headers(s.proof()) })).status, 200)
  const viaFetch = await send({ port }, { body: BODY, headers: s.headers(s.proof()) })
  assert.equal(viaFetch.status, 401, viaFetch.text)
  assert.match(viaFetch.text, /session_invalid/)
})

// ------------------------------------------------------------------ 4. ephemeral keys

test('held: no ephemeral key is ever used twice — 60 handshakes (20 at once) give 120 distinct X25519 keys and 60 distinct session keys', async () => {
  const { sb, port } = await startServer({ auth: { rate_limit: { per_address: 0, per_key: 0 } } })
  const run = async (): Promise<{ client: string; server: string; key: string }> => {
    const c = createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}`, serverTrust: () => ({}) })
    const m1 = c.start() as unknown as { client_ephemeral: string }
    const r2 = await send({ port }, { path: '/auth', body: JSON.stringify(m1) })
    assert.equal(r2.status, 200, r2.text)
    const r4 = await send({ port }, { path: '/auth', body: JSON.stringify(await c.handleChallenge(r2.json)) })
    assert.equal(r4.status, 200, r4.text)
    const session = c.handleComplete(r4.json)
    return { client: m1.client_ephemeral, server: String(r2.json.server_ephemeral), key: session.sessionKey.toString('hex') }
  }
  const results: Array<{ client: string; server: string; key: string }> = []
  for (let i = 0; i < 20; i++) results.push(await run())
  results.push(...(await Promise.all(Array.from({ length: 20 }, run))))
  for (let i = 0; i < 20; i++) results.push(await run())
  const ephemerals = new Set(results.flatMap((r) => [r.client, r.server]))
  assert.equal(ephemerals.size, 120)
  assert.equal(new Set(results.map((r) => r.key)).size, 60)
})
