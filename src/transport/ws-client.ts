/**
 * The client side of the WebSocket transport: opens `ws(s)://…/ws`, runs the four-message
 * handshake as JSON text frames and returns the session together with the open, now
 * authenticated socket (for the application's later frames).
 * @module
 */
import { classifyNetworkError, isTlsProblem } from './network-errors.js'
import type WebSocket from 'ws'
import { loadWs } from '../internal/load-on-use.js'
import { AuthError } from '../errors.js'
import type { Clock, RandomSource } from '../internal/clock.js'
import type { Ed25519KeyPair } from '../keys/key-pair.js'
import type { Signer } from '../keys/signer.js'
import { clientKeyOptions } from './client-key.js'
import { createClientHandshake, type ClientSession, type ServerTrust } from '../handshake/client-handshake.js'
import { audienceForUrl, safeUrl } from './http-client.js'
import type { TlsClientOptions } from './tls.js'

export interface AuthenticateWebSocketOptions {
  /** `ws://host:port/ws` or `wss://…`. */
  url: string
  /** The client key pair; or `signer` (ssh-agent) instead, and optionally a `certificate`. */
  keyPair?: Ed25519KeyPair
  signer?: Signer
  certificate?: Uint8Array
  serverTrust: ServerTrust
  /** Default: the URL's origin with ws→http, wss→https (the same audience as over HTTP). */
  audience?: string
  /** The whole handshake, including connecting, in ms (default 30,000). */
  timeoutMs?: number
  /** TLS options for wss (tlsClientOptions: extra CA, client certificate). */
  tls?: TlsClientOptions
  /** Largest frame accepted from the server (default 1 MiB). */
  maxPayload?: number
  timestampTolerance?: number
  clock?: Clock
  random?: RandomSource
}

export interface WebSocketSession {
  session: ClientSession
  /** Open and authenticated; the caller owns it (close it when done). */
  socket: WebSocket
}

/** Runs the handshake over a WebSocket. Throws AuthError (server codes, client checks, transport_*). */
export async function authenticateWebSocket(o: AuthenticateWebSocketOptions): Promise<WebSocketSession> {
  let parsed: URL
  try {
    parsed = new URL(o.url)
  } catch {
    throw new TypeError('url must be an absolute ws(s) URL')
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') throw new TypeError('url must be a ws:// or wss:// URL')
  const where = safeUrl(o.url)
  const timeoutMs = o.timeoutMs ?? 30_000
  const client = createClientHandshake({
    ...clientKeyOptions(o),
    audience: o.audience ?? audienceForUrl(o.url),
    serverTrust: o.serverTrust,
    ...(o.timestampTolerance === undefined ? {} : { timestampTolerance: o.timestampTolerance }),
    ...(o.clock === undefined ? {} : { clock: o.clock }),
    ...(o.random === undefined ? {} : { random: o.random }),
  })

  const socket = new (loadWs().WebSocket)(o.url, {
    handshakeTimeout: timeoutMs,
    maxPayload: o.maxPayload ?? 1024 * 1024,
    perMessageDeflate: false,
    ...(o.tls ?? {}),
  })

  return new Promise<WebSocketSession>((resolve, reject) => {
    let step: 'connecting' | 'challenge' | 'complete' | 'done' = 'connecting'
    const finish = (err: AuthError | undefined, value?: WebSocketSession): void => {
      if (step === 'done') return
      step = 'done'
      clearTimeout(timer)
      socket.off('message', onMessage)
      socket.off('close', onClose)
      socket.off('error', onError)
      if (err) {
        socket.on('error', () => {})
        socket.terminate()
        reject(err)
      } else {
        resolve(value!)
      }
    }
    const timer = setTimeout(() => finish(new AuthError('transport_timeout', `handshake with ${where} did not finish within ${timeoutMs} ms`)), timeoutMs)

    const onError = (err: Error): void => {
      const info = classifyNetworkError(err)
      const what = info.explanation === '' ? info.code : `${info.code}: ${info.explanation}`
      finish(new AuthError('transport_error', isTlsProblem(info.problem) ? `TLS connection to ${where} failed: ${what}` : `cannot reach ${where}: ${what}`, { cause: err }))
    }
    const onClose = (code: number, reason: Buffer): void => {
      finish(new AuthError('transport_error', `${where} closed the connection during the handshake (${code}${reason.length ? ` ${reason.toString('utf8')}` : ''})`))
    }
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      if (isBinary) {
        finish(new AuthError('invalid_message', `${where} sent a binary frame during the handshake`))
        return
      }
      let message: unknown
      try {
        message = JSON.parse((Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)).toString('utf8'))
      } catch {
        finish(new AuthError('transport_error', `${where} sent a frame that is not JSON; is this an mcp-pki-auth /ws endpoint?`))
        return
      }
      if (step === 'challenge') {
        step = 'complete'
        client.handleChallenge(message).then(
          (m3) => {
            if (step === 'complete') socket.send(JSON.stringify(m3))
          },
          (err: unknown) => finish(asAuthError(err)),
        )
      } else if (step === 'complete') {
        try {
          const session = client.handleComplete(message)
          finish(undefined, { session, socket })
        } catch (err) {
          finish(asAuthError(err))
        }
      }
    }
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.on('message', onMessage)
    socket.once('open', () => {
      if (step !== 'connecting') return
      step = 'challenge'
      socket.send(JSON.stringify(client.start()))
    })
  })
}

function asAuthError(err: unknown): AuthError {
  return err instanceof AuthError ? err : new AuthError('internal_error', (err as Error | undefined)?.message ?? 'handshake failed', { cause: err })
}
