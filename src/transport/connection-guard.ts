/**
 * Connection limits for node:http / node:https servers (the handshake server and the MCP gateway)
 * that idle and slow connections cannot use to lock legitimate clients out:
 * - a per-address cap below the total (IPv4 address, or IPv6 /64): one address cannot take every slot;
 * - a connection that sends nothing within `firstByteMs` is closed;
 * - when the table is full, the connection idle the longest (no request in progress: never sent
 *   a complete request head, or between keep-alive requests) gives way to the new one. Only when
 *   every connection is serving a request is the newcomer refused.
 * Plus {@link hardenHttpServer}: the same header, request and keep-alive timeouts and client-error
 * answers on every server that uses it.
 * @module
 */
import type * as http from 'node:http'
import type * as net from 'node:net'
import type { Duplex } from 'node:stream'
import { addressKey } from './auth-service.js'

export interface ConnectionGuardOptions {
  /** All connections at once (default 100). */
  maxConnections: number
  /** Connections one address (IPv4, or IPv6 /64) may hold at once; default a quarter of the total, at least 2. */
  perAddress?: number
  /** A connection that has sent nothing after this many ms is closed (default 5,000). */
  firstByteMs?: number
}

export interface ConnectionGuard {
  /** Connections held now. */
  readonly size: number
  /** Idle connections closed to make room for a new one, since the start. */
  readonly evicted: number
  /** New connections refused (per-address cap, or every slot serving a request), since the start. */
  readonly refused: number
}

interface Held {
  socket: net.Socket
  key: string
  /** Requests in progress; an upgraded connection (WebSocket) counts as one for good. */
  busy: number
}

/** The same connection seen as the raw TCP socket ('connection') and as the TLS socket ('request'). */
function peerKey(socket: net.Socket): string {
  return `${socket.remoteAddress ?? '?'}|${socket.remotePort ?? 0}`
}

/**
 * Applies the limits to `server` (listen on it after). A request marks its connection busy until
 * its response is done; an upgrade (WebSocket) marks it busy for good (the WebSocket server has
 * its own limits).
 */
export function guardConnections(server: net.Server, o: ConnectionGuardOptions): ConnectionGuard {
  const perAddress = o.perAddress ?? Math.max(2, Math.ceil(o.maxConnections / 4))
  const firstByteMs = o.firstByteMs ?? 5_000
  const byAddress = new Map<string, number>()
  /** Insertion order = idle since longest first (a connection re-enters at the end when it goes idle). */
  const held = new Map<string, Held>()
  let evicted = 0
  let refused = 0

  const oldestIdle = (): Held | undefined => {
    for (const h of held.values()) if (h.busy === 0) return h
    return undefined
  }

  server.on('connection', (socket: net.Socket) => {
    const key = addressKey(socket.remoteAddress ?? '?')
    const count = byAddress.get(key) ?? 0
    if (count >= perAddress) {
      refused++
      socket.destroy()
      return
    }
    if (held.size >= o.maxConnections) {
      const victim = oldestIdle()
      if (victim === undefined) {
        refused++
        socket.destroy()
        return
      }
      evicted++
      forget(peerKey(victim.socket), victim)
      victim.socket.destroy()
    }
    const id = peerKey(socket)
    const entry: Held = { socket, key, busy: 0 }
    held.set(id, entry)
    byAddress.set(key, count + 1)
    const timer = setTimeout(() => {
      if (socket.bytesRead === 0) socket.destroy()
    }, firstByteMs)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      forget(id, entry)
    })
  })

  /** Frees the slot of `entry` (once: eviction and the close event both call it). */
  function forget(id: string, entry: Held): void {
    if (held.get(id) !== entry) return
    held.delete(id)
    const n = (byAddress.get(entry.key) ?? 1) - 1
    if (n <= 0) byAddress.delete(entry.key)
    else byAddress.set(entry.key, n)
  }

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const id = peerKey(req.socket)
    const entry = held.get(id)
    if (entry === undefined) return
    entry.busy++
    res.once('close', () => {
      entry.busy--
      if (entry.busy === 0 && held.get(id) === entry) {
        held.delete(id) // idle from now: moves to the end of the line
        held.set(id, entry)
      }
    })
  })
  // Marks upgraded connections, only once the server takes upgrades at all: a listener of our own
  // on a server without one would make node:http hand every Upgrade request to nobody.
  const markUpgraded = (req: http.IncomingMessage): void => {
    const entry = held.get(peerKey(req.socket))
    if (entry !== undefined) entry.busy++
  }
  let marking = false
  const startMarking = (): void => {
    if (marking) return
    marking = true
    server.on('upgrade', markUpgraded)
  }
  if (server.listenerCount('upgrade') > 0) startMarking()
  else server.on('newListener', (name: string | symbol) => name === 'upgrade' && startMarking())

  return {
    get size() {
      return held.size
    },
    get evicted() {
      return evicted
    },
    get refused() {
      return refused
    },
  }
}

/**
 * Answers `HTTP/1.1 <status>` on a raw socket and lets it go: destroyed once the answer is handed
 * over (at most 1 s later). The server keeps half-open sockets (allowHalfOpen), so a peer that
 * leaves its side open and goes on sending would otherwise keep the connection, and its slot.
 */
export function answerAndClose(socket: Duplex, status: string): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const timer = setTimeout(() => socket.destroy(), 1_000)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`, () => socket.destroy())
}

export interface HttpServerLimits {
  /** Seconds a whole request may take to arrive (slow senders are told 408 and cut off). */
  timeoutSec: number
  /** Concurrent connections (the oldest idle one gives way when full). */
  maxConnections: number
  /** Per-address cap (default a quarter of maxConnections, at least 2). */
  perAddress?: number
  /**
   * Close sockets idle this long even mid-response (default true). Off for servers that hold
   * long, quiet responses open (the gateway's SSE streams); the header, request and keep-alive
   * timeouts still apply.
   */
  idleBackstop?: boolean
}

/** node:http server options for {@link HttpServerLimits}: pass them to createServer. */
export function httpServerOptions(timeoutSec: number): http.ServerOptions {
  const timeoutMs = Math.max(1, timeoutSec) * 1000
  return {
    requestTimeout: timeoutMs,
    headersTimeout: Math.min(timeoutMs, 10_000),
    // Below the usual 5 s of Node upstreams and clients, so a client rarely reuses a connection
    // this side is closing.
    keepAliveTimeout: 5_000,
    // Node checks request deadlines only every interval: a quarter of the timeout keeps the 408
    // within 25% of the deadline, well before the socket's idle timeout below.
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(timeoutMs / 4))),
    maxHeaderSize: 16 * 1024,
  }
}

/**
 * The limits every HTTP server of this package gets (create it with {@link httpServerOptions}):
 * connection guard, idle-socket backstop, and a 431/408/400 answer (then close) on a client error.
 */
export function hardenHttpServer(server: http.Server, o: HttpServerLimits): ConnectionGuard {
  const timeoutMs = Math.max(1, o.timeoutSec) * 1000
  const guard = guardConnections(server, {
    maxConnections: o.maxConnections,
    ...(o.perAddress === undefined ? {} : { perAddress: o.perAddress }),
    firstByteMs: Math.min(timeoutMs, 5_000),
  })
  // Idle-socket backstop only: it must fire after Node's request deadline check (which sends the
  // 408), or a slow sender is cut off without being told why.
  server.timeout = o.idleBackstop === false ? 0 : timeoutMs * 2 + 1_000
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.destroyed) return
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
    answerAndClose(socket, status)
  })
  return guard
}
