/**
 * The server side of the handshake: a pure object with no I/O and no per-client state between
 * message 2 and message 3. Checks run cheapest first (docs/PROTOCOL.md §Order of checks).
 * Message 1 is answered the same way whether or not its key is listed (no allowlist oracle for
 * strangers): the allowlist decides at message 3, before any signature is verified.
 * M3: size/schema → version → timestamp window → audience → allowlist → MAC (challenge token) →
 * expiry → signature → nonce insert (under the replay epoch sealed in the challenge).
 * @module
 */
import type { KeyObject } from 'node:crypto'
import type { AllowlistEntry, KeyLookup, LookupResult } from '../allowlist/types.js'
import { AuthError } from '../errors.js'
import { b64u, constantTimeEqual, readU64, writeU64 } from '../internal/bytes.js'
import { formatTimestamp, systemClock, systemRandom, type Clock, type RandomSource } from '../internal/clock.js'
import { ed25519PublicKeyProblem, ed25519PublicKeyProblemFast, type Ed25519KeyProblem } from '../keys/point-check.js'
import { fingerprintOf, privateKeySeed, verifyBytes, type Ed25519KeyPair } from '../keys/key-pair.js'
import type { NonceStore } from '../nonce/nonce-store.js'
import { CONTEXT, EPOCH_SIZE, MAX_TOKEN_LENGTH, NONCE_SIZE, PROTOCOL_VERSION, SESSION_KEY_SIZE } from '../protocol/constants.js'
import {
  parseAuthRequest,
  parseAuthResponse,
  type AuthChallengeWire,
  type AuthCompleteWire,
  type AuthChallenge,
  type AuthRequest,
} from '../protocol/messages.js'
import {
  challengeFieldsOf,
  finishedMac,
  requestFieldsOf,
  sha256,
  signingInput,
  transcript1,
  transcript2,
  transcript2pre,
  transcript3,
  transcript4,
} from '../protocol/transcript.js'
import { deriveTicketKey, isTicketKeyRing, openTicket, sealTicket, staticTicketKeys, TICKET_KIND, type TicketKey, type TicketKeyRing } from '../session/ticket.js'
import { encodeSessionTicket } from '../session/session-token.js'
import type { RevocationCheck } from '../session/session-verifier.js'
import { localHostNames, namesThisServer } from './local-audience.js'
import { checkWindow, deriveSessionKeys, takeEphemeral, type EphemeralSource } from './common.js'
import { heldServerKey, serverKeyUpdateFor, type ServerKeySource } from './server-key-rotation.js'
import { signWithServerKey, type ServerKey } from './server-key.js'
import { certificateCheckFor, hostCertificateOf, revocationReason, type CertifiedClient } from './client-certificate.js'

export interface ServerHandshakeOptions<K extends ServerKey = ServerKey> {
  /**
   * The server key: a key pair in this process, or a key that signs elsewhere (externalServerKey
   * over an ssh-agent signer; message 2 is then answered through a promise, and `ticketKeys` is
   * required: there is no private seed to derive the default from).
   */
  keyPair: K
  /**
   * The keys to present, read per message (a server-key rotation, server-key-rotation.ts). Default:
   * always `keyPair`. `keyPair` still derives the default ticket key.
   */
  serverKeys?: ServerKeySource<K>
  /** Which client keys may authenticate. */
  allowlist: KeyLookup
  /** Revoked keys (e.g. RedisRevocationList, shared by a fleet): refused like unlisted ones. */
  revocation?: RevocationCheck
  /** Single-use server nonces; fails closed when full. */
  nonceStore: NonceStore
  /** Seconds of clock difference allowed between peers (default 300). */
  timestampTolerance?: number
  /** Seconds a challenge stays valid (default 60). */
  challengeTtl?: number
  /** Seconds a session stays valid (default 900). */
  sessionTtl?: number
  /**
   * Audiences this server answers to (exact match). When null/empty: a message that arrived on a
   * socket (`ctx.localPort` given) must name this machine and that port (see local-audience.ts);
   * a message handed in without a context is not checked (the client still binds the one it meant).
   */
  audience?: string | readonly string[] | null
  /** More host names that mean this server for the default audience check (e.g. the configured listen host). */
  localNames?: readonly string[]
  /** Ticket keys: the first (or ring.current()) seals, all open. Default: one derived from the server's private key. */
  ticketKeys?: readonly TicketKey[] | TicketKeyRing
  clock?: Clock
  random?: RandomSource
  /** Ephemeral X25519 key pairs (default: fresh random ones). Inject only for reproducible test vectors. */
  ephemeral?: EphemeralSource
  /** An OpenSSH host certificate for the server key (blob), sent in message 2 and covered by its signature. */
  certificate?: Uint8Array
}

export interface HandshakeResult {
  message: AuthCompleteWire
  clientFingerprint: string
  entry: AllowlistEntry
  sessionId: string
  expiresAt: number
  /** Set when the client got in with an OpenSSH certificate (its key is not listed directly). */
  certificate?: CertifiedClient['certificate']
}

/** Message 2 as a server answers it: at once with its key in this process, else a promise (agent). */
export type ChallengeAnswer = AuthChallengeWire | Promise<AuthChallengeWire>

export interface ServerHandshake<M2 extends ChallengeAnswer = AuthChallengeWire> {
  readonly fingerprint: string
  /** The keys that open this server's tickets now (the first seals). */
  readonly ticketKeys: readonly TicketKey[]
  readonly ticketKeyRing: TicketKeyRing
  /**
   * Message 1 → message 2. Throws AuthError. Synchronous for a key pair in this process; a
   * promise (rejecting with AuthError) when the key signs elsewhere.
   */
  handleRequest(message: unknown, ctx?: HandshakeContext): M2
  /** Message 3 → message 4. Throws AuthError. */
  handleResponse(message: unknown, ctx?: HandshakeContext): Promise<HandshakeResult>
  /** The audience check of messages 1 and 3, for the session verifier to repeat on each request. */
  acceptsAudience(audience: string, ctx: HandshakeContext | undefined): boolean
}

/** Where a message arrived (set by the transports). */
export interface HandshakeContext {
  /** The local port of the socket the message came in on: enables the default audience check. */
  localPort?: number
  /** The local address of that socket: an IP-literal audience must name it. */
  localAddress?: string
}

/** A client as message 3 found it: listed directly, or certified (then `certificate` is set). */
type Client = { entry: AllowlistEntry; publicKey: KeyObject; fingerprint: string; certificate?: CertifiedClient['certificate'] }

/** Challenge token plaintext: expires_at(8) || H(T2pre)(32) || session_key(32) || finished_key(32) || replay epoch(8). */
const CHALLENGE_PLAINTEXT = 8 + 32 + 2 * SESSION_KEY_SIZE + EPOCH_SIZE
const KEYS_AT = 40
/** What is wrong with a refused client key, in words for the peer (it depends on the bytes alone). */
const KEY_PROBLEM_WORDS: Record<Ed25519KeyProblem, string> = {
  wrong_length: 'not 32 bytes',
  non_canonical: 'non-canonical encoding, y >= 2^255 - 19',
  small_order: 'small-order point',
  not_on_curve: 'not a point on the curve',
}
const EPOCH_AT = KEYS_AT + 2 * SESSION_KEY_SIZE

export function createServerHandshake(options: ServerHandshakeOptions<Ed25519KeyPair>): ServerHandshake
export function createServerHandshake(options: ServerHandshakeOptions): ServerHandshake<ChallengeAnswer>
export function createServerHandshake(options: ServerHandshakeOptions): ServerHandshake<ChallengeAnswer> {
  const { keyPair, allowlist, nonceStore, revocation } = options
  if (!(keyPair?.privateKey ?? keyPair?.signer) || !allowlist || typeof allowlist.lookup !== 'function') throw new TypeError('keyPair and allowlist are required')
  if (!nonceStore || typeof nonceStore.checkAndInsert !== 'function') throw new TypeError('nonceStore is required')
  const toleranceMs = seconds(options.timestampTolerance, 300, 'timestampTolerance') * 1000
  const challengeTtlMs = seconds(options.challengeTtl, 60, 'challengeTtl') * 1000
  const sessionTtlMs = seconds(options.sessionTtl, 900, 'sessionTtl') * 1000
  const clock = options.clock ?? systemClock
  const random = options.random ?? systemRandom
  const newEphemeral = options.ephemeral ?? takeEphemeral
  const audiences = options.audience == null ? [] : typeof options.audience === 'string' ? [options.audience] : [...options.audience]
  const ring: TicketKeyRing = isTicketKeyRing(options.ticketKeys) ? options.ticketKeys : staticTicketKeys(options.ticketKeys?.length ? options.ticketKeys : [defaultTicketKey(keyPair)])
  const extraNames = new Set((options.localNames ?? []).map((n) => n.toLowerCase()).map((n) => (n.includes(':') && !n.startsWith('[') ? `[${n}]` : n)))
  const staticKeys = { current: keyPair }
  const serverKeys: ServerKeySource = options.serverKeys ?? (() => staticKeys)
  const b64Of = new WeakMap<ServerKey, string>()
  const b64uOf = (k: ServerKey): string => {
    let text = b64Of.get(k)
    if (text === undefined) b64Of.set(k, (text = b64u(k.publicKeyRaw)))
    return text
  }
  // The host certificate speaks for the key it certifies: sent only while that key is the one presented.
  const hostCertificate = hostCertificateOf(options.certificate, keyPair.publicKeyRaw)
  const hostCertificateText = hostCertificate === undefined ? undefined : b64u(hostCertificate)
  const hostCertificateFor = (k: ServerKey): Buffer | undefined => (hostCertificate !== undefined && k.publicKeyRaw.equals(keyPair.publicKeyRaw) ? hostCertificate : undefined)

  const certificateCheck = certificateCheckFor(allowlist, revocation, toleranceMs / 1000)

  function lookupClient(request: AuthRequest, now: number, certificate: Buffer | undefined): Client {
    const fingerprint = fingerprintOf(request.clientPublicKey)
    // Whatever the KeyLookup holds: a small-order key would accept a forged signature (point-check.ts).
    // The fast check suffices here: the signature is verified only once the challenge token binds
    // this key to the message 1 that got the full check (on-curve too) before it was answered;
    // the curve check again would cost ~20 µs per handshake (bench inprocess, server CPU).
    if (ed25519PublicKeyProblemFast(request.clientPublicKey) !== undefined) throw new AuthError('unknown_key', `client key ${fingerprint.slice(0, 16)}… is not a usable ed25519 public key (small-order or non-canonical)`)
    const found = allowlist.lookup(fingerprint, now, request.clientPublicKey)
    // A key listed directly is judged on its entry; a certificate speaks only for an unlisted key.
    if (found.status === 'unknown' && certificate !== undefined && certificateCheck !== undefined) return certificateCheck(certificate, request.clientPublicKey, fingerprint, now)
    return judgeClient(found, fingerprint, request.clientPublicKey)
  }

  function judgeClient(found: LookupResult, fingerprint: string, publicKeyRaw: Uint8Array): Client {
    if (found.status === 'unknown') throw new AuthError('unknown_key', `client key ${fingerprint.slice(0, 16)}… is not on the allowlist`)
    if (found.status === 'expired') throw new AuthError('key_expired', `client key ${fingerprint.slice(0, 16)}… has an expired allowlist entry`)
    // Folded into authentication_failed on the wire like unknown_key; the reason names it locally.
    if (isKeyRevoked(fingerprint, publicKeyRaw)) throw new AuthError('unknown_key', `client key ${fingerprint.slice(0, 16)}… is revoked`)
    return { entry: found.entry, publicKey: found.publicKey, fingerprint }
  }

  /** Revoked by fingerprint, or (a KRL) by the key's bytes. */
  function isKeyRevoked(fingerprint: string, publicKeyRaw: Uint8Array): boolean {
    return revocation !== undefined && (revocation.isRevoked(fingerprint) || revocation.isPublicKeyRevoked?.(publicKeyRaw, fingerprint) === true)
  }

  // Verdicts of the default check by (port, address, audience): clients repeat the same few. The
  // cache is dropped when this machine's names are refreshed.
  const verdicts = new Map<string, boolean>()
  let verdictNames = localHostNames()
  function audienceVerdict(audience: string, localPort: number, localAddress: string | undefined): boolean {
    const names = localHostNames()
    if (names !== verdictNames || verdicts.size >= 1024) {
      verdicts.clear()
      verdictNames = names
    }
    const key = `${localPort} ${localAddress ?? ''} ${audience}`
    let v = verdicts.get(key)
    if (v === undefined) {
      v = namesThisServer(audience, localPort, extraNames, localAddress)
      verdicts.set(key, v)
    }
    return v
  }

  function acceptsAudience(audience: string, ctx: HandshakeContext | undefined): boolean {
    if (audiences.length > 0) return audiences.includes(audience)
    return ctx?.localPort === undefined || audienceVerdict(audience, ctx.localPort, ctx.localAddress)
  }

  function checkAudience(audience: string, ctx: HandshakeContext | undefined): void {
    if (audiences.length > 0) {
      if (!audiences.includes(audience)) throw new AuthError('invalid_message', 'audience does not name this server')
      return
    }
    if (ctx?.localPort !== undefined && !audienceVerdict(audience, ctx.localPort, ctx.localAddress)) {
      throw new AuthError(
        'invalid_message',
        `audience ${JSON.stringify(audience.slice(0, 120))} does not name this server (its host must name the address this request came in on and its port be ${ctx.localPort}); behind a proxy or under another name, the server must set auth.audience`,
      )
    }
  }

  /**
   * An unknown, expired or revoked key at message 3 costs what a listed one costs (token open and an
   * ed25519 verification, against our own key so it never passes): the time of the refusal tells a
   * stranger nothing about the allowlist (red-team finding on mcp-pki/2: +170 µs for listed keys).
   */
  function sameWorkAsAListedKey(request: AuthRequest, challenge: AuthChallenge, signature: Uint8Array, certificate: Buffer | undefined): void {
    openTicket(ring.all(), TICKET_KIND.challenge, challenge.challengeToken)
    const t2pre = transcript2pre(transcript1(requestFieldsOf(request)), challengeFieldsOf(challenge))
    verifyBytes(keyPair.publicKey, signingInput(CONTEXT.clientResponse, transcript3(transcript2(t2pre, challenge.challengeToken, challenge.certificate), challenge.signature, challenge.wire.timestamp, certificate)), signature)
  }

  return {
    get fingerprint() {
      return serverKeys().current.fingerprint
    },
    get ticketKeys() {
      return ring.all()
    },
    ticketKeyRing: ring,
    acceptsAudience,

    handleRequest(message: unknown, ctx?: HandshakeContext): ChallengeAnswer {
      const request = parseAuthRequest(message)
      // A malformed key (small-order, non-canonical, or no point at all) is refused like any
      // malformed field, before anything is signed: it depends on the bytes alone, never on the
      // allowlist (point-check.ts).
      const keyProblem = ed25519PublicKeyProblem(request.clientPublicKey)
      if (keyProblem !== undefined) {
        throw new AuthError('invalid_message', `auth_request.client_public_key is not a usable ed25519 public key (${KEY_PROBLEM_WORDS[keyProblem]}); send the public half of an ed25519 key made by mcp-keygen or ssh-keygen`)
      }
      const now = clock()
      checkWindow(request.timestamp, now, toleranceMs, 'auth_request')
      checkAudience(request.audience, ctx)
      // No allowlist lookup here: a listed and an unlisted key get the same answer (message 3 decides).

      const presented = serverKeys().current
      const serverNonce = random(NONCE_SIZE)
      const eph = newEphemeral()
      const timestamp = formatTimestamp(now)
      const expiresAtMs = now + challengeTtlMs
      const expiresAt = formatTimestamp(expiresAtMs)
      const t2pre = transcript2pre(transcript1(requestFieldsOf(request)), {
        serverPublicKey: presented.publicKeyRaw,
        serverNonce,
        serverEphemeral: eph.publicRaw,
        timestamp,
        expiresAt,
      })
      const h = sha256(t2pre)
      const keys = deriveSessionKeys(eph.privateKey, request.clientEphemeral, h)
      const plain = Buffer.allocUnsafe(CHALLENGE_PLAINTEXT)
      writeU64(plain, expiresAtMs, 0)
      h.copy(plain, 8)
      keys.sessionKey.copy(plain, KEYS_AT)
      keys.finishedKey.copy(plain, KEYS_AT + SESSION_KEY_SIZE)
      if (plain.write(nonceStore.epoch(), EPOCH_AT, 'base64url') !== EPOCH_SIZE) throw new Error('nonce store epoch must be 8 bytes')
      const token = sealTicket(ring.current(), TICKET_KIND.challenge, plain, random, now)
      keys.sessionKey.fill(0)
      keys.finishedKey.fill(0)
      plain.fill(0)
      const presentedCertificate = hostCertificateFor(presented)
      const signature = signWithServerKey(presented, signingInput(CONTEXT.serverChallenge, transcript2(t2pre, token, presentedCertificate)))
      const answer = (sig: Buffer): AuthChallengeWire => ({
        type: 'auth_challenge',
        version: PROTOCOL_VERSION,
        server_public_key: b64uOf(presented),
        server_nonce: b64u(serverNonce),
        server_ephemeral: b64u(eph.publicRaw),
        timestamp,
        expires_at: expiresAt,
        challenge_token: b64u(token),
        signature: b64u(sig),
        ...(presentedCertificate === undefined || hostCertificateText === undefined ? {} : { certificate: hostCertificateText }),
      })
      return signature instanceof Promise ? signature.then(answer) : answer(signature)
    },

    async handleResponse(message: unknown, ctx?: HandshakeContext): Promise<HandshakeResult> {
      const response = parseAuthResponse(message)
      const { request, challenge } = response
      const now = clock()
      checkWindow(response.timestamp, now, toleranceMs, 'auth_response')
      checkAudience(request.audience, ctx)
      let client: Client
      try {
        client = lookupClient(request, now, response.certificate)
      } catch (err) {
        sameWorkAsAListedKey(request, challenge, response.signature, response.certificate)
        throw err
      }
      // A fingerprint-only entry just completed: judged on the entry as the allowlist file has it now.
      const settling = allowlist.settle?.(client.fingerprint, now)
      if (settling !== undefined) client = judgeClient(await settling, client.fingerprint, request.clientPublicKey)
      // When a reload last removed this key (it is listed again now): sessions that began before
      // then are over (session-verifier.ts), so this one must carry a later start even if the clock
      // has not passed the removal time (stepped back, or coarse) — else the re-added key is locked out.
      const removedBefore = allowlist.removedAt?.(client.fingerprint)

      // MAC: the challenge token must be ours and bind exactly the echoed fields.
      const plain = openTicket(ring.all(), TICKET_KIND.challenge, challenge.challengeToken)
      if (plain === undefined || plain.byteLength !== CHALLENGE_PLAINTEXT) {
        throw new AuthError('invalid_message', 'challenge token is not valid for this server')
      }
      const t2pre = transcript2pre(transcript1(requestFieldsOf(request)), challengeFieldsOf(challenge))
      // The key that signed message 2: still held (a rotation may have switched keys since).
      const keys = serverKeys()
      const presented = heldServerKey(keys, challenge.serverPublicKey)
      if (!constantTimeEqual(sha256(t2pre), plain.subarray(8, 40)) || presented === undefined) {
        throw new AuthError('invalid_message', 'echoed handshake fields do not match the challenge')
      }
      const expiresAtMs = readU64(plain, 0)
      if (now >= expiresAtMs) throw new AuthError('challenge_expired', 'the challenge expired; start a new handshake')

      const t3 = transcript3(transcript2(t2pre, challenge.challengeToken, challenge.certificate), challenge.signature, response.wire.timestamp, response.certificate)
      if (!verifyBytes(client.publicKey, signingInput(CONTEXT.clientResponse, t3), response.signature)) {
        throw new AuthError('invalid_signature', `signature by client ${client.fingerprint.slice(0, 16)}… does not verify`)
      }

      const epochText = plain.toString('base64url', EPOCH_AT, EPOCH_AT + EPOCH_SIZE)
      const inserted = await nonceStore.checkAndInsert(challenge.wire.server_nonce, expiresAtMs, epochText)
      if (inserted === 'stale') {
        plain.fill(0)
        throw new AuthError('challenge_expired', "the server's replay memory restarted after this challenge was issued; start a new handshake")
      }
      if (inserted === 'replay') throw new AuthError('replay_detected', 'this challenge was already used; start a new handshake')
      if (inserted === 'full') {
        throw new AuthError('server_busy', 'the server is handling too many handshakes; try again shortly', {
          retryAfter: Math.max(1, Math.ceil(challengeTtlMs / 1000)),
        })
      }

      // Removed again while the nonce store answered: no session (it could outlive a later re-add).
      if (allowlist.removedAt?.(client.fingerprint) !== removedBefore) {
        plain.fill(0)
        throw new AuthError('unknown_key', `client key ${client.fingerprint.slice(0, 16)}… was removed from the allowlist during the handshake`)
      }
      const cert = client.certificate
      if (isKeyRevoked(client.fingerprint, request.clientPublicKey) || (cert !== undefined && revocationReason(revocation, cert.caFingerprint, cert.serial, cert.keyId, client.fingerprint) !== undefined)) {
        plain.fill(0)
        throw new AuthError('unknown_key', `client key ${client.fingerprint.slice(0, 16)}… was revoked during the handshake`)
      }
      const issuedAt = removedBefore !== undefined && removedBefore >= now ? removedBefore + 1 : now
      const sessionKey = plain.subarray(KEYS_AT, KEYS_AT + SESSION_KEY_SIZE)
      const finishedKey = plain.subarray(KEYS_AT + SESSION_KEY_SIZE, EPOCH_AT)
      const replayEpoch = plain.subarray(EPOCH_AT)
      let sessionExpires = now + sessionTtlMs
      if (client.entry.notAfter !== undefined && client.entry.notAfter < sessionExpires) sessionExpires = client.entry.notAfter
      const sessionId = random(16)
      const token = b64u(
        encodeSessionTicket(
          ring.current(),
          { sessionId, clientFingerprint: client.fingerprint, sessionKey, issuedAt, expiresAt: sessionExpires, audience: request.audience, ...(cert === undefined ? {} : { certificate: cert }) },
          random,
          now,
        ),
      )
      if (token.length > MAX_TOKEN_LENGTH) {
        plain.fill(0)
        throw new AuthError('invalid_message', `a certified session's token would exceed ${MAX_TOKEN_LENGTH} characters; use a shorter audience`)
      }
      const timestamp = formatTimestamp(now)
      const expiresAt = formatTimestamp(sessionExpires)
      const t4 = transcript4(t3, response.signature, {
        sessionToken: token,
        expiresAt,
        clientFingerprint: client.fingerprint,
        serverFingerprint: presented.fingerprint,
        timestamp,
        replayEpoch,
      })
      const finished = finishedMac(finishedKey, t4)
      const update = serverKeyUpdateFor(keys, presented, t4)
      plain.fill(0)
      // Only a key in an agent makes this a promise: the in-process path takes no extra turn.
      const keyUpdate = update instanceof Promise ? await update : update
      return {
        message: {
          type: 'auth_complete',
          version: PROTOCOL_VERSION,
          success: true,
          session_token: token,
          expires_at: expiresAt,
          client_fingerprint: client.fingerprint,
          server_fingerprint: presented.fingerprint,
          timestamp,
          replay_epoch: epochText,
          finished: b64u(finished),
          ...(keyUpdate === undefined ? {} : { server_key_update: keyUpdate }),
        },
        clientFingerprint: client.fingerprint,
        entry: client.entry,
        sessionId: b64u(sessionId),
        expiresAt: sessionExpires,
        ...(cert === undefined ? {} : { certificate: cert }),
      }
    },
  }
}

/** The ticket key derived from the server's private seed; a key held elsewhere has none to give. */
function defaultTicketKey(key: ServerKey): TicketKey {
  if (key.privateKey === undefined) throw new TypeError('a server key that signs outside this process (ssh-agent) has no private seed to derive a ticket key from: pass ticketKeys')
  return deriveTicketKey(privateKeySeed(key.privateKey))
}

function seconds(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a positive number of seconds`)
  return value
}
