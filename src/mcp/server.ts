/**
 * Protecting an MCP server built with the official TypeScript SDK (1.x and 2.x).
 *
 * Every HTTP request to the MCP endpoint must carry `Authorization: Bearer <session token>` and a
 * fresh `MCP-PKI-Proof` (HMAC under the session key over method, target, body digest, time and
 * nonce). {@link createMcpAuth} checks both and turns the session into the SDK's `AuthInfo`:
 * `clientId` is the client key's fingerprint, `expiresAt` the session's end (seconds), `scopes`
 * come from the allowlist metadata (`scopes: [...]` plus `role:<role>`), and `extra` carries
 * `fingerprint`, `role`, `org`, `metadata`, `sessionId`. Tool handlers read it from
 * `extra.authInfo` (1.x) or `ctx.http?.authInfo` (2.x); {@link callerOf} reads either.
 *
 * SDK 1.x (`@modelcontextprotocol/sdk`) has a node:http transport: use {@link McpAuth.middleware},
 * {@link McpAuth.protect} or {@link mountMcpAuth} with `handler`. SDK 2.x
 * (`@modelcontextprotocol/server`) has only web-standard ones (`WebStandardStreamableHTTPServerTransport`,
 * `createMcpHandler`): use {@link McpAuth.fetchHandler} on a fetch-native runtime, or
 * {@link McpAuth.protectFetch} / {@link mountMcpAuth} with `fetchHandler` on node:http.
 *
 * MCP sessions (`Mcp-Session-Id`) are bound to the key that opened them: another authenticated
 * key presenting that id gets the same `404 Session not found` an unknown id gets, so it learns
 * nothing and reaches nothing.
 *
 * Nothing here imports the SDK at run time; the types are structurally the SDK's.
 * @module
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http'
import { AuthError, httpStatusFor, toWireError } from '../errors.js'
import type { AuditSink, AuthService, RequestContext } from '../transport/auth-service.js'
import type { SessionInfo } from '../session/session-verifier.js'
import { DEFAULT_MAX_MESSAGE_SIZE, EPOCH_HEADER, PROOF_HEADER, PROTOCOL_VERSION, REFUSAL_HEADER } from '../protocol/constants.js'
import { enforceNodeRequest, enforceWebRequest } from '../authz/http-enforcement.js'
import type { Authorizer } from '../authz/types.js'

/** The SDK's `AuthInfo` (`@modelcontextprotocol/sdk/server/auth/types.js`), structurally. */
export interface McpAuthInfo {
  token: string
  /** The client key's fingerprint (lowercase hex SHA-256 of the raw public key). */
  clientId: string
  scopes: string[]
  /** Seconds since the epoch. */
  expiresAt?: number
  resource?: URL
  extra?: Record<string, unknown>
}

/** What {@link McpAuthInfo.extra} holds for a session of ours. */
export interface McpCaller {
  fingerprint: string
  role: string | undefined
  org: string | undefined
  metadata: Readonly<Record<string, unknown>>
  sessionId: string
}

/** A node:http request as Express and the SDK see it. */
export type McpRequest = IncomingMessage & {
  auth?: McpAuthInfo
  body?: unknown
  /** The raw body bytes as received and checked (set by the middleware). */
  rawBody?: Buffer
  originalUrl?: string
}

export type NextFunction = (err?: unknown) => void

/**
 * A web-standard MCP handler that is given the caller's `AuthInfo`. With SDK 2.x:
 * `(request, authInfo) => transport.handleRequest(request, { authInfo })`
 * (`WebStandardStreamableHTTPServerTransport`) or `(request, authInfo) => handler.fetch(request, { authInfo })`
 * (`createMcpHandler`). The 1.x `WebStandardStreamableHTTPServerTransport` has the same signature.
 */
export type McpFetchHandler = (request: Request, authInfo: McpAuthInfo) => Response | Promise<Response>

export interface McpAuthOptions {
  /** Largest accepted request body in bytes (default 4 MiB, the SDK's own default); larger → 413. */
  maxBodySize?: number
  /** Bind each MCP session id to the key that opened it (default true). */
  bindSessions?: boolean
  /** Most session bindings kept (default 100,000); the oldest is dropped (its session becomes unreachable). */
  maxBoundSessions?: number
  /** Scopes for a session (default: metadata `scopes` strings plus `role:<role>`). */
  scopesOf?: (session: SessionInfo) => string[]
  /** Realm in the `WWW-Authenticate` challenge (default `mcp`). */
  realm?: string
  /** Transport label for audit (default `http`). */
  transport?: string
  /** Largest handshake message on the mounted `/auth` endpoint (default 16 KiB). */
  maxHandshakeSize?: number
  /** Where refused session ids and handler errors are reported (the service audits auth failures itself). */
  audit?: AuditSink
  /**
   * Per-tool authorization (docs/authorization.md): a policy from `watchPolicy`/`compilePolicy`, or
   * any {@link Authorizer}. Refused calls are answered `forbidden by policy` before the handler or
   * upstream sees them; tools/resources/prompts lists are filtered. Default: none (authentication only).
   */
  authorization?: Authorizer
}

/** Who owns which MCP session id. */
export interface McpSessionBindings {
  /** Fingerprint of the key that opened `sessionId`, if bound. */
  ownerOf(sessionId: string): string | undefined
  forget(sessionId: string): void
  readonly size: number
}

/** The result of checking one node:http request. */
export interface AuthenticatedRequest {
  authInfo: McpAuthInfo
  session: SessionInfo
  /** The raw body as received (empty for GET/DELETE). */
  body: Buffer
}

export interface McpAuth {
  readonly service: AuthService
  readonly sessions: McpSessionBindings
  /** Whether this instance binds MCP session ids to keys itself (the `bindSessions` option). */
  readonly bindsSessions: boolean
  /**
   * Express / connect middleware for the MCP endpoint: on success sets `req.auth` and `req.body`
   * (parsed JSON) so `transport.handleRequest(req, res, req.body)` works; on failure answers 401
   * (with a `Bearer` challenge), 404 (session of another key), 413, 429 or 503 itself.
   */
  middleware(req: McpRequest, res: ServerResponse, next: NextFunction): void
  /** A node:http request listener that authenticates, then calls `handler`. */
  protect(handler: (req: McpRequest, res: ServerResponse) => unknown): RequestListener
  /**
   * A node:http request listener for a web-standard MCP handler (SDK 2.x has no other): authenticates
   * like {@link McpAuth.protect} (session binding included), then gives `handler` a `Request` with the
   * method, target, headers and exactly the body bytes that were checked, and streams its `Response`
   * back (SSE included). A client that goes away aborts `request.signal` and cancels the body.
   * Use it in place of {@link McpAuth.middleware}; behind the middleware of the same McpAuth it
   * reuses that check (a request is verified once per instance).
   */
  protectFetch(handler: McpFetchHandler): RequestListener
  /** The `POST /auth` handshake endpoint as a node:http / Express handler. */
  authHandler: RequestListener
  /** Lower level: reads the body, checks token and proof. Throws AuthError (or {@link HttpError}). */
  authenticate(req: IncomingMessage): Promise<AuthenticatedRequest>
  /**
   * Web-standard check for `WebStandardStreamableHTTPServerTransport`:
   * `transport.handleRequest(request, { authInfo: await mcpAuth.verifyWebRequest(request) })`.
   * Reads a clone of the body, so `request` stays readable. Throws AuthError. Does not check
   * session binding; use {@link McpAuth.fetchHandler} for that.
   */
  verifyWebRequest(request: Request): Promise<McpAuthInfo>
  /**
   * Wraps a fetch-style MCP handler: authenticates, enforces session binding, and answers
   * failures with the same statuses and headers as {@link McpAuth.middleware}.
   */
  fetchHandler(handler: McpFetchHandler): (request: Request) => Promise<Response>
  /**
   * The `POST /auth` handshake endpoint as a fetch-style handler (Workers, Deno, Bun, Hono), the
   * counterpart of {@link McpAuth.authHandler}. Without a configured `audience` the service cannot
   * check which server a handshake was meant for, so it refuses every handshake: configure one on such runtimes.
   */
  fetchAuthHandler(request: Request): Promise<Response>
  /** Sends the HTTP answer for a failure (401 with challenge, 413, 429, 503 …). */
  sendError(res: ServerResponse, err: unknown): void
}

/** A failure that is not an authentication failure (body too large, bad JSON). */
export class HttpError extends Error {
  readonly status: number
  readonly body: unknown
  constructor(status: number, message: string, body?: unknown) {
    super(message)
    this.name = 'HttpError'
    this.status = status
    this.body = body ?? { error: status === 413 ? 'payload_too_large' : status >= 500 ? 'internal_error' : 'invalid_request', error_description: message }
  }
}

/** Thrown by {@link requireRole} when the caller lacks the role; the SDK turns it into an `isError` tool result. */
export class McpForbiddenError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'McpForbiddenError'
  }
}

const SESSION_HEADER = 'mcp-session-id'
/** The body of a request refused before it was read, and of GET/DELETE (never written to). */
const NO_BODY = Buffer.alloc(0)
/** What a check established, kept on the request (see VERIFIED in createMcpAuth). */
interface Verified {
  authInfo: McpAuthInfo
  body: Buffer
}
/** The local port given to the audience check for a socket that has none: no URL port equals it. */
const NO_PORT = -1
const DEFAULT_MAX_BODY = 4 * 1024 * 1024
const SESSION_NOT_FOUND = { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null }
const PARSE_ERROR = { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error: the body is not valid JSON' }, id: null }

/** Default scopes: metadata `scopes` (strings) plus `role:<role>`. */
export function defaultScopesOf(session: SessionInfo): string[] {
  const md = session.entry.metadata
  const scopes: string[] = []
  if (Array.isArray(md.scopes)) for (const s of md.scopes) if (typeof s === 'string' && !scopes.includes(s)) scopes.push(s)
  if (typeof md.role === 'string' && !scopes.includes(`role:${md.role}`)) scopes.push(`role:${md.role}`)
  return scopes
}

/** The SDK `AuthInfo` for one of our sessions. */
export function authInfoFromSession(session: SessionInfo, scopesOf: (s: SessionInfo) => string[] = defaultScopesOf): McpAuthInfo {
  const md = session.entry.metadata
  const caller: McpCaller = {
    fingerprint: session.clientFingerprint,
    role: typeof md.role === 'string' ? md.role : undefined,
    org: typeof md.org === 'string' ? md.org : undefined,
    metadata: md,
    sessionId: session.sessionId,
  }
  return {
    token: session.token,
    clientId: session.clientFingerprint,
    scopes: scopesOf(session),
    expiresAt: Math.floor(session.expiresAt / 1000),
    extra: { ...caller },
  }
}

/** `info` with its scopes and caller frozen too: one object shared by every request of a session, which no handler can change. */
function frozenAuthInfo(info: McpAuthInfo): McpAuthInfo {
  // A copy: the array may be the application's own (a `scopesOf` returning a shared list).
  info.scopes = Object.freeze([...info.scopes]) as string[]
  if (info.extra !== undefined) Object.freeze(info.extra)
  return Object.freeze(info)
}

/**
 * Who called a tool: reads `extra.authInfo` (SDK 1.x) or `ctx.http.authInfo` (SDK 2.x).
 * Returns undefined when the request was not authenticated by this library.
 * @example
 * server.registerTool('whoami', {}, async (extra) => ({ content: [{ type: 'text', text: callerOf(extra)!.fingerprint }] }))
 */
export function callerOf(extra: unknown): McpCaller | undefined {
  const e = extra as { authInfo?: McpAuthInfo; http?: { authInfo?: McpAuthInfo } } | undefined
  const info = e?.authInfo ?? e?.http?.authInfo
  const x = info?.extra
  if (x === undefined || typeof x.fingerprint !== 'string' || typeof x.sessionId !== 'string') return undefined
  return {
    fingerprint: x.fingerprint,
    role: typeof x.role === 'string' ? x.role : undefined,
    org: typeof x.org === 'string' ? x.org : undefined,
    metadata: (x.metadata ?? {}) as Readonly<Record<string, unknown>>,
    sessionId: x.sessionId,
  }
}

/**
 * Wraps a tool handler so it runs only for callers whose allowlist role is `role` (or one of
 * `roles`). Works for handlers with and without arguments (the SDK passes `extra` last).
 * Otherwise throws {@link McpForbiddenError}, which the SDK reports as an `isError` result.
 * @example
 * server.registerTool('drop_table', { inputSchema: { name: z.string() } }, requireRole('admin', async ({ name }, extra) => …))
 */
export function requireRole<A extends unknown[], R>(role: string | readonly string[], handler: (...args: A) => R): (...args: A) => R {
  const roles = typeof role === 'string' ? [role] : [...role]
  if (roles.length === 0 || roles.some((r) => typeof r !== 'string' || r === '')) throw new TypeError('role must be a non-empty string or list of strings')
  return (...args: A): R => {
    const caller = callerOf(args[args.length - 1])
    if (caller === undefined) throw new McpForbiddenError('forbidden: this tool requires an authenticated caller')
    if (caller.role === undefined || !roles.includes(caller.role)) {
      throw new McpForbiddenError(`forbidden: this tool requires role ${roles.map((r) => JSON.stringify(r)).join(' or ')}`)
    }
    return handler(...args)
  }
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** Reads the body, at most `max` bytes (413 beyond). */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  if (req.readableEnded) {
    // A body parser ran first; only its raw bytes (express.raw, or a `rawBody` copy) can be checked.
    const r = req as IncomingMessage & { rawBody?: unknown; body?: unknown }
    if (Buffer.isBuffer(r.rawBody)) return Promise.resolve(r.rawBody)
    if (Buffer.isBuffer(r.body)) return Promise.resolve(r.body)
    return Promise.reject(new HttpError(500, 'the request body was already read by another middleware (e.g. express.json()); mount the mcp-pki-auth middleware before any body parser'))
  }
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > max) return Promise.reject(new HttpError(413, `request body larger than ${max} bytes`))
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let done = false
    req.on('data', (chunk: Buffer) => {
      if (done) return
      size += chunk.byteLength
      if (size > max) {
        done = true
        req.resume()
        reject(new HttpError(413, `request body larger than ${max} bytes`))
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (!done) {
        done = true
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
      }
    })
    req.on('error', (err) => {
      if (!done) {
        done = true
        reject(err)
      }
    })
  })
}

function quoted(text: string): string {
  // A header value must be Latin-1 without controls (node throws otherwise): keep printable ASCII.
  return text.replace(/[\\"]/g, "'").replace(/[\r\n]/g, ' ').replace(/[^\x20-\x7e]/g, '?')
}

interface ErrorAnswer {
  status: number
  headers: Record<string, string>
  body: unknown
}

function errorAnswer(err: unknown, realm: string): ErrorAnswer {
  if (err instanceof HttpError) return { status: err.status, headers: {}, body: err.body }
  const error = err instanceof AuthError ? err : new AuthError('internal_error', 'internal error', { cause: err })
  const wire = toWireError(error)
  const status = httpStatusFor(wire.code)
  const headers: Record<string, string> = {}
  if (status === 401) {
    headers['www-authenticate'] = `Bearer realm="${quoted(realm)}", error="invalid_token", error_description="${quoted(wire.message)}"`
  }
  if (error.retryAfter !== undefined) headers['retry-after'] = String(error.retryAfter)
  if (error.epochHeader !== undefined) headers[EPOCH_HEADER] = error.epochHeader
  if (error.refusalHeader !== undefined) headers[REFUSAL_HEADER] = error.refusalHeader
  return { status, headers, body: { error: wire.code, error_description: wire.message } }
}

/** The auth_error body of a handshake message over `max` bytes (as the HTTP transport sends it). */
function handshakeTooLarge(max: number): unknown {
  return { type: 'auth_error', version: PROTOCOL_VERSION, success: false, error: { code: 'payload_too_large', message: `request body is larger than ${max} bytes` } }
}

function writeJson(res: ServerResponse, status: number, headers: Record<string, string>, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' })
  res.end(text)
}

/** The web `Request` for an authenticated node:http request whose body was read (and checked) already. */
function toWebRequest(req: McpRequest, body: Buffer, signal: AbortSignal): Request {
  const headers = new Headers()
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue
    if (Array.isArray(v)) for (const x of v) headers.append(k, x)
    else headers.set(k, v)
  }
  const target = req.originalUrl ?? req.url ?? '/'
  const host = headerValue(req, 'host')
  const scheme = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true ? 'https' : 'http'
  // Only the path and query come from the request line (a target like `//other/x` stays a path).
  let url: URL
  try {
    url = new URL(`${scheme}://${host !== undefined && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host) ? host : 'localhost'}`)
  } catch {
    url = new URL(`${scheme}://localhost`) // e.g. a port over 65535
  }
  if (target.startsWith('/')) {
    const q = target.indexOf('?')
    url.pathname = q === -1 ? target : target.slice(0, q)
    url.search = q === -1 ? '' : target.slice(q)
  }
  const method = req.method ?? 'GET'
  const init: RequestInit = { method, headers, signal }
  if (method !== 'GET' && method !== 'HEAD' && body.byteLength > 0) init.body = body
  return new Request(url, init)
}

/** Writes a web `Response` to a node:http response, streaming its body with backpressure. */
async function writeWebResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {}
  response.headers.forEach((v, k) => {
    if (k !== 'set-cookie') headers[k] = v
  })
  const cookies = response.headers.getSetCookie()
  if (cookies.length > 0) headers['set-cookie'] = cookies
  res.writeHead(response.status, headers)
  if (response.body === null) {
    res.end()
    return
  }
  // An event stream may stay quiet for long: the client must see its headers now.
  if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) res.flushHeaders()
  const reader = response.body.getReader()
  const gone = (): void => void reader.cancel().catch(() => {})
  res.once('close', gone)
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      if (res.destroyed) return
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = (): void => {
            res.off('drain', go)
            res.off('close', go)
            resolve()
          }
          res.once('drain', go)
          res.once('close', go)
        })
      }
    }
    res.end()
  } catch (err) {
    if (!res.destroyed) res.destroy(err instanceof Error ? err : undefined)
  } finally {
    res.off('close', gone)
  }
}

function createBindings(max: number): McpSessionBindings & { bind(id: string, fp: string): void } {
  const owners = new Map<string, string>()
  return {
    ownerOf: (id) => owners.get(id),
    forget: (id) => void owners.delete(id),
    get size() {
      return owners.size
    },
    bind(id, fp) {
      if (owners.has(id)) return
      if (owners.size >= max) owners.delete(owners.keys().next().value as string)
      owners.set(id, fp)
    },
  }
}

/** The session id named in `writeHead` headers or already set on the response. */
function sessionIdIn(res: ServerResponse, headers: unknown): string | undefined {
  if (Array.isArray(headers)) {
    // [[k, v], …] or flat [k, v, k, v]
    if (headers.length > 0 && Array.isArray(headers[0])) {
      for (const pair of headers as [string, string][]) if (String(pair[0]).toLowerCase() === SESSION_HEADER) return String(pair[1])
    } else {
      for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === SESSION_HEADER) return String(headers[i + 1])
    }
  } else if (headers !== null && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers as Record<string, unknown>)) if (k.toLowerCase() === SESSION_HEADER && v !== undefined) return String(v)
  }
  const set = res.getHeader(SESSION_HEADER)
  return set === undefined ? undefined : String(Array.isArray(set) ? set[0] : set)
}

/**
 * Creates the MCP integration for an {@link AuthService}.
 * @example
 * const mcpAuth = createMcpAuth(service)
 * app.post('/auth', mcpAuth.authHandler)
 * app.all('/mcp', mcpAuth.middleware, (req, res) => transport.handleRequest(req, res, req.body))
 */
export function createMcpAuth(service: AuthService, options: McpAuthOptions = {}): McpAuth {
  if (service === null || typeof service !== 'object' || typeof service.verifyRequest !== 'function') throw new TypeError('service must be an AuthService (createAuthService)')
  const maxBody = options.maxBodySize ?? DEFAULT_MAX_BODY
  if (!(maxBody > 0)) throw new RangeError('maxBodySize must be positive')
  const maxHandshake = options.maxHandshakeSize ?? DEFAULT_MAX_MESSAGE_SIZE
  const bindSessions = options.bindSessions ?? true
  const scopesOf = options.scopesOf ?? defaultScopesOf
  const realm = options.realm ?? 'mcp'
  const transport = options.transport ?? 'http'
  const bindings = createBindings(options.maxBoundSessions ?? 100_000)
  /**
   * Marks a request this instance has verified (and bound), with what the check established: a
   * property of the request under a symbol of this instance (a WeakMap entry per request made
   * every scavenge trace an ephemeron table).
   */
  const VERIFIED = Symbol('mcp-pki-auth verified')
  const audit = options.audit
  const authorization = options.authorization
  if (authorization !== undefined && typeof authorization.decide !== 'function') throw new TypeError('authorization must be an Authorizer: an object with decide(subject, request)')

  /**
   * What a socket says about where requests arrive, kept per socket (both frozen; a socket's
   * addresses do not change): the audit context and the audience-check context. Built once per
   * connection instead of twice per request, and the verifier recognises the same frozen context
   * object to skip re-checking the audience on a keep-alive connection. A WeakMap entry per
   * connection rather than a property on Node's socket (which measured the same).
   */
  const socketContexts = new WeakMap<object, SocketContexts>()
  /**
   * Each session's AuthInfo, frozen, made once: the verifier returns one frozen SessionInfo per
   * session (while its allowlist entry is unchanged), so this is a WeakMap hit per request instead
   * of four objects made per request (~8 µs in situ, docs/benchmarks.md, session 10). Only with
   * the default scopes: a `scopesOf` of the application's may read state of its own that changes,
   * so it is asked on every request, as before.
   */
  const authInfos = options.scopesOf === undefined ? new WeakMap<SessionInfo, McpAuthInfo>() : undefined
  function authInfoOf(session: SessionInfo): McpAuthInfo {
    const known = authInfos?.get(session)
    if (known !== undefined) return known
    const made = frozenAuthInfo(authInfoFromSession(session, scopesOf))
    if (authInfos !== undefined && Object.isFrozen(session)) authInfos.set(session, made)
    return made
  }
  interface SocketContexts {
    audit: RequestContext
    local: { localPort: number; localAddress?: string }
  }
  function contextsOf(req: IncomingMessage): SocketContexts {
    const socket = req.socket as object | undefined | null
    const known = socket === undefined || socket === null ? undefined : socketContexts.get(socket)
    if (known !== undefined) return known
    const made: SocketContexts = { audit: Object.freeze(buildCtx(req)), local: Object.freeze(buildSocketContext(req)) }
    if (socket !== undefined && socket !== null) socketContexts.set(socket, made)
    return made
  }
  function ctxOf(req: IncomingMessage): RequestContext {
    return contextsOf(req).audit
  }
  function socketContext(req: IncomingMessage): { localPort: number; localAddress?: string } {
    return contextsOf(req).local
  }

  function buildCtx(req: IncomingMessage): RequestContext {
    const remote = req.socket?.remoteAddress
    // A socket without a port (a Unix socket behind a proxy, a custom duplex) can match no audience
    // URL: the default check then refuses every handshake until `auth.audience` is configured,
    // instead of being skipped (a skipped check accepts a handshake meant for any other server).
    const localPort = req.socket === undefined || req.socket === null ? undefined : (req.socket.localPort ?? NO_PORT)
    const localAddress = req.socket?.localAddress
    return { transport, ...(remote === undefined ? {} : { remote }), ...(localPort === undefined ? {} : { localPort }), ...(localAddress === undefined ? {} : { localAddress }) }
  }

  /**
   * Whether `authorization` names a session of ours (token steps only: opens, and is live, expired
   * or of a key no longer allowed). Checked before a byte of the body is read, so a stranger with a
   * made-up token cannot make the server wait for and buffer a body of up to `maxBodySize`. The
   * body of an expired or revoked session's request is read: its proof covers the body, and only a
   * verified proof gets an authenticated refusal (docs/PROTOCOL.md §8), which is what lets the
   * client renew and re-send after a genuine expiry.
   */
  function tokenLooksLive(authorization: string | undefined, context?: RequestContext): boolean {
    if (authorization === undefined || !authorization.startsWith('Bearer ')) return false
    const verifier = (service as Partial<AuthService>).verifier
    // With the socket the request came in on, as the full check right after (which re-checks
    // everything with the time then): the token opens and names this server. Where verifyToken
    // ran here, the allowlist and revocation checks ran twice per request.
    if (typeof verifier?.precheckToken === 'function') return verifier.precheckToken(authorization.slice(7), context)
    if (verifier === undefined || typeof verifier.verifyToken !== 'function') return true // a custom service: it checks everything itself
    try {
      // With the socket the request came in on, as the full check right after: the verifier
      // caches the audience verdict per token and socket, and a check without one (the default
      // audience check then has nothing to compare) reset that cache, so both checks recomputed
      // the verdict on every request (~3 µs each in the profile, docs/benchmarks.md).
      verifier.verifyToken(authorization.slice(7), context)
      return true
    } catch (err) {
      return err instanceof AuthError && (err.code === 'session_expired' || err.code === 'session_revoked')
    }
  }

  /**
   * Checks token and proof of a node:http request whose body is `body`: at once when the service
   * can (in-memory nonce store), else through its promise. The audit context is built only for a
   * failure. (Awaiting `verifyRequest` instead cost 3 more promise hops per request; see
   * docs/benchmarks.md, "tools/call".)
   */
  function verifyNode(req: IncomingMessage, body: Buffer, context = socketContext(req)): SessionInfo | Promise<SessionInfo> {
    const request = {
      authorization: headerValue(req, 'authorization'),
      proof: headerValue(req, PROOF_HEADER),
      method: req.method ?? 'GET',
      target: (req as McpRequest).originalUrl ?? req.url ?? '/',
      body,
      mcpSessionId: headerValue(req, SESSION_HEADER),
      // The socket it arrived on: the session's audience is checked against it on every request.
      context,
    }
    return service.verifyRequestNow !== undefined ? service.verifyRequestNow(request, ctxOf(req)) : service.verifyRequest(request, ctxOf(req))
  }

  function buildSocketContext(req: IncomingMessage): { localPort: number; localAddress?: string } {
    const localPort = req.socket === undefined || req.socket === null ? NO_PORT : (req.socket.localPort ?? NO_PORT)
    const localAddress = req.socket?.localAddress
    return localAddress === undefined ? { localPort } : { localPort, localAddress }
  }

  async function authenticate(req: IncomingMessage): Promise<AuthenticatedRequest> {
    // No token, or one that is not a live session of ours: refuse (verifyRequest gives the precise
    // code and audits it) before reading a byte of the body.
    const context = socketContext(req)
    const body = tokenLooksLive(headerValue(req, 'authorization'), context) ? await readBody(req, maxBody) : NO_BODY
    const session = await verifyNode(req, body, context)
    return { session, authInfo: authInfoOf(session), body }
  }

  function sendError(res: ServerResponse, err: unknown): void {
    const a = errorAnswer(err, realm)
    writeJson(res, a.status, a.headers, a.body)
  }

  /** Refuses a session id owned by another key (or unknown); watches the reply for a new one. */
  function checkBinding(req: IncomingMessage, res: ServerResponse, fingerprint: string): boolean {
    if (!bindSessions) return true
    const sid = headerValue(req, SESSION_HEADER)
    if (sid !== undefined) {
      const owner = bindings.ownerOf(sid)
      if (owner !== fingerprint) {
        audit?.log('mcp.session_refused', { client_fingerprint: fingerprint, owner_known: owner !== undefined, remote: req.socket?.remoteAddress, transport }, 'WARN')
        writeJson(res, 404, {}, SESSION_NOT_FOUND)
        return false
      }
      if (req.method === 'DELETE') {
        res.once('finish', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) bindings.forget(sid)
        })
      }
      return true
    }
    // A request without a session id may open one: bind the id the server answers with.
    const original = res.writeHead
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      const status = typeof args[0] === 'number' ? args[0] : this.statusCode
      const headers = typeof args[1] === 'string' ? args[2] : args[1]
      const id = sessionIdIn(this, headers)
      if (id !== undefined && status >= 200 && status < 300) bindings.bind(id, fingerprint)
      res.writeHead = original
      return (original as (...a: unknown[]) => ServerResponse).apply(this, args)
    } as typeof res.writeHead
    return true
  }

  /** What runs after a request is admitted, with `arg` (the handler, or Express's `next`). */
  type Proceed = (req: McpRequest, res: ServerResponse, arg: unknown) => void
  /** A body being read by {@link run}, kept on its request: where it goes when it has ended. */
  interface Reading {
    res: ServerResponse
    proceed: Proceed
    arg: unknown
    context: ReturnType<typeof socketContext>
    first: Buffer | undefined
    more: Buffer[] | undefined
    size: number
    done: boolean
  }
  const READING = Symbol('mcp-pki-auth body')
  type ReadingRequest = McpRequest & { [READING]: Reading }

  function run(req: McpRequest, res: ServerResponse, proceed: Proceed, arg: unknown): void {
    // Already checked by this McpAuth (mountMcpAuth / middleware in front of protect or
    // protectFetch): go on with what that check established, instead of checking again (the
    // proof's nonce is spent, so a second check would refuse the request as a replay).
    const earlier = (req as unknown as Record<symbol, Verified | undefined>)[VERIFIED]
    if (earlier !== undefined) {
      req.auth = earlier.authInfo
      req.rawBody = earlier.body
      proceed(req, res, arg)
      return
    }
    const context = socketContext(req)
    // No token, or one that is not a live session of ours: refused before a byte of the body is read.
    if (!tokenLooksLive(headerValue(req, 'authorization'), context)) {
      check(req, res, NO_BODY, proceed, arg, context)
      return
    }
    const declared = Number(req.headers['content-length'])
    if (req.readableEnded || (Number.isFinite(declared) && declared > maxBody)) {
      // A body parser ran first, or the body is too large: readBody says which.
      readBody(req, maxBody).then(
        (body) => check(req, res, body, proceed, arg, context),
        (err: unknown) => sendError(res, err),
      )
      return
    }
    // The body is read with listeners shared by every request (the request is `this`) and one
    // record per request, instead of a promise and five closures per request (docs/benchmarks.md).
    ;(req as ReadingRequest)[READING] = { res, proceed, arg, context, first: undefined, more: undefined, size: 0, done: false }
    req.on('data', onBodyData)
    req.on('end', onBodyEnd)
    req.on('error', onBodyError)
  }

  function onBodyData(this: ReadingRequest, chunk: Buffer): void {
    const r = this[READING]
    if (r.done) return
    r.size += chunk.byteLength
    if (r.size > maxBody) {
      r.done = true
      this.resume()
      sendError(r.res, new HttpError(413, `request body larger than ${maxBody} bytes`))
      return
    }
    if (r.first === undefined) r.first = chunk
    else (r.more ??= []).push(chunk)
  }

  function onBodyEnd(this: ReadingRequest): void {
    const r = this[READING]
    if (r.done) return
    r.done = true
    const body = r.first === undefined ? NO_BODY : r.more === undefined ? r.first : Buffer.concat([r.first, ...r.more], r.size)
    check(this, r.res, body, r.proceed, r.arg, r.context)
  }

  function onBodyError(this: ReadingRequest, err: Error): void {
    const r = this[READING]
    if (r.done) return
    r.done = true
    sendError(r.res, err)
  }

  /** Verifies, then admits: with an in-memory nonce store all in the tick the body ended in. */
  function check(req: McpRequest, res: ServerResponse, body: Buffer, proceed: Proceed, arg: unknown, context: ReturnType<typeof socketContext>): void {
    let session: SessionInfo | Promise<SessionInfo>
    try {
      session = verifyNode(req, body, context)
    } catch (err) {
      sendError(res, err)
      return
    }
    if (session instanceof Promise) {
      session.then(
        (s) => admit(req, res, s, body, proceed, arg),
        (err: unknown) => sendError(res, err),
      )
    } else admit(req, res, session, body, proceed, arg)
  }

  function admit(req: McpRequest, res: ServerResponse, session: SessionInfo, body: Buffer, proceed: Proceed, arg: unknown): void {
    const authInfo = authInfoOf(session)
    if (req.method === 'POST') {
      try {
        req.body = JSON.parse(body.toString('utf8'))
        // Tell body-parser (express.json) the body is already parsed.
        ;(req as { _body?: boolean })._body = true
      } catch {
        writeJson(res, 400, {}, PARSE_ERROR)
        return
      }
    }
    req.auth = authInfo
    req.rawBody = body
    if (!checkBinding(req, res, authInfo.clientId)) return
    if (authorization !== undefined && !enforceNodeRequest(req, res, authInfo, { authorizer: authorization, audit, transport })) return
    // The policy may have re-serialized the body (filtered batch): remember what the handler gets.
    ;(req as unknown as Record<symbol, Verified>)[VERIFIED] = { authInfo, body: req.rawBody }
    proceed(req, res, arg)
  }

  async function readWebBody(request: Request): Promise<Uint8Array> {
    const declared = Number(request.headers.get('content-length'))
    if (Number.isFinite(declared) && declared > maxBody) throw new HttpError(413, `request body larger than ${maxBody} bytes`)
    if (request.body === null) return new Uint8Array(0)
    const bytes = new Uint8Array(await request.clone().arrayBuffer())
    if (bytes.byteLength > maxBody) throw new HttpError(413, `request body larger than ${maxBody} bytes`)
    return bytes
  }

  async function verifyWebRequest(request: Request): Promise<McpAuthInfo> {
    const url = new URL(request.url)
    const authorization = request.headers.get('authorization') ?? undefined
    const body = tokenLooksLive(authorization) ? await readWebBody(request) : new Uint8Array(0)
    const session = await service.verifyRequest(
      {
        authorization,
        proof: request.headers.get(PROOF_HEADER) ?? undefined,
        method: request.method,
        target: url.pathname + url.search,
        body,
        mcpSessionId: request.headers.get(SESSION_HEADER) ?? undefined,
      },
      // No socket: the default audience check fails closed (NO_PORT), as for the handshake.
      { transport, localPort: NO_PORT },
    )
    return authInfoOf(session)
  }

  function webError(err: unknown): Response {
    const a = errorAnswer(err, realm)
    return Response.json(a.body, { status: a.status, headers: { ...a.headers, 'cache-control': 'no-store' } })
  }

  async function authEndpoint(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') {
      writeJson(res, 405, { allow: 'POST' }, { error: 'method_not_allowed', error_description: 'the handshake endpoint accepts POST only' })
      return
    }
    let body: Buffer
    try {
      body = await readBody(req, maxHandshake)
    } catch (err) {
      // A body parser ran first: say so, not "too large".
      if (err instanceof HttpError && err.status !== 413) {
        sendError(res, err)
        return
      }
      // The same answer as mcp-pki-server's transport: 413 and the auth_error body, whatever the
      // service's own cap (it may be larger than this endpoint's).
      writeJson(res, 413, { connection: 'close' }, handshakeTooLarge(maxHandshake))
      return
    }
    const reply = await service.handleMessage(body, ctxOf(req))
    writeJson(res, reply.status, reply.headers, reply.body)
  }

  async function fetchAuthEndpoint(request: Request): Promise<Response> {
    if (request.method !== 'POST') {
      return Response.json({ error: 'method_not_allowed', error_description: 'the handshake endpoint accepts POST only' }, { status: 405, headers: { allow: 'POST', 'cache-control': 'no-store' } })
    }
    let body: Buffer
    const declared = Number(request.headers.get('content-length'))
    const tooLarge = (): Response => Response.json(handshakeTooLarge(maxHandshake), { status: 413, headers: { 'cache-control': 'no-store' } })
    if (Number.isFinite(declared) && declared > maxHandshake) return tooLarge()
    try {
      body = Buffer.from(await request.arrayBuffer())
    } catch {
      body = Buffer.alloc(0)
    }
    if (body.byteLength > maxHandshake) return tooLarge()
    // No socket here: without a configured audience the default check cannot tell which server a
    // handshake was meant for, so it fails closed (NO_PORT matches no URL) instead of being skipped.
    const reply = await service.handleMessage(body, { transport, localPort: NO_PORT })
    return Response.json(reply.body, { status: reply.status, headers: { ...reply.headers, 'cache-control': 'no-store' } })
  }

  function handlerFailed(res: ServerResponse, err: unknown): void {
    if (!res.headersSent) writeJson(res, 500, {}, { error: 'internal_error', error_description: 'internal error' })
    else res.end()
    audit?.log('mcp.handler_error', { reason: err instanceof Error ? err.message : String(err) }, 'ERROR')
  }

  /** {@link Proceed} of protect(): `arg` is the handler. */
  function callHandler(req: McpRequest, res: ServerResponse, arg: unknown): void {
    let out: unknown
    try {
      out = (arg as (req: McpRequest, res: ServerResponse) => unknown)(req, res)
    } catch (err) {
      handlerFailed(res, err)
      return
    }
    if (out instanceof Promise) out.catch((err: unknown) => handlerFailed(res, err))
    else if (out !== null && typeof out === 'object' && typeof (out as PromiseLike<unknown>).then === 'function') Promise.resolve(out).catch((err: unknown) => handlerFailed(res, err))
  }

  /** {@link Proceed} of the middleware: `arg` is Express's `next`. */
  function callNext(_req: McpRequest, _res: ServerResponse, arg: unknown): void {
    ;(arg as NextFunction)()
  }

  function protect(handler: (req: McpRequest, res: ServerResponse) => unknown): RequestListener {
    return (req, res) => run(req as McpRequest, res, callHandler, handler)
  }

  return {
    service,
    sessions: bindings,
    bindsSessions: bindSessions,
    sendError,
    authenticate,
    verifyWebRequest,
    protect,
    protectFetch(handler) {
      if (typeof handler !== 'function') throw new TypeError('handler must be a function (request, authInfo) => Response')
      return protect(async (req, res) => {
        const aborter = new AbortController()
        res.once('close', () => {
          if (!res.writableFinished) aborter.abort()
        })
        const response = await handler(toWebRequest(req, req.rawBody ?? Buffer.alloc(0), aborter.signal), req.auth!)
        await writeWebResponse(response, res)
      })
    },
    fetchAuthHandler(request) {
      return fetchAuthEndpoint(request).catch((err: unknown) => webError(err))
    },
    middleware(req, res, next) {
      run(req, res, callNext, next)
    },
    authHandler(req, res) {
      authEndpoint(req, res).catch((err: unknown) => sendError(res, err))
    },
    fetchHandler(handler) {
      return async (request) => {
        let authInfo: McpAuthInfo
        try {
          authInfo = await verifyWebRequest(request)
        } catch (err) {
          return webError(err)
        }
        const fp = authInfo.clientId
        const sid = request.headers.get(SESSION_HEADER)
        if (bindSessions && sid !== null && bindings.ownerOf(sid) !== fp) {
          audit?.log('mcp.session_refused', { client_fingerprint: fp, owner_known: bindings.ownerOf(sid) !== undefined, transport }, 'WARN')
          return Response.json(SESSION_NOT_FOUND, { status: 404 })
        }
        let finish = (r: Response): Response => r
        if (authorization !== undefined) {
          const w = await enforceWebRequest(request, authInfo, { authorizer: authorization, audit, transport })
          if ('answer' in w) return w.answer
          request = w.request
          finish = w.finish
        }
        const response = finish(await handler(request, authInfo))
        if (bindSessions && response.ok) {
          const opened = response.headers.get(SESSION_HEADER)
          if (sid === null && opened !== null) bindings.bind(opened, fp)
          if (sid !== null && request.method === 'DELETE') bindings.forget(sid)
        }
        return response
      }
    },
  }
}

export interface MountOptions {
  /** Default `/mcp`. */
  mcpPath?: string
  /** Default `/auth`. */
  authPath?: string
  /**
   * node:http only: `GET`/`HEAD` here answers `{"status":"ok","server_fingerprint":"…"}` when no
   * listener of yours serves the other paths (default `/health`).
   */
  healthPath?: string
  /**
   * node:http only: the MCP handler for `mcpPath`. With it, the server's existing `request`
   * listeners keep serving every other path (your app's own routes).
   * Without it, the existing listeners are taken to be the MCP transport: they then see ONLY
   * authenticated requests to exactly `mcpPath`, and every other path (`/mcp/`, `/MCP`, `//mcp` …)
   * gets a 404 from this library (fail closed), apart from `authPath` and `healthPath`.
   */
  handler?: (req: McpRequest, res: ServerResponse) => unknown
  /**
   * node:http only, instead of `handler`: a web-standard MCP handler for `mcpPath` (SDK 2.x:
   * `(request, authInfo) => transport.handleRequest(request, { authInfo })`), served through
   * {@link McpAuth.protectFetch}. Routing is that of `handler`.
   */
  fetchHandler?: McpFetchHandler
}

/** The parts of an Express app (or router) that {@link mountMcpAuth} uses. */
export interface ExpressLike {
  use(path: string, handler: (req: McpRequest, res: ServerResponse, next: NextFunction) => void): unknown
  post(path: string, handler: RequestListener): unknown
}

/**
 * The request target's path: everything before the first `?`, compared byte for byte by the caller
 * (no decoding, no case folding, no slash merging). An absolute-form target (`http://h/mcp`) or a
 * `#` keeps the whole text and so never equals a configured path.
 */
function pathOf(url: string | undefined): string {
  const u = url ?? '/'
  const q = u.indexOf('?')
  return q === -1 ? u : u.slice(0, q)
}

/**
 * Mounts the handshake endpoint (`POST /auth`) beside an authenticated MCP endpoint.
 *
 * - Express app or router: adds `POST authPath` and the middleware on `mcpPath` (Express matches it
 *   as a prefix, so it also guards `/mcp/…` and, unless the app routes case-sensitively, `/MCP`);
 *   then register your `/mcp` route as usual, AFTER this call and on the same app (it sees
 *   `req.auth` and a parsed `req.body`). Never route the MCP transport on a catch-all path.
 * - node:http `Server` with `options.handler` (or `options.fetchHandler`): `authPath` → handshake,
 *   exactly `mcpPath` (any query) → authentication → the handler; every other path → the listeners
 *   the server already had (or 404).
 * - node:http `Server` without `options.handler`: the listeners the server already had are the MCP
 *   transport and get only authenticated requests to exactly `mcpPath`; every other path is a 404
 *   (except `authPath` and `GET healthPath`). Add no `request` listener after this call: it would
 *   see every request unauthenticated.
 * @example
 * const server = createServer((req, res) => transport.handleRequest(req, res, (req as McpRequest).body))
 * mountMcpAuth(server, mcpAuth)
 */
export function mountMcpAuth(target: ExpressLike | Server, mcpAuth: McpAuth, options: MountOptions = {}): void {
  const mcpPath = options.mcpPath ?? '/mcp'
  const authPath = options.authPath ?? '/auth'
  const healthPath = options.healthPath ?? '/health'
  for (const [name, p] of [['mcpPath', mcpPath], ['authPath', authPath], ['healthPath', healthPath]] as const) {
    if (typeof p !== 'string' || !p.startsWith('/') || /[?#]/.test(p)) throw new TypeError(`${name} must be a path starting with "/" (no query or fragment)`)
  }
  if (mcpPath === authPath) throw new TypeError('mcpPath and authPath must differ')
  if (typeof (target as ExpressLike).use === 'function' && typeof (target as ExpressLike).post === 'function') {
    const app = target as ExpressLike
    app.post(authPath, mcpAuth.authHandler)
    app.use(mcpPath, mcpAuth.middleware)
    return
  }
  const server = target as Server
  if (typeof server.on !== 'function' || typeof server.listeners !== 'function') throw new TypeError('target must be an Express app/router or a node:http Server')
  const previous = server.listeners('request') as RequestListener[]
  server.removeAllListeners('request')
  const notFound = (res: ServerResponse): void => writeJson(res, 404, {}, { error: 'not_found', error_description: 'not found' })
  const callPrevious: RequestListener = (req, res) => {
    if (previous.length === 0) {
      notFound(res)
      return
    }
    for (const l of previous) void l.call(server, req, res)
  }
  if (options.handler !== undefined && options.fetchHandler !== undefined) throw new TypeError('give handler or fetchHandler, not both')
  const handler = options.handler ?? options.fetchHandler
  const protectedHandler =
    options.fetchHandler !== undefined ? mcpAuth.protectFetch(options.fetchHandler) : mcpAuth.protect(options.handler ?? ((req, res) => callPrevious(req, res)))
  // Only with an explicit MCP handler may the previous listeners see other paths: without one they
  // ARE the MCP transport (which ignores the path), so nothing unauthenticated may reach them.
  const previousServeOtherPaths = handler !== undefined && previous.length > 0
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const p = pathOf(req.url)
    if (p === authPath) mcpAuth.authHandler(req, res)
    else if (p === mcpPath) protectedHandler(req, res)
    else if (previousServeOtherPaths) callPrevious(req, res)
    else if (p === healthPath && (req.method === 'GET' || req.method === 'HEAD')) writeJson(res, 200, {}, { status: 'ok', server_fingerprint: mcpAuth.service.fingerprint })
    else notFound(res)
  })
}
