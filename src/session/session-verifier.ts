/**
 * Checks every request made with a session: the token (AEAD, constant time), its expiry, that the
 * client key is still allowlisted and not revoked, and — unless the operator chose bearer mode —
 * the request proof: HMAC under the session key over method, target, body digest, timestamp and
 * nonce, inside the proof window, with a nonce never seen before.
 * @module
 */
import type { AllowlistEntry, KeyLookup } from '../allowlist/types.js'
import { AuthError } from '../errors.js'
import { b64u, constantTimeEqual } from '../internal/bytes.js'
import { systemClock, type Clock } from '../internal/clock.js'
import type { NonceResult, NonceStore } from '../nonce/nonce-store.js'
import { bodyDigest, computeProofMac, decodeSessionTicket, parseRequestProof, type SessionTicket } from './session-token.js'
import { isTicketKeyRing, staticTicketKeys, type TicketKey, type TicketKeyRing } from './ticket.js'

export type SessionBinding = 'proof' | 'bearer'

/** Who made a request: the result of a successful check. */
export interface SessionInfo {
  sessionId: string
  clientFingerprint: string
  issuedAt: number
  expiresAt: number
  /** The client's allowlist entry (metadata: role, org …). */
  entry: AllowlistEntry
  /** The token as presented (for MCP AuthInfo.token); treat as secret. */
  token: string
}

/** Anything that can say a key or a session was revoked (e.g. RedisRevocationList). */
export interface RevocationCheck {
  isRevoked(fingerprint: string): boolean
  isSessionRevoked?(sessionId: string): boolean
}

export interface SessionVerifierOptions {
  /** The server's ticket keys (ServerHandshake.ticketKeyRing, or a fixed list). */
  ticketKeys: readonly TicketKey[] | TicketKeyRing
  allowlist: KeyLookup
  nonceStore: NonceStore
  /** Default `proof`. `bearer` accepts the token alone (use only over TLS). */
  binding?: SessionBinding
  /** Seconds either side of now a proof timestamp may be (default 30). */
  proofWindow?: number
  revocation?: RevocationCheck
  clock?: Clock
  /** Decoded tokens kept to skip the AEAD on later requests (default 10,000). */
  cacheSize?: number
}

export interface RequestToVerify {
  /** The Authorization header value (`Bearer <token>`). */
  authorization: string | undefined
  /** The MCP-PKI-Proof header value. */
  proof: string | undefined
  method: string
  /** Request target as received: path plus query. */
  target: string
  /** Raw body bytes, or give bodyDigest instead. */
  body?: Uint8Array | string | null
  bodyDigest?: Uint8Array
}

export interface SessionVerifier {
  verify(request: RequestToVerify): Promise<SessionInfo>
  /** The same check without a promise when the nonce store is synchronous (in memory). Throws AuthError. */
  verifyNow(request: RequestToVerify): SessionInfo | Promise<SessionInfo>
  /** Token-only check (bearer mode, or a WebSocket already bound at handshake). */
  verifyToken(token: string): SessionInfo
}

const BEARER = /^Bearer ([A-Za-z0-9_-]{16,1024})$/

export function createSessionVerifier(o: SessionVerifierOptions): SessionVerifier {
  const given = isTicketKeyRing(o.ticketKeys) ? o.ticketKeys : o.ticketKeys?.length ? staticTicketKeys(o.ticketKeys) : undefined
  if (given === undefined) throw new TypeError('ticketKeys are required')
  const ring: TicketKeyRing = given
  if (!o.allowlist || !o.nonceStore) throw new TypeError('allowlist and nonceStore are required')
  const binding = o.binding ?? 'proof'
  if (binding !== 'proof' && binding !== 'bearer') throw new RangeError('binding must be "proof" or "bearer"')
  const clock = o.clock ?? systemClock
  const windowMs = (o.proofWindow ?? 30) * 1000
  const cacheSize = o.cacheSize ?? 10_000
  const cache = new Map<string, SessionTicket & { id: string }>()

  function open(token: string): SessionTicket & { id: string } {
    let t = cache.get(token)
    if (t === undefined) {
      const decoded = decodeSessionTicket(ring.all(), token)
      if (decoded === undefined) throw new AuthError('session_invalid', 'session token is not valid for this server')
      t = { ...decoded, id: b64u(decoded.sessionId) }
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value as string)
      cache.set(token, t)
    }
    return t
  }

  function checkToken(token: string, now: number): { ticket: SessionTicket; info: SessionInfo } {
    const ticket = open(token)
    if (now >= ticket.expiresAt) {
      cache.delete(token)
      throw new AuthError('session_expired', 'the session expired; authenticate again')
    }
    const fp = ticket.clientFingerprint
    const found = o.allowlist.lookup(fp, now)
    if (found.status !== 'ok' || o.revocation?.isRevoked(fp) === true) {
      throw new AuthError('session_revoked', 'the client key of this session is no longer allowed')
    }
    const sessionId = ticket.id
    if (o.revocation?.isSessionRevoked?.(sessionId) === true) throw new AuthError('session_revoked', 'this session was revoked')
    return {
      ticket,
      info: { sessionId, clientFingerprint: fp, issuedAt: ticket.issuedAt, expiresAt: ticket.expiresAt, entry: found.entry, token },
    }
  }

  function tokenOf(authorization: string | undefined): string {
    if (authorization === undefined || authorization === '') throw new AuthError('session_invalid', 'missing Authorization: Bearer <session token>')
    const m = BEARER.exec(authorization)
    if (m === null) throw new AuthError('session_invalid', 'Authorization header must be "Bearer <session token>"')
    return m[1]!
  }

  /** The whole check; synchronous unless the nonce store is asynchronous (Redis). */
  function verifyNow(req: RequestToVerify): SessionInfo | Promise<SessionInfo> {
    const now = clock()
    const { ticket, info } = checkToken(tokenOf(req.authorization), now)
    if (binding === 'bearer' && (req.proof === undefined || req.proof === '')) return info
    if (req.proof === undefined || req.proof === '') throw new AuthError('proof_missing', 'this server requires an MCP-PKI-Proof header on every request')
    const proof = parseRequestProof(req.proof)
    if (proof === undefined) throw new AuthError('proof_invalid', 'MCP-PKI-Proof header is malformed')
    if (Math.abs(now - proof.timestamp) > windowMs) throw new AuthError('proof_invalid', 'request proof is outside the time window; check the clocks')
    const digest = req.bodyDigest ?? bodyDigest(req.body)
    const mac = computeProofMac(ticket.sessionKey, { method: req.method, target: req.target, bodyDigest: digest, timestamp: proof.timestamp, nonce: proof.nonce })
    if (!constantTimeEqual(mac, proof.mac)) throw new AuthError('proof_invalid', 'request proof does not match this request and session')
    const r = o.nonceStore.checkAndInsert(`p:${info.sessionId}:${proof.nonceText}`, proof.timestamp + windowMs + 1)
    return typeof r === 'string' ? afterNonce(r, info) : r.then((x) => afterNonce(x, info))
  }

  function afterNonce(inserted: NonceResult, info: SessionInfo): SessionInfo {
    if (inserted === 'replay') throw new AuthError('replay_detected', 'this request proof was already used')
    if (inserted === 'full') throw new AuthError('server_busy', 'the server is busy; try again shortly', { retryAfter: 1 })
    return info
  }

  return {
    verifyToken(token) {
      return checkToken(token, clock()).info
    },

    verify(req) {
      try {
        const r = verifyNow(req)
        return r instanceof Promise ? r : Promise.resolve(r)
      } catch (err) {
        return Promise.reject(err as Error)
      }
    },

    verifyNow,
  }
}
