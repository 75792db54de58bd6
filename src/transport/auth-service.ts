/**
 * The server's authentication service, independent of any transport: one entry point for
 * handshake messages (dispatch on `type`, never throws, returns the status and body to send) and
 * one for checking requests made with a session. Rate limiting and audit happen here so HTTP,
 * WebSocket and the MCP integrations behave the same.
 * @module
 */
import { AuthError, httpStatusFor, toWireError } from '../errors.js'
import { fromB64u } from '../internal/bytes.js'
import { systemClock, type Clock } from '../internal/clock.js'
import { printable } from '../internal/text.js'
import { fingerprintOf } from '../keys/key-pair.js'
import { DEFAULT_MAX_MESSAGE_SIZE, PROTOCOL_VERSION } from '../protocol/constants.js'
import { messageTypeOf, parseJsonMessage, type AuthChallengeWire, type AuthCompleteWire, type AuthErrorWire } from '../protocol/messages.js'
import { createServerHandshake, type ChallengeAnswer, type HandshakeResult, type ServerHandshake, type ServerHandshakeOptions } from '../handshake/server-handshake.js'
import {
  createSessionVerifier,
  type RequestToVerify,
  type RevocationCheck,
  type SessionBinding,
  type SessionInfo,
  type SessionVerifier,
} from '../session/session-verifier.js'

export type AuditLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'

/** Where the service reports events (AuditLogger implements it). */
export interface AuditSink {
  log(event: string, fields: Record<string, unknown>, level?: AuditLevel): void
}

/** A limiter keyed by address or fingerprint (RateLimiter implements it). */
export interface Limiter {
  take(key: string): boolean
  retryAfterSeconds(key: string): number
}

/**
 * Sees every handshake message and request check (for metrics; createAuthMetrics implements it).
 * Called synchronously on the hot path: implementations must be cheap and must not throw.
 */
export interface AuthObserver {
  /**
   * A handshake message answered: `code` undefined = success. `step` is the message type as the
   * peer sent it (`unknown` when unparsable): map it onto a fixed set before using it as a label.
   */
  handshake(step: string, code: string | undefined, seconds: number, result?: HandshakeResult): void
  /** Read once per request check: true = time this one (a sample keeps clock reads off most requests). */
  readonly sampleRequest: boolean
  /** A request check: `code` undefined = accepted (with its session); `seconds` is -1 when not sampled. */
  request(code: string | undefined, seconds: number, session?: SessionInfo): void
  /** A rate limiter refused: per `address`, per client `key`, or an address blocked after `failures`. */
  rateLimited(limiter: 'address' | 'key' | 'failures'): void
}

export interface AuthServiceOptions extends ServerHandshakeOptions {
  binding?: SessionBinding
  proofWindow?: number
  revocation?: RevocationCheck
  audit?: AuditSink
  /** Limits handshake starts per remote address (an honest handshake costs one token). */
  perAddressLimiter?: Limiter
  /** Limits failed messages per remote address; an address over it is refused before any parsing. */
  perAddressFailureLimiter?: Limiter
  /** Limits completed handshakes per client key (counted after its signature verified). */
  perKeyLimiter?: Limiter
  /** Largest handshake message in bytes (default 16 KiB). */
  maxMessageSize?: number
  /** Metrics observer (default none: no timing is taken). */
  observer?: AuthObserver
}

export interface RequestContext {
  /** Remote address, for rate limiting and audit. */
  remote?: string
  /** `http`, `https`, `ws`, `wss`, `mcp` … for audit. */
  transport?: string
  /**
   * Local port of the socket the message arrived on. Without a configured audience, message 1 and
   * 3 must then name this machine and this port (the transports set it; see local-audience.ts).
   */
  localPort?: number
  /** Local address of that socket: an IP-literal audience must be this address. */
  localAddress?: string
}

export interface AuthReply {
  status: number
  headers: Record<string, string>
  body: AuthChallengeWire | AuthCompleteWire | AuthErrorWire
  /** Set when this message completed a handshake. */
  result?: HandshakeResult
  /** Set on failure: the precise local error (the body carries the folded wire code). */
  error?: AuthError
}

export interface AuthService {
  readonly fingerprint: string
  /** Its handleRequest answers with a promise only when the server key signs elsewhere (ssh-agent). */
  readonly handshake: ServerHandshake<ChallengeAnswer>
  readonly verifier: SessionVerifier
  readonly binding: SessionBinding
  /** One handshake message (parsed JSON, or raw text/bytes to size-check and parse). Never throws. */
  handleMessage(input: unknown, ctx?: RequestContext): Promise<AuthReply>
  /** Checks a request made with a session; audits and rethrows failures as AuthError. */
  verifyRequest(request: RequestToVerify, ctx?: RequestContext): Promise<SessionInfo>
  /**
   * {@link AuthService.verifyRequest} without a promise when the nonce store answers at once (in
   * memory): the same checks and audit, returned or thrown directly. `ctx` may be a function, called
   * only to audit a failure. Optional for services of your own; the MCP middleware falls back to
   * `verifyRequest`.
   */
  verifyRequestNow?(request: RequestToVerify, ctx?: RequestContext | (() => RequestContext)): SessionInfo | Promise<SessionInfo>
}

export function createAuthService(options: AuthServiceOptions): AuthService {
  const handshake = createServerHandshake(options)
  const binding = options.binding ?? 'proof'
  const verifier = createSessionVerifier({
    ticketKeys: handshake.ticketKeyRing,
    allowlist: options.allowlist,
    nonceStore: options.nonceStore,
    binding,
    ...(options.proofWindow === undefined ? {} : { proofWindow: options.proofWindow }),
    ...(options.revocation === undefined ? {} : { revocation: options.revocation }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    acceptsAudience: handshake.acceptsAudience,
  })
  const clock: Clock = options.clock ?? systemClock
  const maxSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
  const audit = options.audit
  const observer = options.observer

  function failure(err: unknown, ctx: RequestContext, step: string, clientFingerprint: string | undefined, started: number): AuthReply {
    const error = err instanceof AuthError ? err : new AuthError('internal_error', 'internal error', { cause: err })
    const wire = toWireError(error)
    const body: AuthErrorWire = { type: 'auth_error', version: PROTOCOL_VERSION, success: false, error: wire }
    const headers: Record<string, string> = {}
    if (error.retryAfter !== undefined) {
      body.retry_after = error.retryAfter
      headers['retry-after'] = String(error.retryAfter)
    }
    audit?.log(
      'handshake.failure',
      {
        step,
        code: error.code,
        // An internal_error of ours (err itself) says what failed (e.g. the ssh-agent would not sign);
        // anything else unexpected is not described (it may quote anything).
        reason: error.code === 'internal_error' && error !== err ? 'internal error' : error.message,
        ...(error as { auditFields?: Record<string, string> }).auditFields,
        client_fingerprint: clientFingerprint,
        server_fingerprint: handshake.fingerprint,
        remote: ctx.remote,
        transport: ctx.transport,
        duration_ms: elapsed(started),
      },
      error.code === 'internal_error' ? 'ERROR' : 'WARN',
    )
    observer?.handshake(step, error.code, (performance.now() - started) / 1000)
    return { status: httpStatusFor(wire.code), headers, body, error }
  }

  function limit(limiter: Limiter | undefined, key: string | undefined, what: 'address' | 'client key'): void {
    if (limiter === undefined || key === undefined) return
    if (!limiter.take(key)) {
      observer?.rateLimited(what === 'address' ? 'address' : 'key')
      throw new AuthError('rate_limited', `too many handshakes from this ${what}; slow down`, { retryAfter: limiter.retryAfterSeconds(key) })
    }
  }

  function blockedAddress(remote: string | undefined): void {
    const limiter = options.perAddressFailureLimiter
    if (limiter === undefined || remote === undefined) return
    const wait = limiter.retryAfterSeconds(remote)
    if (wait > 0) {
      observer?.rateLimited('failures')
      throw new AuthError('rate_limited', 'too many failed handshakes from this address; slow down', { retryAfter: wait })
    }
  }

  return {
    get fingerprint() {
      return handshake.fingerprint
    },
    handshake,
    verifier,
    binding,

    async handleMessage(input, ctx = {}) {
      const started = performance.now()
      let step = 'unknown'
      let message: unknown
      const remote = ctx.remote === undefined ? undefined : addressKey(ctx.remote)
      try {
        blockedAddress(remote)
        message = typeof input === 'string' || Buffer.isBuffer(input) ? parseJsonMessage(input, maxSize) : input
        step = messageTypeOf(message)
        if (step === 'auth_request') {
          limit(options.perAddressLimiter, remote, 'address')
          const answer = handshake.handleRequest(message, ctx)
          // A key in this process answers at once: no extra turn on the hot path.
          const body = answer instanceof Promise ? await answer : answer
          observer?.handshake(step, undefined, (performance.now() - started) / 1000)
          return { status: 200, headers: {}, body }
        }
        if (step === 'auth_response') {
          const result = await handshake.handleResponse(message, ctx)
          // Per key only once the key proved itself: public keys are public, so counting message
          // 1s that merely claim a key would let anyone lock its owner out.
          limit(options.perKeyLimiter, result.clientFingerprint, 'client key')
          audit?.log('handshake.success', {
            client_fingerprint: result.clientFingerprint,
            server_fingerprint: handshake.fingerprint,
            session_id: result.sessionId,
            expires_at: new Date(result.expiresAt).toISOString(),
            role: typeof result.entry.metadata.role === 'string' ? result.entry.metadata.role : undefined,
            ...(result.certificate === undefined
              ? {}
              : { cert_ca: result.certificate.caFingerprint, cert_serial: result.certificate.serial, cert_key_id: printable(result.certificate.keyId).slice(0, 256) }),
            audience: (message as { request?: { audience?: unknown } }).request?.audience,
            remote: ctx.remote,
            transport: ctx.transport,
            duration_ms: elapsed(started),
          })
          observer?.handshake(step, undefined, (performance.now() - started) / 1000, result)
          return { status: 200, headers: {}, body: result.message, result }
        }
        throw new AuthError('invalid_message', 'message.type must be "auth_request" or "auth_response"')
      } catch (err) {
        // Every failure costs the sender a token, so floods of bad messages are limited too.
        if (remote !== undefined && !(err instanceof AuthError && err.code === 'rate_limited')) options.perAddressFailureLimiter?.take(remote)
        // The claimed (unauthenticated) client key, for the audit line only.
        return failure(err, ctx, step, message === undefined ? undefined : claimedClient(message, step), started)
      }
    },

    async verifyRequest(request, ctx = {}) {
      // No clock read without an observer, and only on sampled requests with one.
      const started = observer !== undefined && observer.sampleRequest ? performance.now() : -1
      try {
        if (request.context === undefined) request.context = ctx
        const session = await verifier.verify(request)
        observer?.request(undefined, secondsSince(started), session)
        return session
      } catch (err) {
        return rejected(err, request, ctx, started)
      }
    },

    verifyRequestNow(request, ctx) {
      const started = observer !== undefined && observer.sampleRequest ? performance.now() : -1
      try {
        const r = verifier.verifyNow(request)
        if (r instanceof Promise) {
          return r.then(
            (session) => {
              observer?.request(undefined, secondsSince(started), session)
              return session
            },
            (err: unknown) => rejected(err, request, ctx, started),
          )
        }
        observer?.request(undefined, secondsSince(started), r)
        return r
      } catch (err) {
        return rejected(err, request, ctx, started)
      }
    },
  }

  /** Audits a refused request and throws its AuthError. */
  function rejected(err: unknown, request: RequestToVerify, context: RequestContext | (() => RequestContext) = {}, started = -1): never {
    const error = err instanceof AuthError ? err : new AuthError('internal_error', 'internal error', { cause: err })
    observer?.request(error.code, secondsSince(started))
    const ctx = typeof context === 'function' ? context() : context
    audit?.log('session.rejected', { code: error.code, reason: error.message, method: request.method, target: request.target.slice(0, 200), remote: ctx.remote, transport: ctx.transport, at: clock() }, 'WARN')
    throw error
  }
}

/** Seconds since a sampled start (performance.now()), or -1 when the request was not sampled. */
function secondsSince(started: number): number {
  return started < 0 ? -1 : (performance.now() - started) / 1000
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000
}

/** The fingerprint a message claims (unauthenticated; for rate limiting and audit only). */
function claimedClient(message: unknown, type: string): string | undefined {
  const m = message as Record<string, unknown>
  const req = type === 'auth_request' ? m : type === 'auth_response' && typeof m.request === 'object' && m.request !== null ? (m.request as Record<string, unknown>) : undefined
  const pk = req?.client_public_key
  if (typeof pk !== 'string' || pk.length !== 43) return undefined
  const raw = fromB64u(pk)
  return raw?.byteLength === 32 ? fingerprintOf(raw) : undefined
}

/**
 * The rate-limit key for a remote address: IPv4-mapped IPv6 as plain IPv4, and IPv6 by its /64
 * (whoever holds one address of a /64 usually holds them all).
 */
export function addressKey(remote: string): string {
  const lower = remote.toLowerCase()
  if (lower.startsWith('::ffff:') && lower.includes('.')) return lower.slice(7)
  if (!lower.includes(':')) return lower
  const zone = lower.indexOf('%')
  const addr = zone === -1 ? lower : lower.slice(0, zone)
  const [head = '', tail] = addr.split('::', 2) as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t]
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64'
}
