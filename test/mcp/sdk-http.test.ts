/**
 * End to end with the real SDK on both sides: an SDK client (StreamableHTTPClientTransport with
 * createAuthFetch) calls tools on an SDK McpServer protected by createMcpAuth, over 127.0.0.1.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { AuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js'
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js'
import { AuthError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { b64u } from '../../src/internal/bytes.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch, type AuthFetch, type FetchFunction } from '../../src/mcp/client.js'
import { authInfoFromSession, createMcpAuth, mountMcpAuth, type McpAuth, type McpAuthInfo } from '../../src/mcp/server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestClock, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { buildMcpServer, closeServer, connectClient, countingFetch, listen, startProtectedServer, statefulMcpHandler, textOf, whoami, type ToolCalls } from './fixtures/harness.js'

const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

function clientFetch(p: Parties, url: string, extra: Partial<Parameters<typeof createAuthFetch>[0]> = {}, keyPair: Ed25519KeyPair = p.client): AuthFetch {
  return createAuthFetch({ url, keyPair, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0, ...extra })
}

async function setup(opts: { clock?: TestClock; sessionTtl?: number } = {}) {
  const p = makeParties()
  const s = await startProtectedServer({
    keyPair: p.server,
    allowlist: p.serverAllowlist,
    nonceStore: new TestNonceStore(1000, opts.clock?.now ?? Date.now),
    ...(opts.clock ? { clock: opts.clock.now } : {}),
    ...(opts.sessionTtl ? { sessionTtl: opts.sessionTtl } : {}),
  })
  cleanups.push(() => s.close())
  return { p, s }
}

const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }
const CALL_WHOAMI = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' }

test('an SDK client calls an SDK server through the library; the tool sees its fingerprint and role', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())

  const me = await whoami(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.equal(me.org, 'example_org')
  assert.deepEqual(me.scopes, ['role:trusted_client'])
  assert.equal(s.calls.whoami, 1)

  const tools = await client.listTools()
  assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['admin_echo', 'whoami'])
  await whoami(client)
  assert.equal(s.calls.whoami, 2)
  assert.equal(authFetch.handshakes, 1, 'one handshake for the whole conversation')
  assert.equal(authFetch.current?.serverFingerprint, p.server.fingerprint)
  // The MCP session is bound to this key.
  const transport = (client as unknown as { transport: StreamableHTTPClientTransport }).transport
  assert.equal(s.mcpAuth.sessions.ownerOf(transport.sessionId!), p.client.fingerprint)
})

test('AuthInfo has the SDK shape: clientId, scopes, expiresAt in seconds, extra', () => {
  const p = makeParties()
  const entry = p.serverAllowlist.lookup(p.client.fingerprint, Date.now())
  assert.equal(entry.status, 'ok')
  if (entry.status !== 'ok') return
  const info: AuthInfo = authInfoFromSession({ sessionId: 's1', clientFingerprint: p.client.fingerprint, issuedAt: 1_000_000, expiresAt: 1_900_500, entry: { ...entry.entry, metadata: { role: 'r', scopes: ['read', 'write', 7] } }, token: 't', audience: 'a' })
  assert.equal(info.clientId, p.client.fingerprint)
  assert.equal(info.expiresAt, 1900)
  assert.deepEqual(info.scopes, ['read', 'write', 'role:r'])
  assert.equal(info.extra?.sessionId, 's1')
  assert.equal(info.extra?.role, 'r')
})

test('without a token: 401 with a Bearer challenge, and the tool never runs', async () => {
  const { p, s } = await setup()
  const client = await connectClient(s.url, clientFetch(p, s.url))
  cleanups.push(() => client.close())
  const sid = (client as unknown as { transport: StreamableHTTPClientTransport }).transport.sessionId!
  const before = s.calls.whoami

  const res = await fetch(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(res.status, 401)
  const challenge = res.headers.get('www-authenticate') ?? ''
  assert.match(challenge, /^Bearer realm="mcp", error="invalid_token", error_description="[^"]+"$/)
  assert.deepEqual(((await res.json()) as { error: string }).error, 'session_invalid')

  const init = await fetch(s.url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(init.status, 401)
  assert.equal(init.headers.get('mcp-session-id'), null, 'no MCP session was opened')
  await init.body?.cancel()
  assert.equal(s.calls.whoami, before)

  // An SDK client without our fetch fails to connect at all.
  const plain = new Client({ name: 'plain', version: '1' })
  await assert.rejects(plain.connect(new StreamableHTTPClientTransport(new URL(s.url))), /401|session_invalid|Unauthorized/i)
})

test('forged token, stolen token without the proof, wrong proof, replayed proof: 401 and the tool never runs', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  const sid = (client as unknown as { transport: StreamableHTTPClientTransport }).transport.sessionId!
  const session = await authFetch.session()
  const before = s.calls.whoami
  const body = JSON.stringify(CALL_WHOAMI)
  const send = (headers: Record<string, string>) => fetch(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid, ...headers }, body })
  const codeOf = async (r: Response) => {
    assert.equal(r.status, 401)
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer /)
    return ((await r.json()) as { error: string }).error
  }

  assert.equal(await codeOf(await send({ authorization: `Bearer ${b64u(randomBytes(120))}`, 'mcp-pki-proof': `t=${Date.now()}, n=${b64u(randomBytes(16))}, m=${b64u(randomBytes(32))}` })), 'session_invalid')
  assert.equal(await codeOf(await send({ authorization: `Bearer ${session.token}` })), 'proof_missing')
  assert.equal(await codeOf(await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': `t=${Date.now()}, n=${b64u(randomBytes(16))}, m=${b64u(randomBytes(32))}` })), 'proof_invalid')

  // A proof captured from a real request cannot be replayed, nor moved to another body.
  const captured: Record<string, string> = {}
  const spy = clientFetch(p, s.url, {
    fetch: async (input, init) => {
      new Headers(init?.headers).forEach((v, k) => (captured[k] = v))
      return fetch(input, init)
    },
  })
  assert.equal(s.calls.whoami, before, 'the tool never ran')
  const ok = await spy(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body })
  assert.equal(ok.status, 200, 'the same key, with a proper proof, is served')
  await ok.text()
  assert.equal(s.calls.whoami, before + 1)
  const replay = { authorization: captured.authorization!, 'mcp-pki-proof': captured['mcp-pki-proof']! }
  assert.equal(await codeOf(await send(replay)), 'replay_detected')
  const moved = await fetch(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid, ...replay }, body: body.replace('whoami', 'admin_echo') })
  assert.equal(await codeOf(moved), 'proof_invalid')
  assert.equal(s.calls.whoami, before + 1, 'the replays never ran the tool')
})

test('a token expiring mid-conversation is renewed without the caller noticing (client sees the expiry)', async () => {
  const clock = new TestClock()
  const { p, s } = await setup({ clock, sessionTtl: 120 })
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { clock: clock.now, fetch: counting.fetch })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 1)
  clock.advance(121)
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 2)
  assert.ok(!counting.statuses.includes(401), 'renewed before sending: the server never saw an expired token')
})

test('a session the server considers expired → 401, one re-handshake, the request is retried with a new proof', async () => {
  const serverClock = new TestClock()
  const clientClock = new TestClock(serverClock.ms)
  const { p, s } = await setup({ clock: serverClock, sessionTtl: 10 })
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { clock: clientClock.now, fetch: counting.fetch })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  serverClock.advance(20) // the server's clock runs ahead: the client still believes its session is fresh
  const before = s.calls.whoami
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(s.calls.whoami, before + 1, 'the tool ran exactly once')
  assert.equal(authFetch.handshakes, 2)
  assert.ok(counting.statuses.includes(401), 'the server refused the expired session once')
})

test('a revoked key (removed from the allowlist) gets 401; the tool never runs and the client cannot re-authenticate', async () => {
  const { p, s } = await setup()
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { fetch: counting.fetch })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const before = s.calls.whoami
  p.serverAllowlist.remove(p.client.fingerprint)
  // session_revoked is not re-sent (docs/PROTOCOL.md §8): the 401 reaches the SDK, the session is dropped.
  await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), /session_revoked/)
  assert.equal(counting.statuses.at(-1), 401)
  assert.equal(authFetch.current, undefined, 'the refused session is dropped')
  // The next call runs a new handshake, which the server refuses.
  await assert.rejects(
    client.callTool({ name: 'whoami', arguments: {} }),
    (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed',
  )
  assert.equal(s.calls.whoami, before)
})

test('a client that pinned another server key refuses to talk (server_key_mismatch) and the tool never runs', async () => {
  const { p, s } = await setup()
  const counting = countingFetch()
  const authFetch = createAuthFetch({
    url: s.url,
    keyPair: p.client,
    serverTrust: createServerTrust({ allowlist: p.clientAllowlist, pinnedFingerprint: generateKeyPair().fingerprint }),
    fetch: counting.fetch,
    handshakeFetch: globalThis.fetch,
    retryAttempts: 0,
  })
  const client = new Client({ name: 'pinned', version: '1' })
  await assert.rejects(
    client.connect(new StreamableHTTPClientTransport(new URL(s.url), { fetch: authFetch })),
    (err: unknown) => err instanceof AuthError && err.code === 'server_key_mismatch',
  )
  assert.deepEqual(counting.statuses, [], 'not one MCP request was sent')
  assert.equal(s.calls.whoami, 0)
})

test('an MCP session is bound to the key that opened it: another allowlisted key gets 404', async () => {
  const { p, s } = await setup()
  const other = generateKeyPair()
  p.serverAllowlist.add(other.publicKeyRaw, { role: 'trusted_client', org: 'other_org' })
  const a = await connectClient(s.url, clientFetch(p, s.url))
  cleanups.push(() => a.close())
  const sidA = (a as unknown as { transport: StreamableHTTPClientTransport }).transport.sessionId!
  const before = s.calls.whoami

  const fetchB = clientFetch(p, s.url, {}, other)
  const res = await fetchB(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sidA }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(res.status, 404)
  assert.equal(((await res.json()) as { error: { message: string } }).error.message, 'Session not found')
  const del = await fetchB(s.url, { method: 'DELETE', headers: { ...MCP_HEADERS, 'mcp-session-id': sidA } })
  assert.equal(del.status, 404, 'nor can it close the session')
  assert.equal(s.calls.whoami, before)

  // B with its own MCP session works and sees itself; A is unaffected.
  const b = await connectClient(s.url, fetchB)
  cleanups.push(() => b.close())
  assert.equal((await whoami(b)).clientId, other.fingerprint)
  assert.equal((await whoami(a)).clientId, p.client.fingerprint)
})

test('requireRole: a caller without the role gets an error result and the handler never runs', async () => {
  const { p, s } = await setup()
  const admin = generateKeyPair()
  p.serverAllowlist.add(admin.publicKeyRaw, { role: 'admin' })
  const user = await connectClient(s.url, clientFetch(p, s.url))
  cleanups.push(() => user.close())
  const denied = await user.callTool({ name: 'admin_echo', arguments: { text: 'hi' } })
  assert.equal(denied.isError, true)
  assert.match(textOf(denied), /forbidden: this tool requires role "admin"/)
  assert.equal(s.calls.admin, 0)

  const boss = await connectClient(s.url, clientFetch(p, s.url, {}, admin))
  cleanups.push(() => boss.close())
  const ok = await boss.callTool({ name: 'admin_echo', arguments: { text: 'hi' } })
  assert.equal(ok.isError, undefined)
  assert.equal(textOf(ok), 'hi')
  assert.equal(s.calls.admin, 1)
})

test('concurrent first requests share one handshake (single flight)', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const sessions = await Promise.all(Array.from({ length: 8 }, () => authFetch.session()))
  assert.equal(authFetch.handshakes, 1)
  assert.ok(sessions.every((x) => x === sessions[0]))
  const clients = await Promise.all(Array.from({ length: 4 }, () => connectClient(s.url, authFetch)))
  for (const c of clients) cleanups.push(() => c.close())
  const results = await Promise.all(clients.map((c) => whoami(c)))
  assert.ok(results.every((r) => r.clientId === p.client.fingerprint))
  assert.equal(authFetch.handshakes, 1)
})

test('a body over the limit is refused with 413 before the tool runs; a non-JSON body with 400', async () => {
  const p = makeParties()
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }, { maxBodySize: 1024 })
  cleanups.push(() => s.close())
  const authFetch = clientFetch(p, s.url)
  const big = await authFetch(s.url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify({ ...INIT, pad: 'x'.repeat(2000) }) })
  assert.equal(big.status, 413)
  await big.body?.cancel()
  const bad = await authFetch(s.url, { method: 'POST', headers: MCP_HEADERS, body: '{not json' })
  assert.equal(bad.status, 400)
  assert.equal(((await bad.json()) as { error: { code: number } }).error.code, -32700)
  assert.equal(s.calls.whoami, 0)
})

test('the token is never sent to another origin', async () => {
  const p = makeParties()
  const authFetch = clientFetch(p, 'http://127.0.0.1:1/mcp')
  await assert.rejects(authFetch('http://127.0.0.2:1/mcp', { method: 'GET' }), (err: unknown) => err instanceof AuthError && err.code === 'transport_error')
})

test('Express: mountMcpAuth on an app, with express.json() registered after it', async () => {
  // express ships without type declarations here; the SDK depends on it.
  const { default: express } = (await import('express' as string)) as { default: () => ExpressApp }
  interface ExpressApp {
    use(...a: unknown[]): unknown
    post(...a: unknown[]): unknown
    all(...a: unknown[]): unknown
    listen(port: number, host: string, cb: () => void): HttpServer
  }
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() })
  const mcpAuth = createMcpAuth(service)
  const app = express()
  mountMcpAuth(app, mcpAuth)
  app.use((express as unknown as { json(): unknown }).json())
  app.all('/mcp', statefulMcpHandler(calls))
  const server = await new Promise<HttpServer>((resolve) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv))
  })
  cleanups.push(() => closeServer(server))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`
  const client = await connectClient(url, clientFetch(p, url))
  cleanups.push(() => client.close())
  assert.equal((await whoami(client)).role, 'trusted_client')
  const anon = await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(anon.status, 401)
  await anon.body?.cancel()
  assert.equal(calls.whoami, 1)
})

test('web-standard transport: fetchHandler with WebStandardStreamableHTTPServerTransport', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  // The handshake is served by a node:http /auth; MCP requests go straight to the fetch handler,
  // which has no socket to check a session's audience against: fetch-native deployments configure
  // auth.audience (the default check fails closed there).
  const late: { authHandler?: McpAuth['authHandler'] } = {}
  const authServer = createServer((req, res) => void late.authHandler!(req, res))
  const origin = await listen(authServer)
  cleanups.push(() => closeServer(authServer))
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(), audience: origin })
  const mcpAuth = createMcpAuth(service)
  late.authHandler = mcpAuth.authHandler
  const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: () => crypto.randomUUID() })
  await buildMcpServer(calls).connect(transport)
  cleanups.push(() => transport.close())
  const handle = mcpAuth.fetchHandler((request, authInfo: McpAuthInfo) => transport.handleRequest(request, { authInfo }))
  const url = `${origin}/mcp`
  const inProcess: FetchFunction = (input, init) => handle(new Request(input, init))
  const client = await connectClient(url, clientFetch(p, url, { fetch: inProcess, handshakeFetch: globalThis.fetch }))
  cleanups.push(() => client.close())
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)

  const anon = await handle(new Request(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(CALL_WHOAMI) }))
  assert.equal(anon.status, 401)
  assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer /)
  const info = await mcpAuth.verifyWebRequest(new Request(url)).catch((e: unknown) => e)
  assert.ok(info instanceof AuthError && info.code === 'session_invalid')
  assert.equal(calls.whoami, 1)
})
