/**
 * mcp-pki-auth with the SDK 2.x Node adapters, real SDK on both sides over 127.0.0.1, no mocks:
 * `@modelcontextprotocol/node` (`NodeStreamableHTTPServerTransport`, `toNodeHandler`) on node:http
 * and under Express, `@modelcontextprotocol/express` (its Host/Origin guards and
 * `createMcpExpressApp`), and `protectFetch` under Express. Also what a JSON body parser mounted in
 * front of the library does, and the "With @modelcontextprotocol/node / express (SDK 2.x)" snippet
 * of docs/mcp-server.md, run as written.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer, request as httpRequest, type Server as HttpServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Client, SdkHttpError, StreamableHTTPClientTransport } from '@modelcontextprotocol/client'
import { createMcpExpressApp, localhostHostValidation as expressHostGuard, localhostOriginValidation as expressOriginGuard } from '@modelcontextprotocol/express'
import { localhostHostValidation, localhostOriginValidation, NodeStreamableHTTPServerTransport, toNodeHandler } from '@modelcontextprotocol/node'
import { createMcpHandler, isInitializeRequest, McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server'
import { z } from 'zod'
import { AuthError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch, createAuthFetchFromConfig, createAuthProvider, type AuthFetch } from '../../src/mcp/client.js'
import { callerOf, createMcpAuth, mountMcpAuth, requireRole, type McpAuth, type McpFetchHandler, type McpRequest, type NextFunction } from '../../src/mcp/server.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { importTypeScript } from '../helpers/import-typescript.js'
import { collectReply, type JsonReply } from '../helpers/http-reply.js'
import { closeServer, listen, textOf, type ToolCalls } from './fixtures/harness.js'

const ROOT = resolve(import.meta.dirname, '..', '..')

const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

// ---------------------------------------------------------------- Express (no type declarations here)

type Handler = (req: McpRequest, res: ServerResponse, next: NextFunction) => unknown
interface ExpressApp {
  use(...handlers: (string | Handler | ExpressApp)[]): unknown
  post(path: string, ...handlers: Handler[]): unknown
  all(path: string, ...handlers: Handler[]): unknown
  listen(port: number, host: string, cb: () => void): HttpServer
}
interface ExpressModule {
  (): ExpressApp
  Router(): ExpressApp
  json(options?: { verify?: (req: McpRequest, res: ServerResponse, buf: Buffer) => void }): Handler
}
// express ships without type declarations here (the SDKs depend on it); this is the part we use.
const { default: express } = (await import('express' as string)) as { default: ExpressModule }

async function listenApp(app: ExpressApp): Promise<{ origin: string; server: HttpServer }> {
  const server = await new Promise<HttpServer>((done) => {
    const s = app.listen(0, '127.0.0.1', () => done(s))
  })
  cleanups.push(() => closeServer(server))
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

// ---------------------------------------------------------------- the 2.x server side

/** A 2.x McpServer: `whoami` (the caller as the handler sees it) and an admin-only `admin_echo`. */
function buildMcpServer(calls: ToolCalls): McpServer {
  const mcp = new McpServer({ name: 'sdk2-adapters-test', version: '1.0.0' })
  mcp.registerTool('whoami', { description: 'who is calling' }, (ctx) => {
    calls.whoami++
    const caller = callerOf(ctx)
    const text = JSON.stringify({ clientId: ctx.http?.authInfo?.clientId, role: caller?.role, org: caller?.org, scopes: ctx.http?.authInfo?.scopes })
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

const NO_SESSION = JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'Bad Request: no valid session' }, id: null })

/**
 * The stateful pattern with `@modelcontextprotocol/node`: one `NodeStreamableHTTPServerTransport`
 * per MCP session, `handleRequest(req, res, req.body)` (or without the body: the transport then
 * reads `req.rawBody`, the bytes the library checked).
 */
function nodeSessions(calls: ToolCalls, passBody = true): { handle: (req: McpRequest, res: ServerResponse) => Promise<void>; close(): Promise<void> } {
  const transports = new Map<string, NodeStreamableHTTPServerTransport>()
  return {
    async handle(req, res) {
      const sid = req.headers['mcp-session-id']
      let transport = typeof sid === 'string' ? transports.get(sid) : undefined
      if (transport === undefined) {
        if (sid !== undefined || !isInitializeRequest(req.body)) {
          res.writeHead(400, { 'content-type': 'application/json' }).end(NO_SESSION)
          return
        }
        const created: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => void transports.set(id, created),
          onsessionclosed: (id) => void transports.delete(id),
        })
        await buildMcpServer(calls).connect(created)
        transport = created
      }
      await (passBody ? transport.handleRequest(req, res, req.body) : transport.handleRequest(req, res))
    },
    async close() {
      for (const t of transports.values()) await t.close().catch(() => {})
    },
  }
}

/** The same over the web-standard transport, as a fetch handler for `protectFetch`. */
function fetchSessions(calls: ToolCalls): McpFetchHandler {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>()
  cleanups.push(async () => {
    for (const t of transports.values()) await t.close().catch(() => {})
  })
  return async (request, authInfo) => {
    const sid = request.headers.get('mcp-session-id')
    const body: unknown = request.method === 'POST' ? await request.json() : undefined
    let transport = sid === null ? undefined : transports.get(sid)
    if (transport === undefined) {
      if (sid !== null || !isInitializeRequest(body)) return new Response(NO_SESSION, { status: 400, headers: { 'content-type': 'application/json' } })
      const created: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, created),
        onsessionclosed: (id) => void transports.delete(id),
      })
      await buildMcpServer(calls).connect(created)
      transport = created
    }
    return transport.handleRequest(request, { authInfo, parsedBody: body })
  }
}

function newAuth(p: Parties): McpAuth {
  return createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }))
}

// ---------------------------------------------------------------- the 2.x client side

function clientFetch(p: Parties, url: string, keyPair: Ed25519KeyPair = p.client): AuthFetch {
  return createAuthFetch({ url, keyPair, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 })
}

async function connect(url: string, authFetch: AuthFetch, mode: 'legacy' | 'auto' = 'legacy'): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'sdk2-adapters-client', version: '1.0.0' }, { versionNegotiation: { mode } })
  const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch, authProvider: createAuthProvider(authFetch) })
  await client.connect(transport)
  cleanups.push(() => client.close())
  return { client, transport }
}

async function whoami(client: Client): Promise<{ clientId: string; role: string; org: string; scopes: string[] }> {
  const result = await client.callTool({ name: 'whoami', arguments: {} })
  if (result.isError === true) throw new Error(`whoami failed: ${textOf(result)}`)
  return JSON.parse(textOf(result)) as { clientId: string; role: string; org: string; scopes: string[] }
}

const INIT = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }
const CALL_WHOAMI = { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'whoami', arguments: {} } }
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-11-25' }

/** A POST with a Host header of our choosing (fetch always sends the URL's own). */
function postWithHost(url: string, host: string): Promise<JsonReply> {
  return new Promise((done, fail) => {
    const body = JSON.stringify(INIT)
    const req = httpRequest(url, { method: 'POST', headers: { ...MCP_HEADERS, host, 'content-length': String(Buffer.byteLength(body)) } }, (res) => collectReply(res, done))
    req.on('error', fail)
    req.end(body)
  })
}

/** A 401 from the library: Bearer challenge, our error code, no MCP session opened. */
async function refused(r: Response): Promise<string> {
  assert.equal(r.status, 401)
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="mcp", error="invalid_token"/)
  assert.equal(r.headers.get('mcp-session-id'), null)
  return ((await r.json()) as { error: string }).error
}

/**
 * Everything one protected endpoint must do for a 2.x client: the tool sees the caller; no token
 * → 401 and the tool never runs; another allowlisted key cannot use (or close) the MCP session.
 */
async function checkEndpoint(p: Parties, url: string, mcpAuth: McpAuth, calls: ToolCalls): Promise<void> {
  const authFetch = clientFetch(p, url)
  const { client, transport } = await connect(url, authFetch)
  const me = await whoami(client)
  assert.deepEqual(me, { clientId: p.client.fingerprint, role: 'trusted_client', org: 'example_org', scopes: ['role:trusted_client'] })
  const sid = transport.sessionId
  assert.ok(sid, 'the 2.x server opened an MCP session')
  assert.equal(mcpAuth.sessions.ownerOf(sid), p.client.fingerprint, 'bound to the key that opened it')
  const denied = await client.callTool({ name: 'admin_echo', arguments: { text: 'x' } })
  assert.equal(denied.isError, true)
  assert.match(textOf(denied), /requires role "admin"/)
  const ran = calls.whoami

  // No token: refused before the MCP server sees anything, also with a valid session id.
  assert.equal(await refused(await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })), 'session_invalid')
  assert.equal(await refused(await fetch(url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: JSON.stringify(CALL_WHOAMI) })), 'session_invalid')
  const bare = new Client({ name: 'bare', version: '1' })
  await assert.rejects(bare.connect(new StreamableHTTPClientTransport(new URL(url))), (err: unknown) => err instanceof SdkHttpError && err.status === 401)

  // Another allowlisted key presenting A's session id: 404, as for an unknown id; nor can it close it.
  const other = generateKeyPair()
  p.serverAllowlist.add(other.publicKeyRaw, { role: 'trusted_client', org: 'other_org' })
  const fetchB = clientFetch(p, url, other)
  const hijack = await fetchB(url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: JSON.stringify(CALL_WHOAMI) })
  assert.equal(hijack.status, 404)
  assert.equal(((await hijack.json()) as { error: { message: string } }).error.message, 'Session not found')
  const del = await fetchB(url, { method: 'DELETE', headers: { ...MCP_HEADERS, 'mcp-session-id': sid } })
  assert.equal(del.status, 404)
  await del.body?.cancel()
  assert.equal(calls.whoami, ran, 'the tool never ran for a refused request')
  assert.equal(calls.admin, 0)

  // B in its own session sees itself; A is unaffected and closes its own session.
  const { client: b } = await connect(url, fetchB)
  assert.equal((await whoami(b)).org, 'other_org')
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  await transport.terminateSession()
  assert.equal(mcpAuth.sessions.ownerOf(sid), undefined, 'DELETE by the owner drops the binding')
}

// ---------------------------------------------------------------- @modelcontextprotocol/node on node:http

test('node: NodeStreamableHTTPServerTransport behind mountMcpAuth on node:http (with the Host/Origin guards)', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls)
  cleanups.push(() => mcp.close())
  const validateHost = localhostHostValidation()
  const validateOrigin = localhostOriginValidation()
  const server = createServer()
  mountMcpAuth(server, mcpAuth, {
    handler: (req, res) => {
      if (!validateHost(req, res) || !validateOrigin(req, res)) return
      return mcp.handle(req, res)
    },
  })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  await checkEndpoint(p, url, mcpAuth, calls)

  // The guards still answer for an authenticated request from a foreign origin.
  const authFetch = clientFetch(p, url)
  const foreign = await authFetch(url, { method: 'POST', headers: { ...MCP_HEADERS, origin: 'https://evil.example' }, body: JSON.stringify(INIT) })
  assert.equal(foreign.status, 403)
  await foreign.body?.cancel()
})

test('node: handleRequest(req, res) without the parsed body reads req.rawBody, the bytes the library checked', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls, false)
  cleanups.push(() => mcp.close())
  const server = createServer()
  mountMcpAuth(server, mcpAuth, { handler: mcp.handle })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  const { client } = await connect(url, clientFetch(p, url))
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(calls.whoami, 1)
})

test('node: toNodeHandler(createMcpHandler(…)) behind mountMcpAuth, stateless 2026-07-28; the body must be passed as req.body', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const handler = createMcpHandler(() => buildMcpServer(calls))
  cleanups.push(() => handler.close())
  const nodeHandler = toNodeHandler(handler)
  const server = createServer()
  mountMcpAuth(server, mcpAuth, { handler: (req, res) => nodeHandler(req, res, req.body) })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))

  const authFetch = clientFetch(p, url)
  const { client } = await connect(url, authFetch, 'auto')
  assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28')
  assert.deepEqual(await whoami(client), { clientId: p.client.fingerprint, role: 'trusted_client', org: 'example_org', scopes: ['role:trusted_client'] })
  assert.equal(await refused(await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(CALL_WHOAMI) })), 'session_invalid')
  assert.equal(calls.whoami, 1)

  // Without req.body, toNodeHandler reads the request stream, which the library has consumed:
  // the MCP handler gets an empty body and answers a JSON-RPC parse error (the tool never runs).
  const bare = createServer()
  mountMcpAuth(bare, mcpAuth, { handler: (req, res) => nodeHandler(req, res) })
  const bareUrl = `${await listen(bare)}/mcp`
  cleanups.push(() => closeServer(bare))
  const r = await clientFetch(p, bareUrl)(bareUrl, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(r.status, 400)
  assert.equal(((await r.json()) as { error: { code: number } }).error.code, -32700)
  assert.equal(calls.whoami, 1)
})

// ---------------------------------------------------------------- Express

test('express: mountMcpAuth + NodeStreamableHTTPServerTransport, the @modelcontextprotocol/express guards in front, express.json() after', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls)
  cleanups.push(() => mcp.close())
  const app = express()
  app.use(expressHostGuard() as Handler, expressOriginGuard() as Handler)
  mountMcpAuth(app, mcpAuth)
  app.use(express.json())
  app.all('/mcp', (req, res) => mcp.handle(req, res))
  const { origin } = await listenApp(app)
  await checkEndpoint(p, `${origin}/mcp`, mcpAuth, calls)

  const rebound = await postWithHost(`${origin}/mcp`, 'evil.example')
  assert.equal(rebound.status, 403, 'the Host guard runs before authentication')
  assert.match(rebound.text, /Invalid Host/i)
})

test('express: protectFetch as the route handler, on a router mounted under a prefix', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const app = express()
  app.post('/auth', mcpAuth.authHandler)
  const api = express.Router()
  // protectFetch authenticates by itself: in place of mountMcpAuth / mcpAuth.middleware, not behind it.
  api.all('/mcp', mcpAuth.protectFetch(fetchSessions(calls)))
  app.use('/api', api)
  app.use(express.json()) // for other routes: never reached by /api/mcp
  const { origin } = await listenApp(app)
  // The proof covers /api/mcp, the path the client sent (req.originalUrl), not the router's /mcp.
  await checkEndpoint(p, `${origin}/api/mcp`, mcpAuth, calls)
})

test('express: protectFetch behind mountMcpAuth of the same McpAuth reuses that check (verified once, works); behind another instance the spent proof is a replay', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const app = express()
  mountMcpAuth(app, mcpAuth)
  app.all('/mcp', mcpAuth.protectFetch(fetchSessions(calls)))
  const { origin } = await listenApp(app)
  await checkEndpoint(p, `${origin}/mcp`, mcpAuth, calls)

  // Two instances over the same service: each checks the request, the second finds the nonce spent.
  const other = createMcpAuth(mcpAuth.service)
  const app2 = express()
  mountMcpAuth(app2, mcpAuth)
  app2.all('/mcp', other.protectFetch(fetchSessions({ whoami: 0, admin: 0 })))
  const second = await listenApp(app2)
  const url = `${second.origin}/mcp`
  const r = await clientFetch(p, url)(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
  assert.equal(await refused(r), 'replay_detected')
  assert.equal(other.sessions.size, 0)
})

// ---------------------------------------------------------------- a JSON body parser in front

const ALREADY_READ = {
  error: 'internal_error',
  error_description: 'the request body was already read by another middleware (e.g. express.json()); mount the mcp-pki-auth middleware before any body parser',
}

/**
 * A JSON body parser ran before the library on `/mcp` (and, with `onAuth`, on `/auth`): requests
 * with a token get the clear 500 (the handshake too), requests without one the usual 401; no MCP
 * session is opened and the tool never runs.
 */
async function checkBodyAlreadyRead(p: Parties, origin: string, mcpAuth: McpAuth, calls: ToolCalls, onAuth: boolean): Promise<void> {
  const url = `${origin}/mcp`
  const authFetch = clientFetch(p, url)
  const connecting = new Client({ name: 'blocked', version: '1' }).connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch, authProvider: createAuthProvider(authFetch) }))
  if (onAuth) {
    const hello = await fetch(`${origin}/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'auth_request' }) })
    assert.equal(hello.status, 500)
    assert.deepEqual(await hello.json(), ALREADY_READ)
    // The client names the failed handshake (not a refused key, not a too-large message).
    const isHandshake500 = (err: unknown): boolean => err instanceof AuthError && err.code === 'transport_error' && /\/auth replied HTTP 500/.test(err.message)
    await assert.rejects(authFetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) }), isHandshake500)
    await assert.rejects(connecting, isHandshake500)
  } else {
    const r = await authFetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })
    assert.equal(r.status, 500)
    assert.equal(r.headers.get('mcp-session-id'), null)
    assert.deepEqual(await r.json(), ALREADY_READ)
    await assert.rejects(connecting, (err: unknown) => err instanceof SdkHttpError && err.status === 500 && err.message.includes('mount the mcp-pki-auth middleware before any body parser'))
  }
  assert.equal(await refused(await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })), 'session_invalid')
  assert.equal(calls.whoami, 0)
  assert.equal(mcpAuth.sessions.size, 0)
}

test('express.json() BEFORE the library: mountMcpAuth and protectFetch refuse with a clear 500 (handshake included), never a wrong verdict', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls)
  cleanups.push(() => mcp.close())
  const mcpRoute: Handler = (req, res) => mcp.handle(req, res)

  const everywhere = express()
  everywhere.use(express.json())
  mountMcpAuth(everywhere, mcpAuth)
  everywhere.all('/mcp', mcpRoute)
  await checkBodyAlreadyRead(p, (await listenApp(everywhere)).origin, mcpAuth, calls, true)

  const onMcp = express()
  onMcp.use('/mcp', express.json())
  mountMcpAuth(onMcp, mcpAuth)
  onMcp.all('/mcp', mcpRoute)
  await checkBodyAlreadyRead(p, (await listenApp(onMcp)).origin, mcpAuth, calls, false)

  const fetchStyle = express()
  fetchStyle.post('/auth', mcpAuth.authHandler)
  fetchStyle.use('/mcp', express.json())
  fetchStyle.all('/mcp', mcpAuth.protectFetch(fetchSessions(calls)))
  await checkBodyAlreadyRead(p, (await listenApp(fetchStyle)).origin, mcpAuth, calls, false)
})

test('createMcpExpressApp() (@modelcontextprotocol/express) installs express.json() first: the same clear 500', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls)
  cleanups.push(() => mcp.close())
  const app = createMcpExpressApp() as unknown as ExpressApp
  mountMcpAuth(app, mcpAuth)
  app.all('/mcp', (req, res) => mcp.handle(req, res))
  await checkBodyAlreadyRead(p, (await listenApp(app)).origin, mcpAuth, calls, true)
})

test('express.json({ verify }) keeping the raw bytes as req.rawBody before the library: those bytes are checked, and it works', async () => {
  const p = makeParties()
  const calls: ToolCalls = { whoami: 0, admin: 0 }
  const mcpAuth = newAuth(p)
  const mcp = nodeSessions(calls)
  cleanups.push(() => mcp.close())
  const app = express()
  app.use(express.json({ verify: (req, _res, buf) => void (req.rawBody = buf) }))
  mountMcpAuth(app, mcpAuth)
  app.all('/mcp', (req, res) => mcp.handle(req, res))
  const { origin } = await listenApp(app)
  await checkEndpoint(p, `${origin}/mcp`, mcpAuth, calls)

  // The proof still covers the body: a request whose body differs from the signed one is refused.
  const authFetch = clientFetch(p, `${origin}/mcp`)
  const session = await authFetch.session()
  const r = await fetch(`${origin}/mcp`, { method: 'POST', headers: { ...MCP_HEADERS, authorization: `Bearer ${session.token}` }, body: JSON.stringify(INIT) })
  assert.equal(await refused(r), 'proof_missing')
})

// ---------------------------------------------------------------- the documented snippet

/** The ```ts block after `marker` in docs/mcp-server.md, its imports pointed at this checkout. */
async function docSnippet(marker: string, replace: [string, string][]): Promise<string> {
  const text = await readFile(join(ROOT, 'docs', 'mcp-server.md'), 'utf8')
  const at = text.indexOf(marker)
  assert.ok(at >= 0, `mcp-server.md has ${marker}`)
  let code = /```ts\n([\s\S]*?)```/.exec(text.slice(at))?.[1]
  assert.ok(code !== undefined, `a ts block after ${marker}`)
  for (const [from, to] of replace) {
    assert.ok(code.includes(from), `the snippet contains ${from}`)
    code = code.replace(from, to)
  }
  const ours: Record<string, string> = { 'mcp-pki-auth': 'src/index.js', 'mcp-pki-auth/mcp/server': 'src/mcp/server.js' }
  return code.replace(/from '([^']+)'/g, (_all, spec: string) => {
    if (spec.startsWith('node:')) return `from '${spec}'`
    return `from '${ours[spec] !== undefined ? pathToFileURL(join(ROOT, ours[spec])).href : import.meta.resolve(spec)}'`
  })
}

test('docs: the @modelcontextprotocol/node + express server of mcp-server.md runs as written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-pki-sdk2-adapters-doc-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir)
  const code = await docSnippet('<!-- sdk2-express-example -->', [
    ["loadConfig('server_config.yml')", `loadConfig(${JSON.stringify(sb.serverConfigPath)})`],
    ["app.listen(8443, '127.0.0.1')", "app.listen(0, '127.0.0.1')"],
  ])
  const mod = await importTypeScript<{ server: HttpServer; close(): Promise<void> }>(join(dir, 'server.mts'), code)
  cleanups.push(() => mod.close())
  cleanups.push(() => closeServer(mod.server))
  if (!mod.server.listening) await new Promise((r) => mod.server.once('listening', r))
  const url = `http://127.0.0.1:${(mod.server.address() as AddressInfo).port}/mcp`

  const authFetch = await createAuthFetchFromConfig(sb.clientConfigPath, url)
  const { client, transport } = await connect(url, authFetch)
  const result = await client.callTool({ name: 'whoami', arguments: {} })
  assert.deepEqual(JSON.parse(textOf(result)), { fingerprint: sb.clientKey.fingerprint, role: 'trusted_client', org: 'example_org' })
  assert.ok(transport.sessionId)

  assert.equal(await refused(await fetch(url, { method: 'POST', headers: MCP_HEADERS, body: JSON.stringify(INIT) })), 'session_invalid')
  assert.equal((await postWithHost(url, 'evil.example')).status, 403, 'the Host guard of @modelcontextprotocol/express is in place')
})
