/**
 * The MCP gateway: mutual authentication in front of an MCP server you did not write.
 *
 * Serves the handshake and an authenticated MCP endpoint and forwards each authenticated request
 * to the upstream:
 * - HTTP upstream (`--upstream http://127.0.0.1:3000/mcp`): a streaming reverse proxy. The caller's
 *   identity travels in `X-MCP-PKI-Fingerprint`, `X-MCP-PKI-Role` and `X-MCP-PKI-Org`, set by the
 *   gateway; any client header that names `X-MCP-PKI-*` in any case or with `_` for `-`
 *   (`x_mcp_pki_role`) is removed first, so they cannot be forged, not even for CGI-style upstreams.
 *   Responses (JSON or SSE) stream back as they arrive.
 * - stdio upstream (`--upstream-command "node server.js"`): each authenticated MCP session gets
 *   its own upstream process, started on `initialize` and stopped when the session ends (DELETE,
 *   idle timeout, or the process exits). The caller's identity is in the process environment
 *   (`MCP_PKI_FINGERPRINT`, `MCP_PKI_ROLE`, `MCP_PKI_ORG`); messages are relayed unchanged.
 * MCP sessions are bound to the key that opened them (see server.ts), in both modes.
 * @module
 */
import { randomUUID } from 'node:crypto'
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type RequestListener, type ServerResponse } from 'node:http'
import https from 'node:https'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { answerReady } from '../transport/http-server.js'
import { callerOf, type McpAuth, type McpRequest } from './server.js'
import { bridgeTransports, type McpTransport } from './bridge.js'
import { createSessionIdSealer, type SessionIdSealer } from './session-id-seal.js'

export const FINGERPRINT_HEADER = 'x-mcp-pki-fingerprint'
export const ROLE_HEADER = 'x-mcp-pki-role'
export const ORG_HEADER = 'x-mcp-pki-org'

export type Upstream = { url: string | URL } | { command: string; args?: string[]; cwd?: string; env?: Record<string, string> }

export interface GatewayOptions {
  mcpAuth: McpAuth
  upstream: Upstream
  /** Default `/mcp`. */
  mcpPath?: string
  /** Default `/auth`. */
  authPath?: string
  /** Default `/health`. */
  healthPath?: string
  /** stdio upstream: most concurrent sessions (processes), default 32; more → 503. */
  maxSessions?: number
  /** stdio upstream: a session with no request for this long is closed (ms, default 30 min). */
  idleTimeoutMs?: number
  /**
   * Root key (32 bytes or more) for stateless MCP session bindings: the `Mcp-Session-Id` the client
   * gets seals the upstream's id and the caller's fingerprint (session-id-seal.ts), so a session
   * keeps working after a gateway restart and on any gateway holding the same key. `mcpAuth` must
   * then be created with `bindSessions: false` (the seal is the binding). Without it, bindings
   * live in `mcpAuth`'s memory.
   */
  sessionIdKey?: Uint8Array
  /**
   * HTTP upstream: an idle upstream connection is closed after this many ms (default 4,000; Node
   * servers close theirs after 5 s), or one second before the upstream's announced
   * `Keep-Alive: timeout`, whichever is sooner.
   */
  upstreamIdleTimeoutMs?: number
  /** Diagnostics (stderr in the CLI). */
  log?: (line: string) => void
  /** Default `/ready` (503 while `readiness` says not ready). */
  readyPath?: string
  /** What `/ready` reports (default: always ready). */
  readiness?: () => Promise<{ ready: boolean; checks: Record<string, string> }>
  /** Metrics hook (addGatewayMetrics(metrics, …).observer); default none. */
  observer?: GatewayObserver
}

/**
 * Sees what the gateway forwards (for metrics). Called synchronously; must be cheap and not throw.
 */
export interface GatewayObserver {
  /**
   * One upstream exchange: its HTTP status (undefined = no answer) and the seconds until the
   * response head (HTTP upstream) or until the response was complete (stdio upstream).
   */
  upstream(status: number | undefined, seconds: number): void
  /** An authenticated MCP request about to be forwarded; may listen on `res` for its answer. */
  forwarding(req: McpRequest, res: ServerResponse): void
}

export interface Gateway {
  /** The node:http request listener: handshake, health, authenticated MCP. */
  handler: RequestListener
  /** stdio upstream: live sessions. */
  readonly sessions: number
  close(): Promise<void>
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'content-length'])
const NOT_FORWARDED = new Set(['authorization', 'mcp-pki-proof', 'cookie'])
/** Every identity header the gateway sets starts with this; no client header that looks like one passes. */
const IDENTITY_PREFIX = 'x-mcp-pki-'

/**
 * A header name as CGI/WSGI/Rack (and some proxies) may see it: case and `-`/`_` do not matter
 * there (`X_MCP_PKI_Role` and `x-mcp-pki-role` both become `HTTP_X_MCP_PKI_ROLE`). Any other
 * punctuation a header name may hold (`.`, `~` …) is read as `-` too, to fail closed.
 */
function headerKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '-')
}

/**
 * The request headers the upstream gets: no hop-by-hop, no credentials, and no client-made header
 * whose name, lowercased with `_` (or other punctuation) read as `-`, starts with `x-mcp-pki-`; then the gateway's own
 * identity headers.
 */
export function upstreamHeaders(incoming: IncomingHttpHeaders, req: McpRequest): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(incoming)) {
    const n = name.toLowerCase()
    const key = headerKey(n)
    if (value === undefined || HOP_BY_HOP.has(key) || NOT_FORWARDED.has(key) || key.startsWith(IDENTITY_PREFIX)) continue
    out[n] = value
  }
  const caller = callerOf({ authInfo: req.auth })
  if (caller === undefined) throw new Error('upstreamHeaders: request is not authenticated')
  out[FINGERPRINT_HEADER] = caller.fingerprint
  if (caller.role !== undefined) out[ROLE_HEADER] = headerSafe(caller.role)
  if (caller.org !== undefined) out[ORG_HEADER] = headerSafe(caller.org)
  return out
}

/** Metadata is operator-written, but never let it break a header. */
function headerSafe(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?').slice(0, 256)
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.end()
    return
  }
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) })
  res.end(text)
}

function jsonRpcError(code: number, message: string): unknown {
  return { jsonrpc: '2.0', error: { code, message }, id: null }
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/'
  const q = u.indexOf('?')
  return q === -1 ? u : u.slice(0, q)
}

/** Splits a command line into words: whitespace separates, single/double quotes group, `\` escapes. */
export function splitCommand(line: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let quote: '"' | "'" | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line[++i]
      else word += c
    } else if (c === '"' || c === "'") {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i]
      inWord = true
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (quote !== undefined) throw new TypeError('unterminated quote in command')
  if (inWord) words.push(word)
  return words
}

/** Errors of a request sent on a reused keep-alive connection that the upstream was closing. */
const STALE_CONNECTION_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_DESTROYED'])

function httpForwarder(upstream: URL, o: { idleTimeoutMs: number; log: (line: string) => void; observer: GatewayObserver | undefined }): (req: McpRequest, res: ServerResponse) => void {
  // `timeout` closes idle pooled sockets; with it set, Node also honours the upstream's
  // `Keep-Alive: timeout=N` hint (closing one second before it).
  const agentOptions = { keepAlive: true, maxSockets: 256, timeout: o.idleTimeoutMs }
  const agent = upstream.protocol === 'https:' ? new https.Agent(agentOptions) : new http.Agent(agentOptions)
  const request = upstream.protocol === 'https:' ? https.request : http.request
  return (req, res) => {
    const target = new URL(upstream.href)
    const q = (req.url ?? '').indexOf('?')
    if (q !== -1) target.search = (req.url ?? '').slice(q)
    const body = req.rawBody ?? Buffer.alloc(0)
    const headers = upstreamHeaders(req.headers, req)
    if (body.byteLength > 0) headers['content-length'] = String(body.byteLength)
    let current: http.ClientRequest | undefined
    const started = o.observer === undefined ? 0 : performance.now()
    res.on('close', () => {
      if (!res.writableFinished) current?.destroy()
    })
    const send = (fresh: boolean): void => {
      // The retry goes on a connection of its own (agent: false), never on another pooled one.
      const up = request(target, { method: req.method ?? 'GET', headers, agent: fresh ? false : agent })
      current = up
      let answered = false
      up.on('response', (upRes) => {
        answered = true
        o.observer?.upstream(upRes.statusCode, (performance.now() - started) / 1000)
        const out: OutgoingHttpHeaders = {}
        for (const [name, value] of Object.entries(upRes.headers)) {
          if (value !== undefined && !HOP_BY_HOP.has(name.toLowerCase())) out[name] = value
        }
        if (upRes.headers['content-length'] !== undefined) out['content-length'] = upRes.headers['content-length']
        res.writeHead(upRes.statusCode ?? 502, out)
        res.flushHeaders()
        upRes.pipe(res)
        upRes.on('error', () => res.destroy())
      })
      up.on('error', (err: NodeJS.ErrnoException) => {
        // A reused connection the upstream closed before answering: nothing came back, so the
        // upstream did not take the request; send it once more on a fresh connection.
        if (!fresh && !answered && up.reusedSocket && STALE_CONNECTION_CODES.has(err.code ?? '') && !res.destroyed) {
          send(true)
          return
        }
        o.observer?.upstream(undefined, (performance.now() - started) / 1000)
        o.log(`upstream ${target.origin}${target.pathname}: ${err.code ?? err.message}`)
        if (!res.headersSent) sendJson(res, 502, jsonRpcError(-32603, 'mcp-pki-gateway: the upstream MCP server is not reachable'))
        else res.destroy()
      })
      up.end(body)
    }
    send(false)
  }
}

const SESSION_HEADER = 'mcp-session-id'

/** Replaces the `Mcp-Session-Id` a response is about to carry by `replace(id)` (headers object, pairs, or set on `res`). */
function rewriteResponseSessionId(res: ServerResponse, replace: (id: string) => string): void {
  const original = res.writeHead
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    res.writeHead = original
    const at = typeof args[1] === 'string' ? 2 : 1
    const headers = args[at]
    try {
      if (Array.isArray(headers)) {
        const pairs = headers.length > 0 && Array.isArray(headers[0])
        for (let i = 0; i < headers.length; i += pairs ? 1 : 2) {
          if (pairs && String((headers[i] as unknown[])[0]).toLowerCase() === SESSION_HEADER) (headers[i] as unknown[])[1] = replace(String((headers[i] as unknown[])[1]))
          if (!pairs && String(headers[i]).toLowerCase() === SESSION_HEADER) headers[i + 1] = replace(String(headers[i + 1]))
        }
      } else if (headers !== null && typeof headers === 'object') {
        const h = headers as Record<string, unknown>
        for (const k of Object.keys(h)) if (k.toLowerCase() === SESSION_HEADER && h[k] !== undefined) h[k] = replace(String(h[k]))
      }
      const set = this.getHeader(SESSION_HEADER)
      if (set !== undefined) this.setHeader(SESSION_HEADER, replace(String(Array.isArray(set) ? set[0] : set)))
    } catch {
      // An id that cannot be sealed is never passed on: fail closed.
      this.destroy()
      return this
    }
    return (original as (...a: unknown[]) => ServerResponse).apply(this, args)
  } as typeof res.writeHead
}

/**
 * Wraps a forwarder with stateless session bindings: the client's sealed `Mcp-Session-Id` is opened
 * (and must have been sealed for the caller's key, else 404 as for an unknown session) and the
 * upstream sees its own id; the id the upstream answers with is sealed for the caller.
 */
function sealSessionIds(sealer: SessionIdSealer, forward: (req: McpRequest, res: ServerResponse) => unknown, log: (line: string) => void) {
  return (req: McpRequest, res: ServerResponse): unknown => {
    const fingerprint = callerOf({ authInfo: req.auth })!.fingerprint
    const sent = req.headers[SESSION_HEADER]
    if (sent !== undefined) {
      const upstreamId = typeof sent === 'string' ? sealer.open(sent, fingerprint) : undefined
      if (upstreamId === undefined) {
        sendJson(res, 404, jsonRpcError(-32001, 'Session not found'))
        return undefined
      }
      req.headers[SESSION_HEADER] = upstreamId
      // Adapters that build a web Request (the SDK's, through @hono/node-server) read rawHeaders.
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === SESSION_HEADER) req.rawHeaders[i + 1] = upstreamId
    }
    rewriteResponseSessionId(res, (id) => {
      try {
        return sealer.seal(id, fingerprint)
      } catch (err) {
        log(`the upstream answered with an unusable session id: ${(err as Error).message}`)
        throw err
      }
    })
    return forward(req, res)
  }
}

interface StdioSession {
  transport: StreamableHTTPServerTransport
  close(): Promise<void>
  lastUsed: number
}

function stdioForwarder(
  upstream: { command: string; args?: string[]; cwd?: string; env?: Record<string, string> },
  o: { maxSessions: number; idleTimeoutMs: number; log: (line: string) => void; observer: GatewayObserver | undefined },
): { handle(req: McpRequest, res: ServerResponse): Promise<void>; readonly size: number; close(): Promise<void> } {
  const sessions = new Map<string, StdioSession>()
  let starting = 0
  const sweep = setInterval(
    () => {
      const now = Date.now()
      for (const [id, s] of sessions) {
        if (now - s.lastUsed > o.idleTimeoutMs) {
          o.log(`session ${id.slice(0, 8)}… idle; stopping its upstream process`)
          void s.close()
        }
      }
    },
    Math.min(60_000, Math.max(1000, o.idleTimeoutMs / 4)),
  )
  sweep.unref()

  function baseEnv(): Record<string, string> {
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('MCP_PKI_')) env[k] = v
    return { ...env, ...upstream.env }
  }

  async function open(req: McpRequest, res: ServerResponse): Promise<void> {
    if (sessions.size + starting >= o.maxSessions) {
      sendJson(res, 503, jsonRpcError(-32000, 'mcp-pki-gateway: too many sessions; try again later'))
      return
    }
    const caller = callerOf({ authInfo: req.auth })!
    const env = { ...baseEnv(), MCP_PKI_FINGERPRINT: caller.fingerprint, ...(caller.role ? { MCP_PKI_ROLE: caller.role } : {}), ...(caller.org ? { MCP_PKI_ORG: caller.org } : {}) }
    starting++
    let entry: StdioSession | undefined
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => {
        if (entry !== undefined) sessions.set(id, entry)
      },
    })
    const child = new StdioClientTransport({ command: upstream.command, args: upstream.args ?? [], env, stderr: 'inherit', ...(upstream.cwd ? { cwd: upstream.cwd } : {}) })
    try {
      const bridge = await bridgeTransports(transport as unknown as McpTransport, child as unknown as McpTransport, { name: 'mcp-pki-gateway', log: o.log })
      entry = {
        transport,
        lastUsed: Date.now(),
        close: () => bridge.close(),
      }
      void bridge.closed.then(() => {
        if (transport.sessionId !== undefined) sessions.delete(transport.sessionId)
      })
    } catch (err) {
      o.log(`cannot start the upstream command: ${err instanceof Error ? err.message : String(err)}`)
      sendJson(res, 502, jsonRpcError(-32603, 'mcp-pki-gateway: the upstream MCP server could not be started'))
      return
    } finally {
      starting--
    }
    await transport.handleRequest(req, res, req.body)
    if (transport.sessionId === undefined) await entry.close() // initialize failed: no session, no process
  }

  return {
    get size() {
      return sessions.size
    },
    async handle(req, res) {
      const observer = o.observer
      if (observer !== undefined) {
        const started = performance.now()
        res.once('finish', () => observer.upstream(res.statusCode, (performance.now() - started) / 1000))
      }
      const sid = req.headers['mcp-session-id']
      if (typeof sid === 'string') {
        const s = sessions.get(sid)
        if (s === undefined) {
          sendJson(res, 404, jsonRpcError(-32001, 'Session not found'))
          return
        }
        s.lastUsed = Date.now()
        await s.transport.handleRequest(req, res, req.body)
        return
      }
      if (req.method !== 'POST' || !isInitializeRequest(req.body)) {
        sendJson(res, 400, jsonRpcError(-32000, 'Bad Request: no valid session; send initialize first'))
        return
      }
      await open(req, res)
    },
    async close() {
      clearInterval(sweep)
      await Promise.allSettled([...sessions.values()].map((s) => s.close()))
      sessions.clear()
    },
  }
}

/**
 * Builds the gateway's request listener.
 * @example
 * const gw = createMcpGateway({ mcpAuth, upstream: { url: 'http://127.0.0.1:3000/mcp' } })
 * http.createServer(gw.handler).listen(8443)
 */
export function createMcpGateway(options: GatewayOptions): Gateway {
  const { mcpAuth } = options
  const mcpPath = options.mcpPath ?? '/mcp'
  const authPath = options.authPath ?? '/auth'
  const healthPath = options.healthPath ?? '/health'
  const readyPath = options.readyPath ?? '/ready'
  const observer = options.observer
  const log = options.log ?? (() => {})
  let forward: (req: McpRequest, res: ServerResponse) => unknown
  let stdio: ReturnType<typeof stdioForwarder> | undefined
  if ('url' in options.upstream) {
    const url = new URL(String(options.upstream.url))
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('upstream url must be http:// or https://')
    forward = httpForwarder(url, { idleTimeoutMs: options.upstreamIdleTimeoutMs ?? 4_000, log, observer })
  } else {
    if (typeof options.upstream.command !== 'string' || options.upstream.command === '') throw new TypeError('upstream command is required')
    stdio = stdioForwarder(options.upstream, { maxSessions: options.maxSessions ?? 32, idleTimeoutMs: options.idleTimeoutMs ?? 30 * 60_000, log, observer })
    forward = stdio.handle
  }
  if (options.sessionIdKey !== undefined) {
    if (mcpAuth.bindsSessions !== false) throw new TypeError('with sessionIdKey, create mcpAuth with bindSessions: false (the sealed id is the binding)')
    forward = sealSessionIds(createSessionIdSealer(options.sessionIdKey), forward, log)
  }
  const observed = observer === undefined ? forward : (req: McpRequest, res: ServerResponse) => {
    observer.forwarding(req, res)
    return forward(req, res)
  }
  const protectedMcp = mcpAuth.protect(observed)
  const handler: RequestListener = (req, res) => {
    const p = pathOf(req.url)
    if (p === mcpPath) protectedMcp(req, res)
    else if (p === authPath) mcpAuth.authHandler(req, res)
    else if (p === healthPath && (req.method === 'GET' || req.method === 'HEAD')) sendJson(res, 200, { status: 'ok', server_fingerprint: mcpAuth.service.fingerprint })
    else if (p === readyPath) answerReady(req, res, options.readiness)
    else sendJson(res, 404, { error: 'not_found', error_description: `this gateway serves ${authPath} and ${mcpPath}` })
  }
  return {
    handler,
    get sessions() {
      return stdio?.size ?? 0
    },
    close: async () => {
      await stdio?.close()
    },
  }
}
