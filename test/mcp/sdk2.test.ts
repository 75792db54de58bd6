/**
 * End to end with the MCP TypeScript SDK 2.x (`@modelcontextprotocol/server` and
 * `@modelcontextprotocol/client`) on both sides, over 127.0.0.1, no mocks; and mixed with SDK 1.x
 * (`@modelcontextprotocol/sdk`) in both directions. Also runs the 2.x snippets of
 * docs/mcp-server.md and docs/mcp-client.md as they are written.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, type Server as HttpServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Client, SdkHttpError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { createMcpHandler, isInitializeRequest, McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server'
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as StreamableHTTPClientTransport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { z } from 'zod'
import { AuthError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { b64u } from '../../src/internal/bytes.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch, createAuthProvider, type AuthFetch, type AuthFetchOptions, type FetchFunction } from '../../src/mcp/client.js'
import { callerOf, createMcpAuth, mountMcpAuth, requireRole, type McpAuth, type McpFetchHandler } from '../../src/mcp/server.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createAuthService, type AuthService, type AuthServiceOptions } from '../../src/transport/auth-service.js'
import { makeParties, TestClock, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { importTypeScript } from '../helpers/import-typescript.js'
import { closeServer, connectClient as connectClient1, countingFetch, listen, startProtectedServer, whoami as whoami1, type ToolCalls } from './fixtures/harness.js'

const ROOT = resolve(import.meta.dirname, '..', '..')

const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

// ---------------------------------------------------------------- a 2.x server

/** A 2.x McpServer: `whoami` (the caller as the handler sees it) and an admin-only `admin_echo`. */
function buildMcpServer2(calls: ToolCalls): McpServer {
  const mcp = new McpServer({ name: 'sdk2-test-server', version: '1.0.0' })
  mcp.registerTool('whoami', { description: 'who is calling' }, (ctx) => {
    calls.whoami++
    const info = ctx.http?.authInfo
    const caller = callerOf(ctx)
    const text = JSON.stringify({ clientId: info?.clientId, role: caller?.role, org: caller?.org, scopes: info?.scopes, sessionId: caller?.sessionId, extraRole: info?.extra?.role })
    return { content: [{ type: 'text', text }] }
  })
  mcp.registerTool(
    'admin_echo',
    { description: 'admins only', inputSchema: z.object({ text: z.string() }) },
    requireRole('admin', ({ text }: { text: string }) => {
      calls.admin++
      return { content: [{ type: 'text' as const, text }] }
    }),
  )
  return mcp
}

/** The 2.x stateful pattern over the web-standard transport: one transport per MCP session. */
function statefulHandler2(calls: ToolCalls): { handle: McpFetchHandler; close(): Promise<void> } {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>()
  return {
    async handle(request, authInfo) {
      const sid = request.headers.get('mcp-session-id')
      const body: unknown = request.method === 'POST' ? await request.json() : undefined
      let transport = sid === null ? undefined : transports.get(sid)
      if (transport === undefined) {
        if (sid !== null || !isInitializeRequest(body)) {
          return Response.json({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no valid session' }, id: null }, { status: 400 })
        }
        const created: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, created),
          onsessionclosed: (id) => void transports.delete(id),
        })
        await buildMcpServer2(calls).connect(created)
        transport = created
      }
      return transport.handleRequest(request, { authInfo, parsedBody: body })
    },
    async close() {
      for (const t of transports.values()) await t.close().catch(() => {})
    },
  }
}

interface Server2 {
  url: string
  service: AuthService
  mcpAuth: McpAuth
  calls: ToolCalls
  server: HttpServer
}

/** node:http + mountMcpAuth({ fetchHandler }) in front of the 2.x stateful server. */
async function startServer2(opts: Partial<AuthServiceOptions> & { parties: Parties }): Promise<Server2> {
  const { parties, ...rest } = opts
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const service = createAuthService({ keyPair: parties.server, allowlist: parties.serverAllowlist, nonceStore: new TestNonceStore(1000, rest.clock ?? Date.now), ...rest })
  const mcpAuth = createMcpAuth(service)
  const mcp = statefulHandler2(calls)
  const server = createServer()
  mountMcpAuth(server, mcpAuth, { fetchHandler: mcp.handle })
  const origin = await listen(server)
  cleanups.push(() => mcp.close())
  cleanups.push(() => closeServer(server))
  return { url: `${origin}/mcp`, service, mcpAuth, calls, server }
}

async function setup(opts: { clock?: TestClock; sessionTtl?: number } = {}): Promise<{ p: Parties; s: Server2 }> {
  const p = makeParties()
  const s = await startServer2({ parties: p, ...(opts.clock ? { clock: opts.clock.now } : {}), ...(opts.sessionTtl ? { sessionTtl: opts.sessionTtl } : {}) })
  return { p, s }
}

// ---------------------------------------------------------------- a 2.x client

function clientFetch(p: Parties, url: string, extra: Partial<AuthFetchOptions> = {}, keyPair: Ed25519KeyPair = p.client): AuthFetch {
  return createAuthFetch({ url, keyPair, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0, ...extra })
}

function transport2(url: string, authFetch: AuthFetch, withProvider = true): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(url), withProvider ? { fetch: authFetch, authProvider: createAuthProvider(authFetch) } : { fetch: authFetch })
}

async function connect2(url: string, authFetch: AuthFetch, opts: { withProvider?: boolean; mode?: 'legacy' | 'auto' } = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'sdk2-test-client', version: '1.0.0' }, { versionNegotiation: { mode: opts.mode ?? 'legacy' } })
  const transport = transport2(url, authFetch, opts.withProvider ?? true)
  await client.connect(transport)
  cleanups.push(() => client.close())
  return { client, transport }
}

function textOf(result: unknown): string {
  const content = (result as { content?: { type: string; text?: string }[] }).content ?? []
  return content.map((c) => c.text ?? '').join('')
}

interface Me {
  clientId: string
  role: string
  org: string
  scopes: string[]
  sessionId: string
  extraRole: string
}

async function whoami2(client: Client): Promise<Me> {
  const result = await client.callTool({ name: 'whoami', arguments: {} })
  if (result.isError === true) throw new Error(`whoami failed: ${textOf(result)}`)
  return JSON.parse(textOf(result)) as Me
}

const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }
const CALL_WHOAMI = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' }

async function errorCode(r: Response): Promise<string> {
  assert.equal(r.status, 401)
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp", error="invalid_token", error_description="[^"]+"$/)
  return ((await r.json()) as { error: string }).error
}

// ---------------------------------------------------------------- the documented snippets

/** The first ```ts block after `marker` in a doc, with its imports pointed at this checkout. */
async function docSnippet(doc: string, marker: string, replace: [string, string][]): Promise<string> {
  const text = await readFile(join(ROOT, 'docs', doc), 'utf8')
  const at = text.indexOf(marker)
  assert.ok(at >= 0, `${doc} has ${marker}`)
  const m = /```ts\n([\s\S]*?)```/.exec(text.slice(at))
  assert.ok(m, `${doc}: a ts block after ${marker}`)
  let code = m[1]!
  for (const [from, to] of replace) {
    assert.ok(code.includes(from), `${doc} snippet contains ${from}`)
    code = code.replace(from, to)
  }
  const ours: Record<string, string> = { 'mcp-pki-auth': 'src/index.js', 'mcp-pki-auth/mcp/server': 'src/mcp/server.js', 'mcp-pki-auth/mcp/client': 'src/mcp/client.js' }
  return code.replace(/from '([^']+)'/g, (_all, spec: string) => {
    if (spec.startsWith('node:')) return `from '${spec}'`
    const target = ours[spec] !== undefined ? pathToFileURL(join(ROOT, ours[spec])).href : import.meta.resolve(spec)
    return `from '${target}'`
  })
}

test('docs: the 2.x server and 2.x client of mcp-server.md / mcp-client.md run as written', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-pki-sdk2-doc-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir)

  const serverCode = await docSnippet('mcp-server.md', '<!-- sdk2-server-example -->', [
    ["loadConfig('server_config.yml')", `loadConfig(${JSON.stringify(sb.serverConfigPath)})`],
    ["server.listen(8443, '127.0.0.1')", "server.listen(0, '127.0.0.1')"],
  ])
  const mod = await importTypeScript<{ server: HttpServer; close(): Promise<void> }>(join(dir, 'server.mts'), serverCode)
  cleanups.push(() => mod.close())
  cleanups.push(() => closeServer(mod.server))
  if (!mod.server.listening) await new Promise((r) => mod.server.once('listening', r))
  const port = (mod.server.address() as { port: number }).port
  const url = `http://127.0.0.1:${port}/mcp`

  const clientCode = await docSnippet('mcp-client.md', '<!-- sdk2-client-example -->', [
    ["'http://127.0.0.1:8443/mcp'", JSON.stringify(url)],
    ["'client_config.yml'", JSON.stringify(sb.clientConfigPath)],
  ])
  const log = t.mock.method(console, 'log', () => {})
  await importTypeScript(join(dir, 'client.mts'), clientCode)
  log.mock.restore()
  assert.equal(log.mock.callCount(), 1)
  const content = log.mock.calls[0]!.arguments[0] as { type: string; text: string }[]
  assert.deepEqual(JSON.parse(content[0]!.text), { fingerprint: sb.clientKey.fingerprint, role: 'trusted_client', org: 'example_org' })

  // The documented server refuses what it must.
  const anon = await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(await errorCode(anon), 'session_invalid')
  const health = await fetch(`http://127.0.0.1:${port}/elsewhere`)
  assert.equal(health.status, 404, 'no unauthenticated path reaches the MCP handler')
  await health.body?.cancel()
})

// ---------------------------------------------------------------- 2.x ↔ 2.x

test('2.x client → 2.x server: the tool sees the fingerprint (clientId), role and org via ctx.http.authInfo', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const { client, transport } = await connect2(s.url, authFetch)

  const me = await whoami2(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.equal(me.org, 'example_org')
  assert.equal(me.extraRole, 'trusted_client')
  assert.deepEqual(me.scopes, ['role:trusted_client'])
  assert.equal(s.calls.whoami, 1)

  const tools = await client.listTools()
  assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['admin_echo', 'whoami'])
  await whoami2(client)
  assert.equal(s.calls.whoami, 2)
  assert.equal(authFetch.handshakes, 1, 'one handshake for the whole conversation')
  assert.equal(authFetch.current?.serverFingerprint, p.server.fingerprint)
  assert.ok(transport.sessionId, 'the 2.x server opened an MCP session')
  assert.equal(s.mcpAuth.sessions.ownerOf(transport.sessionId), p.client.fingerprint, 'bound to the key that opened it')
})

test('2.x: without a token → 401 with a Bearer challenge, no MCP session, the tool never runs; a bare 2.x client cannot connect', async () => {
  const { p, s } = await setup()
  const { transport } = await connect2(s.url, clientFetch(p, s.url))
  const sid = transport.sessionId!

  const res = await fetch(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(await errorCode(res), 'session_invalid')
  const init = await fetch(s.url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(init.headers.get('mcp-session-id'), null, 'no MCP session was opened')
  assert.equal(await errorCode(init), 'session_invalid')
  assert.equal(s.mcpAuth.sessions.size, 1)

  const bare = new Client({ name: 'bare', version: '1' })
  await assert.rejects(bare.connect(new StreamableHTTPClientTransport(new URL(s.url))), (err: unknown) => err instanceof SdkHttpError && err.status === 401)
  // Nor with a made-up static token through the 2.x authProvider seam.
  const guess = new Client({ name: 'guess', version: '1' })
  await assert.rejects(
    guess.connect(new StreamableHTTPClientTransport(new URL(s.url), { authProvider: { token: async () => b64u(randomBytes(120)) } })),
    (err: unknown) => err instanceof Error && /401|Unauthorized/i.test(`${err.name} ${err.message}`),
  )
  assert.equal(s.calls.whoami, 0)
})

test('2.x: forged token, stolen token without proof, wrong proof, expired token, replayed proof → 401 and the tool never runs', async () => {
  const clock = new TestClock()
  const { p, s } = await setup({ clock, sessionTtl: 120 })
  const authFetch = clientFetch(p, s.url, { clock: clock.now })
  const { client, transport } = await connect2(s.url, authFetch)
  await whoami2(client)
  const sid = transport.sessionId!
  const session = await authFetch.session()
  const before = s.calls.whoami
  const body = JSON.stringify(CALL_WHOAMI)
  const send = (headers: Record<string, string>, b = body) => fetch(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid, ...headers }, body: b })
  const junkProof = () => `t=${clock.now()}, s=1, e=${b64u(randomBytes(8))}, m=${b64u(randomBytes(32))}`
  const realProof = (b = body) => createRequestProof({ session: session, method: 'POST', target: '/mcp', body: b, mcpSessionId: sid, clock: clock.now })

  assert.equal(await errorCode(await send({ authorization: `Bearer ${b64u(randomBytes(120))}`, 'mcp-pki-proof': junkProof() })), 'session_invalid')
  const flipped = session.token.slice(0, -2) + (session.token.endsWith('AA') ? 'AB' : 'AA')
  assert.match(await errorCode(await send({ authorization: `Bearer ${flipped}`, 'mcp-pki-proof': realProof() })), /^session_invalid$|^proof_invalid$/)
  assert.equal(await errorCode(await send({ authorization: `Bearer ${session.token}` })), 'proof_missing')
  assert.equal(await errorCode(await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': junkProof() })), 'proof_invalid')

  // A correct request, then its exact replay and its proof moved to another body.
  const proof = realProof()
  const ok = await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof })
  assert.equal(ok.status, 200)
  await ok.text()
  assert.equal(s.calls.whoami, before + 1)
  assert.equal(await errorCode(await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof })), 'replay_detected')
  assert.equal(await errorCode(await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof }, body.replace('whoami', 'admin_echo'))), 'proof_invalid')

  // Past the session's end, the token is refused even with a fresh, correct proof.
  clock.advance(121)
  assert.equal(await errorCode(await send({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': realProof() })), 'session_expired')
  assert.equal(s.calls.whoami, before + 1, 'none of the refused requests ran the tool')
})

test('2.x: a token expiring mid-conversation is renewed before it is sent; the caller notices nothing', async () => {
  const clock = new TestClock()
  const { p, s } = await setup({ clock, sessionTtl: 120 })
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { clock: clock.now, fetch: counting.fetch })
  const { client } = await connect2(s.url, authFetch)
  assert.equal((await whoami2(client)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 1)
  const first = authFetch.current!.token
  clock.advance(121)
  assert.equal((await whoami2(client)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 2)
  assert.notEqual(authFetch.current!.token, first)
  assert.ok(!counting.statuses.includes(401), 'the server never saw an expired token')
  assert.equal(s.calls.whoami, 2)
})

test('2.x: a session the server considers expired → 401, one re-handshake, the call is retried once and succeeds', async () => {
  const serverClock = new TestClock()
  const clientClock = new TestClock(serverClock.ms)
  const { p, s } = await setup({ clock: serverClock, sessionTtl: 10 })
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { clock: clientClock.now, fetch: counting.fetch })
  const { client } = await connect2(s.url, authFetch)
  await whoami2(client)
  serverClock.advance(20) // the server's clock runs ahead: the client still believes its session is fresh
  const before = s.calls.whoami
  assert.equal((await whoami2(client)).clientId, p.client.fingerprint)
  assert.equal(s.calls.whoami, before + 1, 'the tool ran exactly once')
  assert.equal(authFetch.handshakes, 2)
  assert.equal(counting.statuses.filter((x) => x === 401).length, 1, 'one refusal, then the retry with a new session')
})

test('2.x: a revoked key (removed from the server allowlist) → 401; the tool never runs and re-authentication fails with AuthError', async () => {
  const { p, s } = await setup()
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { fetch: counting.fetch })
  const { client } = await connect2(s.url, authFetch)
  await whoami2(client)
  const before = s.calls.whoami
  p.serverAllowlist.remove(p.client.fingerprint)
  // session_revoked is not re-sent (docs/PROTOCOL.md §8): the error names it, the session is dropped…
  await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), (err: unknown) => err instanceof AuthError && err.code === 'session_revoked')
  assert.equal(counting.statuses.at(-1), 401)
  assert.equal(authFetch.current, undefined)
  // … and the next call's handshake is refused.
  await assert.rejects(client.callTool({ name: 'whoami', arguments: {} }), (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed')
  assert.equal(s.calls.whoami, before)
})

test('2.x: a client that pinned another server key refuses to connect (server_key_mismatch); not one MCP request is sent', async () => {
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
  for (const withProvider of [true, false]) {
    const client = new Client({ name: 'pinned', version: '1' })
    await assert.rejects(client.connect(transport2(s.url, authFetch, withProvider)), (err: unknown) => err instanceof AuthError && err.code === 'server_key_mismatch')
  }
  assert.deepEqual(counting.statuses, [], 'not one MCP request was sent')
  assert.equal(s.calls.whoami, 0)
  assert.equal(s.mcpAuth.sessions.size, 0)
})

test('2.x: an MCP session is bound to the key that opened it; another allowlisted key gets 404 and cannot close it', async () => {
  const { p, s } = await setup()
  const other = generateKeyPair()
  p.serverAllowlist.add(other.publicKeyRaw, { role: 'trusted_client', org: 'other_org' })
  const { client: a, transport: ta } = await connect2(s.url, clientFetch(p, s.url))
  const sidA = ta.sessionId!
  const before = s.calls.whoami

  const fetchB = clientFetch(p, s.url, {}, other)
  const res = await fetchB(s.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sidA }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(res.status, 404)
  assert.equal(((await res.json()) as { error: { message: string } }).error.message, 'Session not found')
  const del = await fetchB(s.url, { method: 'DELETE', headers: { ...MCP_HEADERS, 'mcp-session-id': sidA } })
  assert.equal(del.status, 404, 'nor can it close the session')
  await del.body?.cancel()
  // A 2.x client of B that tries to resume A's session is refused too.
  const hijackTransport = new StreamableHTTPClientTransport(new URL(s.url), { fetch: fetchB, sessionId: sidA, protocolVersion: '2025-11-25' })
  await hijackTransport.start()
  await assert.rejects(
    hijackTransport.send({ jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'whoami', arguments: {} } }),
    (err: unknown) => err instanceof SdkHttpError && err.status === 404,
  )
  await hijackTransport.close()
  assert.equal(s.calls.whoami, before)

  // B with its own MCP session works and sees itself; A is unaffected.
  const { client: b } = await connect2(s.url, fetchB)
  assert.equal((await whoami2(b)).clientId, other.fingerprint)
  assert.equal((await whoami2(b)).org, 'other_org')
  assert.equal((await whoami2(a)).clientId, p.client.fingerprint)

  // A closes its own session (DELETE): the binding is dropped.
  await ta.terminateSession()
  assert.equal(s.mcpAuth.sessions.ownerOf(sidA), undefined)
})

test('2.x: requireRole — a caller without the role gets an isError result and the handler never runs', async () => {
  const { p, s } = await setup()
  const admin = generateKeyPair()
  p.serverAllowlist.add(admin.publicKeyRaw, { role: 'admin' })
  const { client: user } = await connect2(s.url, clientFetch(p, s.url))
  const denied = await user.callTool({ name: 'admin_echo', arguments: { text: 'hi' } })
  assert.equal(denied.isError, true)
  assert.match(textOf(denied), /forbidden: this tool requires role "admin"/)
  assert.equal(s.calls.admin, 0)

  const { client: boss } = await connect2(s.url, clientFetch(p, s.url, {}, admin))
  const ok = await boss.callTool({ name: 'admin_echo', arguments: { text: 'hi' } })
  assert.notEqual(ok.isError, true)
  assert.equal(textOf(ok), 'hi')
  assert.equal(s.calls.admin, 1)
})

test('2.x createAuthProvider: token() is the session token; a 401 the fetch does not re-send is not re-sent by the transport either (AuthError, session dropped)', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const provider = createAuthProvider(authFetch)
  assert.equal(authFetch.handshakes, 0)
  const token = await provider.token()
  assert.equal(authFetch.handshakes, 1)
  assert.equal(token, authFetch.current!.token)
  await assert.rejects(provider.onUnauthorized(), (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed' && /not sent again/.test(err.message))
  assert.equal(authFetch.current, undefined, 'onUnauthorized drops the session')
  assert.notEqual(await provider.token(), token)
  assert.equal(authFetch.handshakes, 2)
  assert.throws(() => createAuthProvider(globalThis.fetch as unknown as AuthFetch), TypeError)

  // A path-rewriting hop: the proof (made for /mcp) never matches what the server receives.
  const rewriting: FetchFunction = (input, init) => globalThis.fetch(`${String(input)}?via=proxy`, init)
  const counting: number[] = []
  const broken = clientFetch(p, s.url, {
    fetch: async (input, init) => {
      const r = await rewriting(input, init)
      counting.push(r.status)
      return r
    },
    handshakeFetch: globalThis.fetch,
  })
  const client = new Client({ name: 'broken', version: '1' })
  // An unauthenticated 401 (docs/PROTOCOL.md §8): neither the fetch nor the transport sends the
  // request again; the error names the server's code; the session is dropped.
  await assert.rejects(client.connect(transport2(s.url, broken)), (err: unknown) => err instanceof AuthError && err.code === 'proof_invalid')
  assert.deepEqual(counting, [401], 'sent once, not re-sent')
  assert.equal(broken.handshakes, 1)
  assert.equal(broken.current, undefined)
  assert.equal(s.calls.whoami, 0)
})

test('2.x stateless 2026-07-28: createMcpHandler behind mountMcpAuth, 2.x client negotiating the new revision', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() })
  const mcpAuth = createMcpAuth(service)
  const handler = createMcpHandler(() => buildMcpServer2(calls))
  cleanups.push(() => handler.close())
  const versions: (string | null)[] = []
  const server = createServer()
  mountMcpAuth(server, mcpAuth, {
    fetchHandler: (request, authInfo) => {
      versions.push(request.headers.get('mcp-protocol-version'))
      return handler.fetch(request, { authInfo })
    },
  })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))

  const authFetch = clientFetch(p, url)
  const { client } = await connect2(url, authFetch, { mode: 'auto' })
  assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28')
  const me = await whoami2(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.ok(versions.length > 0 && versions.every((v) => v === '2026-07-28'))
  assert.equal(authFetch.handshakes, 1)

  const anon = await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(await errorCode(anon), 'session_invalid')
  assert.equal(calls.whoami, 1)
})

test('2.x on a fetch-native runtime: fetchHandler + fetchAuthHandler, no node:http at all', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  // No socket on a fetch-native runtime: the service must name its audience (the default check fails closed).
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(), audience: 'http://127.0.0.1:9' })
  const mcpAuth = createMcpAuth(service)
  const mcp = statefulHandler2(calls)
  cleanups.push(() => mcp.close())
  const handle = mcpAuth.fetchHandler(mcp.handle)
  // What a Worker / Deno / Bun entry would export.
  const app = { fetch: (request: Request) => (new URL(request.url).pathname === '/auth' ? mcpAuth.fetchAuthHandler(request) : handle(request)) }
  const inProcess: FetchFunction = (input, init) => app.fetch(new Request(input, init))
  const url = 'http://127.0.0.1:9/mcp' // never dialled: every request goes to app.fetch

  const authFetch = clientFetch(p, url, { fetch: inProcess, handshakeFetch: inProcess })
  const { client, transport } = await connect2(url, authFetch)
  const me = await whoami2(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.equal(mcpAuth.sessions.ownerOf(transport.sessionId!), p.client.fingerprint)

  const anon = await app.fetch(new Request(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(CALL_WHOAMI) }))
  assert.equal(await errorCode(anon), 'session_invalid')
  const other = generateKeyPair()
  p.serverAllowlist.add(other.publicKeyRaw, { role: 'trusted_client' })
  const fetchB = clientFetch(p, url, { fetch: inProcess, handshakeFetch: inProcess }, other)
  const hijack = await fetchB(url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': transport.sessionId! }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(hijack.status, 404)
  await hijack.body?.cancel()

  const get = await app.fetch(new Request('http://127.0.0.1:9/auth'))
  assert.equal(get.status, 405)
  await get.body?.cancel()
  const big = await app.fetch(new Request('http://127.0.0.1:9/auth', { method: 'POST', body: 'x'.repeat(64 * 1024) }))
  assert.equal(big.status, 413)
  assert.equal(((await big.json()) as { error: { code: string } }).error.code, 'payload_too_large')
  assert.equal(calls.whoami, 1)
})

// ---------------------------------------------------------------- mixed 1.x / 2.x

test('mixed: a 1.x client (@modelcontextprotocol/sdk) → a 2.x server', async () => {
  const { p, s } = await setup()
  const authFetch = clientFetch(p, s.url)
  const client = await connectClient1(s.url, authFetch)
  cleanups.push(() => client.close())
  const me = await whoami1(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.equal(me.org, 'example_org')
  const denied = await client.callTool({ name: 'admin_echo', arguments: { text: 'x' } })
  assert.equal(denied.isError, true)
  assert.equal(s.calls.admin, 0)
  const sid = (client as unknown as { transport: StreamableHTTPClientTransport1 }).transport.sessionId!
  assert.equal(s.mcpAuth.sessions.ownerOf(sid), p.client.fingerprint)

  const plain = new Client1({ name: 'plain', version: '1' })
  await assert.rejects(plain.connect(new StreamableHTTPClientTransport1(new URL(s.url))), /401|session_invalid|Unauthorized/i)
  assert.equal(s.calls.whoami, 1)
})

test('mixed: a 2.x client (@modelcontextprotocol/client) → a 1.x server, renewal and key pinning included', async () => {
  const clock = new TestClock()
  const p = makeParties()
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000, clock.now), clock: clock.now, sessionTtl: 120 })
  cleanups.push(() => s.close())
  const counting = countingFetch()
  const authFetch = clientFetch(p, s.url, { clock: clock.now, fetch: counting.fetch })
  const { client, transport } = await connect2(s.url, authFetch)
  const me = await whoami2(client)
  assert.equal(me.clientId, p.client.fingerprint)
  assert.equal(me.role, 'trusted_client')
  assert.equal(s.mcpAuth.sessions.ownerOf(transport.sessionId!), p.client.fingerprint)
  clock.advance(121)
  assert.equal((await whoami2(client)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 2)
  assert.ok(!counting.statuses.includes(401))
  assert.equal(s.calls.whoami, 2)

  const pinned = createAuthFetch({ url: s.url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist, pinnedFingerprint: generateKeyPair().fingerprint }), retryAttempts: 0, clock: clock.now })
  await assert.rejects(new Client({ name: 'pinned', version: '1' }).connect(transport2(s.url, pinned)), (err: unknown) => err instanceof AuthError && err.code === 'server_key_mismatch')
  assert.equal(s.calls.whoami, 2)
})

test('protectFetch streams the Response; a client that goes away aborts request.signal and cancels the body', async () => {
  const p = makeParties()
  const mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }))
  let aborted!: () => void
  const abortSeen = new Promise<void>((r) => (aborted = r))
  let cancelled!: () => void
  const cancelSeen = new Promise<void>((r) => (cancelled = r))
  let seen: { method: string; path: string; body: string; auth: string } | undefined
  const server = createServer()
  mountMcpAuth(server, mcpAuth, {
    fetchHandler: async (request, authInfo) => {
      seen = { method: request.method, path: new URL(request.url).pathname + new URL(request.url).search, body: await request.text(), auth: authInfo.clientId }
      request.signal.addEventListener('abort', () => aborted())
      const stream = new ReadableStream<Uint8Array>({
        start: (c) => c.enqueue(new TextEncoder().encode('event: message\ndata: {"hello":1}\n\n')),
        cancel: () => cancelled(),
      })
      return new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream', 'set-cookie': 'a=1' } })
    },
  })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  const authFetch = clientFetch(p, url)
  const ac = new AbortController()
  const res = await authFetch(`${url}?q=1`, { method: 'POST', headers: MCP_HEADERS, body: '{"x":1}', signal: ac.signal })
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'text/event-stream')
  assert.equal(res.headers.get('set-cookie'), 'a=1')
  const reader = res.body!.getReader()
  const first = await reader.read()
  assert.match(new TextDecoder().decode(first.value), /"hello":1/)
  assert.deepEqual(seen, { method: 'POST', path: '/mcp?q=1', body: '{"x":1}', auth: p.client.fingerprint })
  ac.abort()
  await Promise.all([abortSeen, cancelSeen]) // resolves only if both happen
})

test('mountMcpAuth: handler and fetchHandler together are refused', () => {
  const p = makeParties()
  const mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }))
  assert.throws(() => mountMcpAuth(createServer(), mcpAuth, { handler: () => {}, fetchHandler: () => new Response() }), /handler or fetchHandler/)
  assert.throws(() => mcpAuth.protectFetch(undefined as unknown as McpFetchHandler), TypeError)
})
