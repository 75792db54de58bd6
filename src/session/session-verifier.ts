/**
 * Checks every request made with a session: the token (AEAD, constant time), its expiry, that the
 * client key is still allowlisted and not revoked, that the token's audience still names this
 * server, and — unless the operator chose bearer mode — the request proof: HMAC under the session
 * key over the token, the replay epoch, method, target, Mcp-Session-Id, body digest, timestamp and
 * sequence number, inside the proof window, with a sequence number never used before in this epoch.
 * @module
 */
import type { AllowlistEntry, KeyLookup } from '../allowlist/types.js'
import { AuthError, type AuthErrorCode } from '../errors.js'
import { b64u } from '../internal/bytes.js'
import { hmacPads, zeroPads, type HmacPads } from '../internal/hmac-sha256.js'
import { parseTimestamp, systemClock, type Clock } from '../internal/clock.js'
import type { NonceResult, NonceStore } from '../nonce/nonce-store.js'
import { refusalHeader } from './refusal-answer.js'
import { staleAnswerHeader } from './stale-answer.js'
import { decodeSessionTicket, matchRequestProof, proofHeaderProblem, proofMacMatches, tokenDigest, type SessionTicket } from './session-token.js'
import { certifiedSessionEntry, certifiedSessionProblem } from './certified-session.js'
import { isTicketKeyRing, staticTicketKeys, type TicketKey, type TicketKeyRing } from './ticket.js'

export type SessionBinding = 'proof' | 'bearer'

/** Who made a request: the result of a successful check. Frozen; the same object for every request of a session while its allowlist entry is unchanged. */
export interface SessionInfo {
  sessionId: string
  clientFingerprint: string
  issuedAt: number
  expiresAt: number
  /** The client's allowlist entry (metadata: role, org …). */
  entry: AllowlistEntry
  /** The token as presented (for MCP AuthInfo.token); treat as secret. */
  token: string
  /** The audience the session was made for. */
  audience: string
}

/** Where a request arrived (the transports set it): the default audience check needs the socket. */
export interface RequestContext {
  localPort?: number
  localAddress?: string
}

/** Whether an audience names this server for a request that arrived on `ctx` (ServerHandshake.acceptsAudience). */
export type AudienceCheck = (audience: string, ctx: RequestContext | undefined) => boolean

/** Anything that can say a key or a session was revoked (e.g. RedisRevocationList, KrlRevocation). */
export interface RevocationCheck {
  isRevoked(fingerprint: string): boolean
  isSessionRevoked?(sessionId: string): boolean
  /** When the last lifted revocation of the key began: sessions older than it stay refused. */
  liftedRevocationAt?(fingerprint: string): number | undefined
  /**
   * A client key revoked by what only its bytes tell (an OpenSSH KRL lists keys by the hash of
   * their blob), asked at message 3 where the key is at hand; a key found so is then also
   * `isRevoked` by its fingerprint, so its sessions end too.
   */
  isPublicKeyRevoked?(publicKeyRaw: Uint8Array, fingerprint: string): boolean
  /** A certificate revoked (by serial or key id) by what a session still knows of it; undefined = not revoked. */
  certificateRevocation?(caFingerprint: string, serial: string, keyIdRevocationId: string): 'serial' | 'key_id' | undefined
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
  /**
   * The audience check of the handshake, run again on every request (cached per token and socket):
   * a token made for another service that shares this ticket key is refused (`session_invalid`).
   * Without it every audience is accepted (in-process use only).
   */
  acceptsAudience?: AudienceCheck
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
  /** The `Mcp-Session-Id` header, if any. */
  mcpSessionId?: string | undefined
  /** The socket the request arrived on. */
  context?: RequestContext
}

export interface SessionVerifier {
  verify(request: RequestToVerify): Promise<SessionInfo>
  /** The same check without a promise when the nonce store is synchronous (in memory). Throws AuthError. */
  verifyNow(request: RequestToVerify): SessionInfo | Promise<SessionInfo>
  /** Token-only check (bearer mode, or a WebSocket already bound at handshake). */
  verifyToken(token: string, context?: RequestContext): SessionInfo
  /**
   * Whether a request bearing `token` on `context` deserves to have its body read: the token is
   * one of this server's and its audience names this server (expired or revoked sessions
   * included, since only the full check after the body gives their authenticated refusal). No
   * allowlist or revocation look-up and no exception: the full check does both with the time then.
   */
  precheckToken?(token: string, context?: RequestContext): boolean
}

const BEARER = /^Bearer ([A-Za-z0-9_-]{16,1024})$/
/** The longest token text BEARER accepts. */
const MAX_TOKEN_TEXT = 1024
const BEARER_PREFIX = 'Bearer '

/**
 * A decoded token as cached: the ticket, its session id text, its digest (what proofs bind), the
 * socket its audience was last accepted on, and (once needed) its HMAC key pads.
 */
type OpenTicket = SessionTicket & {
  id: string
  digest: Buffer
  audienceOkOn: string | undefined
  /** The frozen context object the audience was last accepted for (the transports keep one per socket). */
  audienceOkCtx: RequestContext | undefined
  pads: HmacPads | undefined
  entry?: AllowlistEntry
  /** The allowlist entry whose `added_at` is in {@link addedAt} (parsed once per entry, not per request). */
  addedAtOf?: AllowlistEntry
  addedAt?: number | undefined
  /**
   * The SessionInfo last returned for this token, frozen: every field but `entry` is the ticket's
   * own, so it is returned again while the allowlist entry is the same object. One object per
   * session instead of one per request lets callers keep what they derive from it in a WeakMap
   * (createMcpAuth's AuthInfo; docs/benchmarks.md, session 10).
   */
  info?: SessionInfo
}

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
  const cache = new Map<string, OpenTicket>()
  const { allowlist, nonceStore, revocation } = o
  // When this process first saw the current replay epoch (mayHaveRunBefore).
  let epochSeen = { epoch: nonceStore.epoch(), at: clock() }

  function open(token: string): OpenTicket {
    let t = cache.get(token)
    if (t === undefined) t = decode(token)
    return t
  }

  function decode(token: string): OpenTicket {
    const decoded = decodeSessionTicket(ring.all(), token)
    if (decoded === undefined) throw new AuthError('session_invalid', 'session token is not valid for this server')
    const t: OpenTicket = { ...decoded, id: b64u(decoded.sessionId), digest: tokenDigest(token), audienceOkOn: undefined, audienceOkCtx: undefined, pads: undefined }
    if (cache.size >= cacheSize) evict(cache.keys().next().value as string)
    cache.set(token, t)
    return t
  }

  function evict(token: string): void {
    const t = cache.get(token)
    if (t?.pads !== undefined) zeroPads(t.pads)
    t?.sessionKey.fill(0)
    cache.delete(token)
  }

  /** The token's audience must name this server, as at the handshake (cached per socket). */
  function checkAudience(ticket: OpenTicket, ctx: RequestContext | undefined): void {
    if (o.acceptsAudience === undefined) return
    // The same frozen context object (one per socket) as last time: same socket, same verdict.
    if (ctx !== undefined && ticket.audienceOkCtx === ctx) return
    const on = ctx === undefined ? '' : `${ctx.localPort ?? ''} ${ctx.localAddress ?? ''}`
    if (ticket.audienceOkOn !== on) {
      if (!o.acceptsAudience(ticket.audience, ctx)) throw new AuthError('session_invalid', 'this session was made for another audience than this server')
      ticket.audienceOkOn = on
    }
    ticket.audienceOkCtx = ctx !== undefined && Object.isFrozen(ctx) ? ctx : undefined
  }

  /**
   * The refusal `code` of a request whose token opened: an AuthError carrying the MCP-PKI-Refusal
   * header (refusal-answer.ts) when the request carried a proof whose MAC verifies, so the client
   * can tell the server's answer from a forged one. Then drops the token from the cache if `drop`.
   */
  function refuse(ticket: OpenTicket, token: string, req: RequestToVerify | undefined, code: AuthErrorCode, message: string, drop = false): AuthError {
    const mac = req === undefined ? undefined : verifiedProofMac(ticket, req)
    const err = new AuthError(code, message, mac === undefined ? {} : { refusalHeader: refusalHeader(ticket.sessionKey, code, mac) })
    if (drop) evict(token)
    return err
  }

  /** The proof's `m` text when the request's proof is well formed and its MAC verifies; else undefined. */
  function verifiedProofMac(ticket: OpenTicket, req: RequestToVerify): string | undefined {
    const proof = req.proof === undefined || req.proof === '' ? undefined : matchRequestProof(req.proof)
    if (proof === undefined) return undefined
    const pads = ticket.pads ?? (ticket.pads = hmacPads(ticket.sessionKey))
    return proofMacMatches(pads, ticket.digest, proof[3]!, req, proof[1]!, proof[2]!, proof[4]!) ? proof[4]! : undefined
  }

  /** Allowlist, revocation and audience of an opened, unexpired token; throws AuthError. */
  function checkTicket(ticket: OpenTicket, token: string, now: number, ctx: RequestContext | undefined, req?: RequestToVerify): SessionInfo {
    const fp = ticket.clientFingerprint
    if (ticket.certificate !== undefined) return checkCertifiedTicket(ticket, token, ctx, req)
    const found = allowlist.lookup(fp, now)
    if (found.status !== 'ok' || revocation?.isRevoked(fp) === true) {
      throw refuse(ticket, token, req, 'session_revoked', 'the client key of this session is no longer allowed')
    }
    // Revoked after this session began and the revocation lifted since: the revocation ended it.
    const liftedAt = revocation?.liftedRevocationAt?.(fp)
    if (liftedAt !== undefined && liftedAt >= ticket.issuedAt) {
      throw refuse(ticket, token, req, 'session_revoked', 'the client key of this session was revoked after the session began', true)
    }
    // Removed after this session began (and perhaps added again since): removal ended it.
    const removedAt = allowlist.removedAt?.(fp)
    if (removedAt !== undefined && removedAt >= ticket.issuedAt) {
      throw refuse(ticket, token, req, 'session_revoked', 'the client key of this session was removed from the allowlist after the session began', true)
    }
    // Listed (again, or replaced) after this session began: the entry it was issued under is gone.
    // This also holds across restarts, where the in-memory removal record above is lost. An
    // `added_at` in this clock's future is not trusted (another machine's clock): no check then.
    if (ticket.addedAtOf !== found.entry) {
      ticket.addedAt = addedAtMs(found.entry)
      ticket.addedAtOf = found.entry
    }
    const addedAt = ticket.addedAt
    if (addedAt !== undefined && addedAt <= now && ticket.issuedAt < addedAt) {
      throw refuse(ticket, token, req, 'session_revoked', 'the allowlist entry of this client key was (re)added after the session began', true)
    }
    const sessionId = ticket.id
    if (revocation?.isSessionRevoked?.(sessionId) === true) throw refuse(ticket, token, req, 'session_revoked', 'this session was revoked')
    try {
      checkAudience(ticket, ctx)
    } catch (err) {
      throw err instanceof AuthError ? refuse(ticket, token, req, err.code, err.message) : err
    }
    return infoOf(ticket, token, found.entry)
  }

  /** The ticket's frozen SessionInfo for `entry` (made again only when the entry changed). */
  function infoOf(ticket: OpenTicket, token: string, entry: AllowlistEntry): SessionInfo {
    const known = ticket.info
    if (known !== undefined && known.entry === entry) return known
    const info: SessionInfo = { sessionId: ticket.id, clientFingerprint: ticket.clientFingerprint, issuedAt: ticket.issuedAt, expiresAt: ticket.expiresAt, entry, token, audience: ticket.audience }
    return (ticket.info = Object.freeze(info))
  }

  /** A session made with a certificate: its CA is still trusted, nothing of it revoked (certified-session.ts). */
  function checkCertifiedTicket(ticket: OpenTicket, token: string, ctx: RequestContext | undefined, req: RequestToVerify | undefined): SessionInfo {
    const fp = ticket.clientFingerprint
    const problem = certifiedSessionProblem(allowlist, revocation, fp, ticket.certificate!, ticket.issuedAt)
    if (problem !== undefined) throw refuse(ticket, token, req, 'session_revoked', problem, true)
    if (revocation?.isSessionRevoked?.(ticket.id) === true) throw refuse(ticket, token, req, 'session_revoked', 'this session was revoked')
    try {
      checkAudience(ticket, ctx)
    } catch (err) {
      throw err instanceof AuthError ? refuse(ticket, token, req, err.code, err.message) : err
    }
    ticket.entry ??= certifiedSessionEntry(allowlist, fp, ticket.certificate!, ticket.expiresAt)
    return infoOf(ticket, token, ticket.entry)
  }

  const EXPIRED = 'the session expired; authenticate again'

  /**
   * An expired session's refusal. `session_expired` tells the client to renew and re-send, so it is
   * authenticated only for a proof that passes every check (MAC, window, a sequence number never
   * used, which is now used): that request never ran and never will. Otherwise no header (a
   * replayed proof: `replay_detected`, authenticated).
   */
  function expired(ticket: OpenTicket, token: string, now: number, req: RequestToVerify | undefined): never | Promise<never> {
    const mac = req === undefined ? undefined : verifiedProofMac(ticket, req)
    const proof = mac === undefined ? undefined : matchRequestProof(req!.proof!)
    const timestamp = Number(proof?.[1])
    if (proof === undefined || Math.abs(now - timestamp) > windowMs) {
      evict(token)
      throw new AuthError('session_expired', EXPIRED)
    }
    // Both answers made now: the session key is zeroed when the token leaves the cache.
    const answers = { ok: refusalHeader(ticket.sessionKey, 'session_expired', mac!), replay: refusalHeader(ticket.sessionKey, 'replay_detected', mac!) }
    evict(token)
    const after = (r: NonceResult): never => {
      if (r === 'ok') throw new AuthError('session_expired', EXPIRED, { refusalHeader: answers.ok })
      if (r === 'replay') throw new AuthError('replay_detected', 'this request proof (its sequence number) was already used', { refusalHeader: answers.replay })
      if (r === 'stale') throw new AuthError('session_expired', EXPIRED)
      throw new AuthError('server_busy', 'the server is busy; try again shortly', { retryAfter: 1 })
    }
    const r = nonceStore.checkSequence(ticket.id, Number(proof[2]), timestamp + windowMs + 1, proof[3]!)
    return typeof r === 'string' ? after(r) : r.then(after)
  }

  /**
   * The token of `Authorization: Bearer <token>`, opened. A token already in the cache was decoded
   * (strict base64url of a fixed-size ticket), so it matches BEARER and the regex is skipped.
   */
  function tokenOf(authorization: string | undefined): { token: string; ticket: OpenTicket } {
    if (authorization === undefined || authorization === '') throw new AuthError('session_invalid', 'missing Authorization: Bearer <session token>')
    if (typeof authorization === 'string' && authorization.startsWith(BEARER_PREFIX)) {
      const token = authorization.slice(BEARER_PREFIX.length)
      const ticket = cache.get(token)
      if (ticket !== undefined) return { token, ticket }
    }
    const m = BEARER.exec(authorization)
    if (m === null) throw new AuthError('session_invalid', 'Authorization header must be "Bearer <session token>"')
    const token = m[1]!
    return { token, ticket: open(token) }
  }

  /** The whole check; synchronous unless the nonce store is asynchronous (Redis). */
  function verifyNow(req: RequestToVerify): SessionInfo | Promise<SessionInfo> {
    const now = clock()
    const { token, ticket } = tokenOf(req.authorization)
    if (now >= ticket.expiresAt) return expired(ticket, token, now, req)
    const info = checkTicket(ticket, token, now, req.context, req)
    const header = req.proof
    if (header === undefined || header === '') {
      if (binding === 'bearer') return info
      throw new AuthError('proof_missing', 'this server requires an MCP-PKI-Proof header on every request')
    }
    const proof = matchRequestProof(header)
    if (proof === undefined) throw new AuthError('proof_invalid', `MCP-PKI-Proof header is malformed: ${proofHeaderProblem(header)}`)
    const timestamp = Number(proof[1])
    if (Math.abs(now - timestamp) > windowMs) {
      throw refuse(ticket, token, req, 'proof_invalid', `request proof is ${Math.round(Math.abs(now - timestamp) / 1000)} s outside the time window (±${windowMs / 1000} s, in this server's clock as told at the handshake); authenticate again`)
    }
    const sequence = Number(proof[2])
    const epochText = proof[3]!
    const pads = ticket.pads ?? (ticket.pads = hmacPads(ticket.sessionKey))
    if (!proofMacMatches(pads, ticket.digest, epochText, req, proof[1]!, proof[2]!, proof[4]!)) {
      throw new AuthError('proof_invalid', 'request proof does not match this request and session')
    }
    const r = nonceStore.checkSequence(info.sessionId, sequence, timestamp + windowMs + 1, epochText)
    const macText = proof[4]!
    return typeof r === 'string' ? afterNonce(r, info, ticket, macText, timestamp) : r.then((x) => afterNonce(x, info, ticket, macText, timestamp))
  }

  /**
   * True when a proof dated `timestamp` under an earlier epoch may have been used before the
   * memory of `epoch` began: dated before this process first saw `epoch` (plus the fleet's clock
   * skew for a shared memory). The memory was lost no later than that, and an honest client dates
   * a proof when it sends it, so a later date means the request was sent after the loss and can
   * never have run under the lost memory (docs/PROTOCOL.md §9, "Which stale proofs are answered").
   */
  function mayHaveRunBefore(epoch: string, timestamp: number): boolean {
    if (epoch !== epochSeen.epoch) epochSeen = { epoch, at: clock() }
    const began = nonceStore.epochSince?.() ?? epochSeen.at
    return timestamp <= began + (nonceStore.sharedClockSkewMs ?? 0)
  }

  function afterNonce(inserted: NonceResult, info: SessionInfo, ticket: OpenTicket, macText: string, timestamp: number): SessionInfo {
    if (inserted === 'ok') return info
    if (inserted === 'replay') {
      throw new AuthError('replay_detected', 'this request proof (its sequence number) was already used', { refusalHeader: refusalHeader(ticket.sessionKey, 'replay_detected', macText) })
    }
    if (inserted === 'stale') {
      const epoch = nonceStore.epoch()
      if (mayHaveRunBefore(epoch, timestamp)) {
        // No MCP-PKI-Epoch answer: the client must not send this request again on its own.
        throw new AuthError('proof_stale', "the server's replay memory restarted while this request was on its way: it may have run before that; check its effect, then send it again (new requests use the new epoch)", { epoch })
      }
      // Authenticated under the session key, bound to the refused proof: a forged or replayed stale
      // answer cannot make the client send a request again (stale-answer.ts).
      const epochHeader = staleAnswerHeader(ticket.sessionKey, macText, epoch)
      throw new AuthError('proof_stale', "the server's replay memory restarted; make a new proof with the epoch in the MCP-PKI-Epoch header", { epoch, epochHeader })
    }
    throw new AuthError('server_busy', 'the server is busy; try again shortly', { retryAfter: 1 })
  }

  return {
    verifyToken(token, context) {
      const ticket = open(token)
      const now = clock()
      if (now >= ticket.expiresAt) {
        evict(token)
        throw new AuthError('session_expired', EXPIRED)
      }
      return checkTicket(ticket, token, now, context)
    },

    precheckToken(token, context) {
      let ticket = cache.get(token)
      if (ticket === undefined) {
        if (token.length > MAX_TOKEN_TEXT) return false
        try {
          ticket = decode(token)
        } catch {
          return false
        }
      }
      // Expired: the full check after the body answers it (authenticated when the proof verifies).
      if (clock() >= ticket.expiresAt) return true
      try {
        checkAudience(ticket, context)
        return true
      } catch {
        return false
      }
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

/** An entry's `added_at` in ms (the fast strict parser first, then Date.parse); undefined when unusable. */
function addedAtMs(entry: AllowlistEntry): number | undefined {
  const text = entry.addedAt
  if (typeof text !== 'string' || text === '') return undefined
  const fast = parseTimestamp(text)
  if (fast !== undefined) return fast
  const slow = Date.parse(text)
  return Number.isFinite(slow) ? slow : undefined
}
