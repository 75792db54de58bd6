/**
 * The client side of the handshake: a pure object with no I/O. It proves the client's key,
 * checks that the server's key is one the client trusts (allowlist, pinned fingerprint, or a
 * trust-on-first-use decision), verifies both server signatures over the whole transcript, and
 * ends with the session token and the session key only the two parties know.
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { checkServerCertificate, type CertAuthorityLookup } from '../allowlist/cert-authority.js'
import type { KeyLookup } from '../allowlist/types.js'
import { AuthError, PROTOCOL_ERROR_CODES, type ProtocolErrorCode } from '../errors.js'
import { b64u, constantTimeEqual } from '../internal/bytes.js'
import { formatTimestamp, systemClock, systemRandom, type Clock, type RandomSource } from '../internal/clock.js'
import { assertUsableEd25519PublicKey } from '../keys/point-check.js'
import { fingerprintOf, publicKeyFromRaw, verifyBytes, type Ed25519KeyPair } from '../keys/key-pair.js'
import { CONTEXT, MAX_AUDIENCE_LENGTH, NONCE_SIZE, PROTOCOL_VERSION } from '../protocol/constants.js'
import {
  parseAuthChallenge,
  parseAuthComplete,
  parseAuthError,
  type AuthChallenge,
  type AuthRequestWire,
  type AuthResponseWire,
} from '../protocol/messages.js'
import { challengeFieldsOf, finishedMac, sha256, signingInput, transcript1, transcript2, transcript2pre, transcript3, transcript4, type RequestFields } from '../protocol/transcript.js'
import type { Signer } from '../keys/signer.js'
import { clientIdentity } from './client-identity.js'
import type { ProofSession } from '../session/session-token.js'
import { checkWindow, deriveSessionKeys, takeEphemeral, type Ephemeral, type EphemeralSource, type SessionKeys } from './common.js'
import { createPinnedServerKey, type PinnedServerKeyOptions } from './pinned-server-key.js'
import { mayAwaitKeyUpdate, settleServerKeyUpdate, type PinRotation } from './server-key-rotation.js'

/** What the client learned and holds after a successful handshake (a {@link ProofSession}). */
export interface ClientSession extends ProofSession {
  token: string
  /** Secret: signs every later request (createRequestProof). Never log it. */
  sessionKey: Buffer
  /** The server's replay epoch (base64url); replaced when the server answers `proof_stale`. */
  replayEpoch: string
  /** Server clock minus this clock (ms), from message 4: proofs are stamped in the server's clock. */
  clockOffsetMs: number
  /** The last request sequence number used. */
  lastSequence: number
  expiresAt: number
  clientFingerprint: string
  serverFingerprint: string
  serverPublicKey: KeyObject
  /** Allowlist metadata of the server, when it came from the client allowlist. */
  serverMetadata: Readonly<Record<string, unknown>> | undefined
}

/**
 * Decides whether to trust a server key. Returns the server's metadata (or undefined) when
 * trusted; throws AuthError (`server_key_unknown`, `server_key_mismatch`, `key_expired`,
 * `server_key_rejected`) when not.
 */
export type ServerTrust = ((fingerprint: string, publicKeyRaw: Buffer, certificate?: Buffer) => Promise<Readonly<Record<string, unknown>> | undefined> | Readonly<Record<string, unknown>> | undefined) & {
  /** A pin that may follow a server-key rotation proven in the handshake (server-key-rotation.ts). */
  readonly rotation?: PinRotation
}

export interface ServerTrustOptions {
  /** The client's allowlist of server keys (like ssh known_hosts). */
  allowlist?: KeyLookup
  /** Fingerprint pinned for this server in the client config; only this key is accepted. */
  pinnedFingerprint?: string | null
  /** Trust on first use: asked about a key that is not on the allowlist; true = trust (and remember). */
  onUnknownKey?: (fingerprint: string, publicKeyRaw: Buffer) => Promise<boolean> | boolean
  /**
   * A pinned fingerprint follows the server's key rotation (docs/PROTOCOL.md §15) unless this is
   * false; `persist` records the new pin (default: memory only), `log` reports changes.
   */
  keyRotation?: PinnedServerKeyOptions | false
  /**
   * The host name this client connects to: a server key that is not listed is trusted when message 2
   * carries an OpenSSH host certificate for it, listing this host, from a CA entry of `allowlist`
   * (like `@cert-authority` in known_hosts).
   */
  host?: string
  /** Clock skew allowed on the certificate's validity interval, seconds (default 300). */
  timestampTolerance?: number
  clock?: Clock
}

export function createServerTrust(o: ServerTrustOptions): ServerTrust {
  const clock = o.clock ?? systemClock
  const initial = o.pinnedFingerprint?.toLowerCase() ?? null
  const pin = initial === null || o.keyRotation === false ? undefined : createPinnedServerKey(initial, o.keyRotation ?? {})
  const trust = async (fingerprint: string, publicKeyRaw: Buffer, certificate?: Buffer): Promise<Readonly<Record<string, unknown>> | undefined> => {
    const pinned = pin?.pinned() ?? initial
    assertUsableEd25519PublicKey(publicKeyRaw, `server key ${fingerprint}`, { fast: true, code: 'server_key_rejected', fix: "refusing to talk; the server's operator must generate a new key with mcp-keygen" })
    if (pinned !== null && !constantTimeEqual(Buffer.from(pinned), Buffer.from(fingerprint))) {
      throw new AuthError('server_key_mismatch', `server key ${fingerprint} does not match the fingerprint pinned for this server (${pinned}); refusing to talk`)
    }
    if (o.allowlist !== undefined) {
      const found = o.allowlist.lookup(fingerprint, clock(), publicKeyRaw)
      if (found.status === 'ok') return found.entry.metadata
      if (found.status === 'expired') throw new AuthError('key_expired', `server key ${fingerprint} has an expired entry in the client allowlist`)
    }
    let refused = ''
    if (certificate !== undefined && o.host !== undefined && o.allowlist?.certAuthorities !== undefined && o.allowlist.certAuthorities().length > 0) {
      const r = checkServerCertificate(o.allowlist as CertAuthorityLookup, certificate, { now: clock(), toleranceSeconds: o.timestampTolerance ?? 300, host: o.host, subjectPublicKey: publicKeyRaw })
      if (r.ok) return Object.freeze({ ...r.authority.metadata, certificate: { ca: r.authority.fingerprint, serial: r.certificate.serial, key_id: r.certificate.keyId, host: o.host } })
      refused = `; its host certificate was refused (${r.code}: ${r.message})`
    }
    if (pinned !== null) return undefined
    if (o.onUnknownKey !== undefined && (await o.onUnknownKey(fingerprint, publicKeyRaw))) return undefined
    throw new AuthError(
      'server_key_unknown',
      `server key ${fingerprint} is not on the client allowlist${refused}; if you trust it, add it with: mcp-allowlist add --config <client config> --fingerprint ${fingerprint}`,
    )
  }
  return pin === undefined ? trust : Object.assign(trust, { rotation: pin })
}

export interface ClientHandshakeOptions {
  /** The client's key pair; or give `signer` (e.g. an ssh-agent key, keys/ssh-agent.ts) instead. */
  keyPair?: Ed25519KeyPair
  /** Signs message 3 when the private key is not in this process. */
  signer?: Signer
  /** An OpenSSH certificate for the client key (blob bytes), sent in message 3 and covered by its signature. */
  certificate?: Uint8Array
  /** The server identity or URL this client means to reach; bound into every signature. */
  audience: string
  serverTrust: ServerTrust
  timestampTolerance?: number
  clock?: Clock
  random?: RandomSource
  /** Ephemeral X25519 key pairs (default: fresh random ones). Inject only for reproducible test vectors. */
  ephemeral?: EphemeralSource
}

export interface ClientHandshake {
  /** Message 1. */
  start(): AuthRequestWire
  /** Message 2 (or an auth_error) → message 3. Throws AuthError. */
  handleChallenge(message: unknown): Promise<AuthResponseWire>
  /** Message 4 (or an auth_error) → the session. Throws AuthError. */
  handleComplete(message: unknown): ClientSession
}

/** Turns an auth_error message from the server into a local AuthError (or returns quietly). */
export function throwIfAuthError(message: unknown): void {
  const err = parseAuthError(message)
  if (err === undefined) return
  const code: ProtocolErrorCode = (PROTOCOL_ERROR_CODES as readonly string[]).includes(err.error.code) ? err.error.code : 'internal_error'
  throw new AuthError(code, `server refused: ${err.error.message}`, err.retry_after === undefined ? {} : { retryAfter: err.retry_after })
}

export function createClientHandshake(o: ClientHandshakeOptions): ClientHandshake {
  const identity = clientIdentity(o, o.certificate)
  if (typeof o.audience !== 'string' || o.audience.length === 0 || o.audience.length > MAX_AUDIENCE_LENGTH) {
    throw new TypeError(`audience must be a non-empty string of at most ${MAX_AUDIENCE_LENGTH} characters`)
  }
  if (typeof o.serverTrust !== 'function') throw new TypeError('serverTrust is required (createServerTrust)')
  const clock = o.clock ?? systemClock
  const random = o.random ?? systemRandom
  const toleranceMs = (o.timestampTolerance ?? 300) * 1000

  let step: 'new' | 'sent-request' | 'sent-response' | 'done' | 'failed' = 'new'
  let eph: Ephemeral | undefined
  let fields: RequestFields | undefined
  let t3: Buffer | undefined
  let sig3: Buffer | undefined
  let keys: SessionKeys | undefined
  let server: { fingerprint: string; publicKey: KeyObject; metadata: Readonly<Record<string, unknown>> | undefined } | undefined
  // Message 2's key is not the pin, but message 4 may prove a rotation between the two (server-key-rotation.ts).
  let awaitingKeyUpdate = false

  function expect(s: typeof step, what: string): void {
    if (step !== s) throw new AuthError('invalid_message', `handshake is not expecting ${what} now (state: ${step})`)
  }

  function fail(err: unknown): never {
    step = 'failed'
    keys?.sessionKey.fill(0)
    keys?.finishedKey.fill(0)
    throw err
  }

  return {
    start() {
      expect('new', 'to start')
      eph = (o.ephemeral ?? takeEphemeral)()
      const nonce = random(NONCE_SIZE)
      const timestamp = formatTimestamp(clock())
      fields = { clientPublicKey: identity.publicKeyRaw, clientNonce: nonce, clientEphemeral: eph.publicRaw, timestamp, audience: o.audience }
      step = 'sent-request'
      return {
        type: 'auth_request',
        version: PROTOCOL_VERSION,
        client_public_key: b64u(identity.publicKeyRaw),
        client_nonce: b64u(nonce),
        client_ephemeral: b64u(eph.publicRaw),
        timestamp,
        audience: o.audience,
      }
    },

    async handleChallenge(message) {
      expect('sent-request', 'a challenge')
      try {
        throwIfAuthError(message)
        const challenge: AuthChallenge = parseAuthChallenge(message)
        const now = clock()
        checkWindow(challenge.timestamp, now, toleranceMs, 'auth_challenge')
        // Expiry is judged in the server's clock (the server enforces it); comparing expires_at with
        // this clock would shrink the allowed skew to challenge_ttl.
        if (challenge.expiresAt <= challenge.timestamp) throw new AuthError('challenge_expired', 'the server sent a challenge that has already expired')
        const fingerprint = fingerprintOf(challenge.serverPublicKey)
        let metadata: Readonly<Record<string, unknown>> | undefined
        try {
          metadata = await o.serverTrust(fingerprint, challenge.serverPublicKey, challenge.certificate)
        } catch (err) {
          if (!mayAwaitKeyUpdate(o.serverTrust.rotation, err)) throw err
          awaitingKeyUpdate = true
        }
        const publicKey = serverKeyObject(challenge.wire.server_public_key, challenge.serverPublicKey)
        const t2pre = transcript2pre(transcript1(fields!), challengeFieldsOf(challenge))
        const t2 = transcript2(t2pre, challenge.challengeToken, challenge.certificate)
        if (!verifyBytes(publicKey, signingInput(CONTEXT.serverChallenge, t2), challenge.signature)) {
          throw new AuthError('invalid_signature', `the server's challenge signature does not verify for key ${fingerprint.slice(0, 16)}…`)
        }
        server = { fingerprint, publicKey, metadata }
        keys = deriveSessionKeys(eph!.privateKey, challenge.serverEphemeral, sha256(t2pre))
        const timestamp = formatTimestamp(clock())
        t3 = transcript3(t2, challenge.signature, timestamp, identity.certificate)
        sig3 = await identity.sign(signingInput(CONTEXT.clientResponse, t3))
        step = 'sent-response'
        const f = fields!
        return {
          type: 'auth_response',
          version: PROTOCOL_VERSION,
          request: {
            type: 'auth_request',
            version: PROTOCOL_VERSION,
            client_public_key: b64u(f.clientPublicKey),
            client_nonce: b64u(f.clientNonce),
            client_ephemeral: b64u(f.clientEphemeral),
            timestamp: f.timestamp,
            audience: f.audience,
          },
          challenge: challenge.wire,
          timestamp,
          signature: b64u(sig3),
          ...(identity.certificate === undefined ? {} : { certificate: b64u(identity.certificate) }),
        }
      } catch (err) {
        fail(err)
      }
    },

    handleComplete(message) {
      expect('sent-response', 'a completion')
      try {
        throwIfAuthError(message)
        const complete = parseAuthComplete(message)
        const srv = server!
        if (complete.clientFingerprint !== identity.fingerprint || complete.serverFingerprint !== srv.fingerprint) {
          throw new AuthError('invalid_message', 'auth_complete names other keys than the ones in this handshake')
        }
        const t4 = transcript4(t3!, sig3!, {
          sessionToken: complete.sessionToken,
          expiresAt: complete.wire.expires_at,
          clientFingerprint: complete.clientFingerprint,
          serverFingerprint: complete.serverFingerprint,
          timestamp: complete.wire.timestamp,
          replayEpoch: complete.replayEpoch,
        })
        // Key confirmation: only the holder of this exchange's ephemeral key (the server that signed
        // message 2) can derive the finished key.
        if (!constantTimeEqual(finishedMac(keys!.finishedKey, t4), complete.finished)) {
          throw new AuthError('invalid_signature', `the server's completion (finished MAC) does not verify for key ${srv.fingerprint.slice(0, 16)}…`)
        }
        keys!.finishedKey.fill(0)
        const receivedAt = clock()
        checkWindow(complete.timestamp, receivedAt, toleranceMs, 'auth_complete')
        settleServerKeyUpdate(o.serverTrust.rotation, { t4, presented: srv.fingerprint, update: complete.serverKeyUpdate, provisional: awaitingKeyUpdate })
        step = 'done'
        return {
          token: complete.sessionToken,
          sessionKey: keys!.sessionKey,
          replayEpoch: complete.wire.replay_epoch,
          clockOffsetMs: complete.timestamp - receivedAt,
          lastSequence: 0,
          expiresAt: complete.expiresAt,
          clientFingerprint: complete.clientFingerprint,
          serverFingerprint: srv.fingerprint,
          serverPublicKey: srv.publicKey,
          serverMetadata: srv.metadata,
        }
      } catch (err) {
        fail(err)
      }
    },
  }
}

/** Imported server keys by their base64url text: a client talks to few servers, many times. */
const serverKeys = new Map<string, KeyObject>()
function serverKeyObject(b64: string, raw: Uint8Array): KeyObject {
  let key = serverKeys.get(b64)
  if (key === undefined) {
    key = publicKeyFromRaw(raw)
    if (serverKeys.size >= 64) serverKeys.delete(serverKeys.keys().next().value!)
    serverKeys.set(b64, key)
  }
  return key
}
