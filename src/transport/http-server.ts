/**
 * The HTTP side of the server: a request handler for `POST /auth` and `GET /health` that works with
 * plain node:http / node:https and as Express middleware, and a ready-made server around it with
 * limits on every input: body size (413, enforced while streaming), content type (415), method
 * (405), header and request timeouts (slow senders are cut off), connection count, graceful close.
 * @module
 */
import { createRequire } from 'node:module'
import * as http from 'node:http'
import * as https from 'node:https'
import type { AddressInfo } from 'node:net'
import { PROTOCOL_VERSION } from '../protocol/constants.js'
import type { AuthReply, AuthService } from './auth-service.js'
import { hardenHttpServer, httpServerOptions } from './connection-guard.js'

export { answerAndClose, guardConnections, type ConnectionGuardOptions } from './connection-guard.js'

export type NextFunction = (err?: unknown) => void
export type AuthHttpHandler = (req: http.IncomingMessage, res: http.ServerResponse, next?: NextFunction) => void

export interface AuthHttpHandlerOptions {
  /** Handshake endpoint (default `/auth`). */
  path?: string
  /** Health endpoint (default `/health`); null = none. */
  healthPath?: string | null
  /** Readiness endpoint (default `/ready` when `readiness` is given, else none); null = none. */
  readyPath?: string | null
  /** What `/ready` reports: 200 when ready, else 503. */
  readiness?: () => Promise<{ ready: boolean; checks: Record<string, string> }>
  /** Largest accepted body in bytes (default 65,536). */
  maxBodySize?: number
  /** Called after every handshake reply (e.g. to hand the session to the application). */
  onReply?: (reply: AuthReply, req: http.IncomingMessage) => void
}

export const DEFAULT_MAX_BODY_SIZE = 64 * 1024

const require = createRequire(import.meta.url)
/** The package version (src/ and dist/ both sit two levels below package.json). */
export const PACKAGE_VERSION: string = (() => {
  try {
    return (require('../../package.json') as { version: string }).version
  } catch {
    return 'unknown'
  }
})()

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }
const NO_HEADERS: Record<string, string> = {}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = NO_HEADERS): void {
  if (res.headersSent) {
    res.end()
    return
  }
  // A string body: node:http then writes head and body in one write() (a Buffer body costs a writev).
  const text = JSON.stringify(body)
  const all: Record<string, string> = {
    'content-type': JSON_HEADERS['content-type'],
    'cache-control': JSON_HEADERS['cache-control'],
    'x-content-type-options': JSON_HEADERS['x-content-type-options'],
    'content-length': String(Buffer.byteLength(text)),
  }
  if (headers !== NO_HEADERS) Object.assign(all, headers)
  res.writeHead(status, all)
  res.end(text)
}

function wireError(code: string, message: string): unknown {
  return { type: 'auth_error', version: PROTOCOL_VERSION, success: false, error: { code, message } }
}

/** The path of a request target, without the query. */
function pathOf(url: string | undefined): string {
  const u = url ?? '/'
  const q = u.indexOf('?')
  return q === -1 ? u : u.slice(0, q)
}

function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false
  if (value === 'application/json') return true
  const type = value.split(';', 1)[0]!.trim().toLowerCase()
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'))
}

/**
 * Reads the request body up to `max` bytes. Resolves the bytes, or `undefined` after it has sent
 * 413 itself (as soon as the cap is passed: nothing more is buffered, the rest is discarded and the
 * connection closed).
 */
function readBody(req: http.IncomingMessage, res: http.ServerResponse, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): void => {
      sendJson(res, 413, wireError('payload_too_large', `request body is larger than ${max} bytes`), { connection: 'close' })
      // Discard what is still coming without keeping it; cut the connection if it keeps coming.
      let discarded = 0
      req.removeAllListeners('data')
      req.on('data', (c: Buffer) => {
        discarded += c.length
        if (discarded > max * 4) req.socket.destroy()
      })
      const timer = setTimeout(() => req.socket.destroy(), 2000)
      timer.unref()
      req.on('end', () => clearTimeout(timer))
      req.resume()
      resolve(undefined)
    }
    const declared = Number(req.headers['content-length'])
    if (Number.isFinite(declared) && declared > max) {
      tooLarge()
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > max) {
        chunks.length = 0
        tooLarge()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (size <= max) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    })
    req.on('error', reject)
  })
}

/**
 * A handler for `POST <path>` (handshake messages 1 and 3) and `GET <healthPath>`. Other paths:
 * `next()` when given (Express), else 404. With Express, mount it before any body parser, or after
 * `express.json()` (an already-parsed `req.body` is used as is).
 */
export function createAuthHttpHandler(service: AuthService, opts: AuthHttpHandlerOptions = {}): AuthHttpHandler {
  const authPath = opts.path ?? '/auth'
  const healthPath = opts.healthPath === undefined ? '/health' : opts.healthPath
  const readyPath = opts.readyPath === undefined ? (opts.readiness === undefined ? null : '/ready') : opts.readyPath
  const maxBody = opts.maxBodySize ?? DEFAULT_MAX_BODY_SIZE
  if (!Number.isSafeInteger(maxBody) || maxBody < 1) throw new RangeError('maxBodySize must be a positive integer')

  const handleAuth = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    if (req.method !== 'POST') {
      sendJson(res, 405, wireError('invalid_message', `use POST for ${authPath}`), { allow: 'POST' })
      return
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      sendJson(res, 415, wireError('invalid_message', 'content-type must be application/json'))
      return
    }
    const ctx = { remote: req.socket.remoteAddress, transport: isEncrypted(req) ? 'https' : 'http', localPort: req.socket.localPort, localAddress: req.socket.localAddress }
    let input: unknown
    const parsedBody = (req as { body?: unknown }).body
    if (parsedBody !== undefined && req.readableEnded) {
      input = parsedBody
    } else {
      const body = await readBody(req, res, maxBody)
      if (body === undefined) return
      input = body
    }
    const reply = await service.handleMessage(input, ctx)
    opts.onReply?.(reply, req)
    sendJson(res, reply.status, reply.body, reply.headers)
  }

  return (req, res, next) => {
    const path = pathOf(req.url)
    if (path === authPath) {
      handleAuth(req, res).catch(() => {
        if (!res.headersSent) sendJson(res, 500, wireError('internal_error', 'internal error'))
        else res.destroy()
      })
      return
    }
    if (healthPath !== null && path === healthPath) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJson(res, 405, { status: 'error', message: `use GET for ${healthPath}` }, { allow: 'GET, HEAD' })
        return
      }
      sendJson(res, 200, { status: 'ok', fingerprint: service.fingerprint, protocol: PROTOCOL_VERSION, version: PACKAGE_VERSION })
      return
    }
    if (readyPath !== null && path === readyPath) {
      answerReady(req, res, opts.readiness)
      return
    }
    if (next) {
      next()
      return
    }
    sendJson(res, 404, { status: 'error', message: `no such endpoint; the handshake is POST ${authPath}` })
  }
}

/**
 * `GET /ready`: 200 `{"status":"ready"}` or 503 `{"status":"not_ready"}` with each check's state.
 * Shared with the MCP gateway.
 */
export function answerReady(req: http.IncomingMessage, res: http.ServerResponse, readiness: AuthHttpHandlerOptions['readiness']): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJson(res, 405, { status: 'error', message: 'use GET for the readiness endpoint' }, { allow: 'GET, HEAD' })
    return
  }
  if (readiness === undefined) {
    sendJson(res, 200, { status: 'ready', checks: {} })
    return
  }
  readiness().then(
    (r) => sendJson(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', checks: r.checks }, r.ready ? NO_HEADERS : { 'retry-after': '1' }),
    () => sendJson(res, 503, { status: 'not_ready', checks: {} }, { 'retry-after': '1' }),
  )
}

function isEncrypted(req: http.IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true
}

export interface AuthHttpServerOptions extends AuthHttpHandlerOptions {
  service: AuthService
  /** https options (tlsServerOptions); absent = plain http. */
  tls?: https.ServerOptions
  host?: string
  port?: number
  /** Concurrent connections (default 100); when full, the connection idle the longest gives way. */
  maxConnections?: number
  /** Connections one address may hold (default a quarter of maxConnections, at least 2). */
  perAddress?: number
  /** Seconds a whole request may take to arrive (slow senders are cut off; default 30). */
  timeoutSec?: number
  /** Requests on other paths (default: 404 JSON). */
  fallback?: (req: http.IncomingMessage, res: http.ServerResponse) => void
}

export interface AuthHttpServer {
  readonly server: http.Server
  readonly secure: boolean
  /** Starts listening; resolves the bound address (port 0 = a free port). */
  listen(): Promise<AddressInfo>
  /** `http(s)://host:port<path>` of the bound server. */
  url(path?: string): string
  /** Stops accepting, lets requests in flight finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>
}

/** A node:http or node:https server serving the handshake with limits on every input. */
export function createAuthHttpServer(o: AuthHttpServerOptions): AuthHttpServer {
  const timeoutSec = o.timeoutSec ?? 30
  const handler = createAuthHttpHandler(o.service, o)
  const serverOptions = httpServerOptions(timeoutSec)
  const listener = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    handler(req, res, o.fallback ? () => o.fallback!(req, res) : undefined)
  }
  const server: http.Server = o.tls ? https.createServer({ ...serverOptions, ...o.tls }, listener) : http.createServer(serverOptions, listener)
  hardenHttpServer(server, { timeoutSec, maxConnections: o.maxConnections ?? 100, ...(o.perAddress === undefined ? {} : { perAddress: o.perAddress }) })
  const secure = o.tls !== undefined
  let bound: AddressInfo | undefined

  return {
    server,
    secure,
    listen() {
      return new Promise<AddressInfo>((resolve, reject) => {
        const onError = (err: Error): void => reject(err)
        server.once('error', onError)
        server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => {
          server.off('error', onError)
          bound = server.address() as AddressInfo
          resolve(bound)
        })
      })
    },
    url(path = '/auth') {
      if (bound === undefined) throw new Error('server is not listening')
      const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
      return `${secure ? 'https' : 'http'}://${host}:${bound.port}${path}`
    },
    close(graceMs = 5_000) {
      return new Promise<void>((resolve) => {
        if (!server.listening) {
          resolve()
          return
        }
        const timer = setTimeout(() => server.closeAllConnections(), graceMs)
        timer.unref()
        server.close(() => {
          clearTimeout(timer)
          resolve()
        })
        server.closeIdleConnections()
      })
    },
  }
}
