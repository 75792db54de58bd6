/**
 * The WebSocket side of the server (`ws` in noServer mode, mounted on an existing node:http(s)
 * server at `/ws`). Handshake messages are JSON text frames, the same as the HTTP bodies; once
 * message 4 has been sent the connection is authenticated for as long as its session is valid:
 * the application takes over the socket in `onAuthenticated`.
 *
 * Limits: a handshake must finish within `handshakeTimeoutMs` or the socket is closed; binary
 * frames, frames over `maxMessageSize` and invalid JSON get an `auth_error` frame with the code,
 * and the connection is closed after `maxErrors` of them; frames over twice the limit are cut by
 * `ws` itself (close code 1009). An authenticated connection is closed (after an `auth_error`
 * frame `session_expired` / `session_revoked`) when its session expires or its key is removed
 * from the allowlist, checked every `sessionCheckMs`.
 * @module
 */
import type * as http from 'node:http'
import type { Duplex } from 'node:stream'
import type { WebSocket, WebSocketServer, RawData } from 'ws'
import { loadWs } from '../internal/load-on-use.js'
import { toWireError } from '../errors.js'
import type { HandshakeResult } from '../handshake/server-handshake.js'
import { PROTOCOL_VERSION } from '../protocol/constants.js'
import type { AuthService } from './auth-service.js'
import { answerAndClose } from './connection-guard.js'

export interface AuthenticatedConnection {
  readonly clientFingerprint: string
  readonly sessionId: string
  readonly expiresAt: number
  readonly metadata: Readonly<Record<string, unknown>>
  readonly remote: string | undefined
  readonly result: HandshakeResult
}

export interface AuthWebSocketOptions {
  service: AuthService
  /** Default `/ws`. */
  path?: string
  /** Largest handshake frame in bytes (default 65,536). */
  maxMessageSize?: number
  /** Milliseconds a connection has to complete the handshake (default 10,000). */
  handshakeTimeoutMs?: number
  /** Bad frames tolerated before the connection is closed (default 3). */
  maxErrors?: number
  /** Concurrent WebSocket connections (default 100); more get HTTP 503 at upgrade. */
  maxConnections?: number
  /** How often authenticated sessions are re-checked (expiry, allowlist), ms (default 1,000). */
  sessionCheckMs?: number
  /** The connection is authenticated; attach application listeners here. */
  onAuthenticated?: (ws: WebSocket, connection: AuthenticatedConnection, req: http.IncomingMessage) => void
}

export interface AuthWebSocketServer {
  readonly wss: WebSocketServer
  /** Live authenticated connections. */
  readonly authenticatedConnections: ReadonlyMap<WebSocket, AuthenticatedConnection>
  /** Handles an upgrade request; false (and nothing done) when the path is not ours. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean
  /** Listens for upgrades on `server`; other paths are refused with 404. Returns a detach function. */
  attach(server: http.Server): () => void
  /** Closes every connection (1001) and the server. */
  close(): Promise<void>
}

function errorFrame(code: string, message: string): string {
  return JSON.stringify({ type: 'auth_error', version: PROTOCOL_VERSION, success: false, error: { code, message } })
}

function pathOf(url: string | undefined): string {
  const u = url ?? '/'
  const q = u.indexOf('?')
  return q === -1 ? u : u.slice(0, q)
}

export function createAuthWebSocketServer(o: AuthWebSocketOptions): AuthWebSocketServer {
  const path = o.path ?? '/ws'
  const maxMessage = o.maxMessageSize ?? 64 * 1024
  const handshakeTimeoutMs = o.handshakeTimeoutMs ?? 10_000
  const maxErrors = o.maxErrors ?? 3
  const maxConnections = o.maxConnections ?? 100
  const service = o.service
  const { WebSocketServer, WebSocket: { OPEN } } = loadWs()
  const wss = new WebSocketServer({ noServer: true, maxPayload: maxMessage * 2, perMessageDeflate: false, clientTracking: true })
  const authenticated = new Map<WebSocket, AuthenticatedConnection>()

  const checkTimer = setInterval(() => {
    for (const [ws, conn] of authenticated) {
      try {
        service.verifier.verifyToken(conn.result.message.session_token)
      } catch (err) {
        const wire = toWireError(err)
        authenticated.delete(ws)
        if (ws.readyState === OPEN) ws.send(errorFrame(wire.code, wire.message))
        ws.close(1008, wire.code)
      }
    }
  }, o.sessionCheckMs ?? 1_000)
  checkTimer.unref()

  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const remote = req.socket.remoteAddress
    const ctx = { remote, transport: (req.socket as { encrypted?: boolean }).encrypted === true ? 'wss' : 'ws', localPort: req.socket.localPort, localAddress: req.socket.localAddress }
    let errors = 0
    let busy = false
    const queue: RawData[] = []
    const timer = setTimeout(() => {
      if (ws.readyState === OPEN) ws.send(errorFrame('challenge_expired', `handshake not completed within ${handshakeTimeoutMs} ms`))
      ws.close(1008, 'handshake timeout')
    }, handshakeTimeoutMs)
    timer.unref()

    const bad = (code: string, message: string): void => {
      errors++
      if (ws.readyState === OPEN) ws.send(errorFrame(code, message))
      if (errors >= maxErrors) ws.close(1008, 'too many errors')
    }

    const handle = async (data: RawData): Promise<void> => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
      const reply = await service.handleMessage(buf, ctx)
      if (ws.readyState !== OPEN) return
      ws.send(JSON.stringify(reply.body))
      if (reply.error) {
        errors++
        if (errors >= maxErrors) ws.close(1008, 'too many errors')
        return
      }
      if (reply.result) {
        clearTimeout(timer)
        ws.off('message', onMessage)
        const r = reply.result
        const conn: AuthenticatedConnection = {
          clientFingerprint: r.clientFingerprint,
          sessionId: r.sessionId,
          expiresAt: r.expiresAt,
          metadata: r.entry.metadata,
          remote,
          result: r,
        }
        authenticated.set(ws, conn)
        o.onAuthenticated?.(ws, conn, req)
      }
    }

    const pump = (): void => {
      if (busy) return
      const next = queue.shift()
      if (next === undefined) return
      busy = true
      handle(next)
        .catch(() => bad('internal_error', 'internal error'))
        .finally(() => {
          busy = false
          if (!authenticated.has(ws)) pump()
        })
    }

    const onMessage = (data: RawData, isBinary: boolean): void => {
      if (isBinary) {
        bad('invalid_message', 'binary frames are not accepted; send the JSON message as a text frame')
        return
      }
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data instanceof ArrayBuffer ? data.byteLength : data.length
      if (size > maxMessage) {
        bad('payload_too_large', `frame is larger than ${maxMessage} bytes`)
        return
      }
      if (queue.length >= 4) {
        bad('rate_limited', 'too many frames in flight; wait for each reply')
        return
      }
      queue.push(data)
      pump()
    }

    ws.on('message', onMessage)
    ws.on('error', () => ws.terminate())
    ws.on('close', () => {
      clearTimeout(timer)
      authenticated.delete(ws)
    })
  })

  const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    if (pathOf(req.url) !== path) return false
    if (wss.clients.size >= maxConnections) {
      answerAndClose(socket, '503 Service Unavailable')
      return true
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
    return true
  }

  return {
    wss,
    authenticatedConnections: authenticated,
    handleUpgrade,
    attach(server) {
      const listener = (req: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
        socket.on('error', () => socket.destroy())
        if (!handleUpgrade(req, socket, head)) answerAndClose(socket, '404 Not Found')
      }
      server.on('upgrade', listener)
      return () => server.off('upgrade', listener)
    },
    close() {
      clearInterval(checkTimer)
      for (const ws of wss.clients) ws.close(1001, 'server shutting down')
      return new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          for (const ws of wss.clients) ws.terminate()
        }, 2_000)
        t.unref()
        wss.close(() => {
          clearTimeout(t)
          resolve()
        })
      })
    },
  }
}

/** Re-exported so callers can name the socket type without importing `ws`. */
export type { WebSocket }
