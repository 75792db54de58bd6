/**
 * The exact bytes each signature covers (docs/PROTOCOL.md §Transcript). Built from decoded
 * fields with 4-byte big-endian length prefixes, never from JSON text.
 *
 *   T1     = lp(version) lp(client_pk) lp(client_nonce) lp(client_eph) lp(ts1) lp(audience)
 *   T2pre  = T1 lp(server_pk) lp(server_nonce) lp(server_eph) lp(ts2) lp(expires_at)
 *   T2     = T2pre lp(challenge_token)
 *   T3     = T2 lp(sig2) lp(ts3)
 *   T4     = T3 lp(sig3) lp(SHA-256(session_token)) lp(expires_at4) lp(client_fp) lp(server_fp) lp(ts4)
 *   signed = lp(context) || SHA-256(Tn)
 * @module
 */
import { createHash } from 'node:crypto'
import { lp, utf8 } from '../internal/bytes.js'
import type { CONTEXT} from './constants.js';
import { PROTOCOL_VERSION } from './constants.js'
import type { AuthChallengeWire, AuthRequestWire } from './messages.js'

export interface RequestFields {
  clientPublicKey: Uint8Array
  clientNonce: Uint8Array
  clientEphemeral: Uint8Array
  /** The timestamp exactly as sent (RFC 3339 text). */
  timestamp: string
  audience: string
}

export interface ChallengeFields {
  serverPublicKey: Uint8Array
  serverNonce: Uint8Array
  serverEphemeral: Uint8Array
  timestamp: string
  expiresAt: string
}

export function transcript1(r: RequestFields): Buffer {
  return Buffer.concat([
    lp(utf8(PROTOCOL_VERSION)),
    lp(r.clientPublicKey),
    lp(r.clientNonce),
    lp(r.clientEphemeral),
    lp(utf8(r.timestamp)),
    lp(utf8(r.audience)),
  ])
}

export function transcript2pre(t1: Buffer, c: ChallengeFields): Buffer {
  return Buffer.concat([t1, lp(c.serverPublicKey), lp(c.serverNonce), lp(c.serverEphemeral), lp(utf8(c.timestamp)), lp(utf8(c.expiresAt))])
}

export function transcript2(t2pre: Buffer, challengeToken: Uint8Array): Buffer {
  return Buffer.concat([t2pre, lp(challengeToken)])
}

export function transcript3(t2: Buffer, serverSignature: Uint8Array, timestamp3: string): Buffer {
  return Buffer.concat([t2, lp(serverSignature), lp(utf8(timestamp3))])
}

export interface CompleteFields {
  sessionToken: string
  expiresAt: string
  clientFingerprint: string
  serverFingerprint: string
  timestamp: string
}

export function transcript4(t3: Buffer, clientSignature: Uint8Array, c: CompleteFields): Buffer {
  return Buffer.concat([
    t3,
    lp(clientSignature),
    lp(sha256(utf8(c.sessionToken))),
    lp(utf8(c.expiresAt)),
    lp(utf8(c.clientFingerprint)),
    lp(utf8(c.serverFingerprint)),
    lp(utf8(c.timestamp)),
  ])
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest()
}

/** The bytes handed to ed25519: lp(context) || SHA-256(transcript). */
export function signingInput(context: (typeof CONTEXT)[keyof typeof CONTEXT], transcript: Uint8Array): Buffer {
  return Buffer.concat([lp(utf8(context)), sha256(transcript)])
}

/** Rebuilds T1 from a wire message 1 (after parsing). */
export function requestFieldsOf(r: { clientPublicKey: Buffer; clientNonce: Buffer; clientEphemeral: Buffer; audience: string; wire: AuthRequestWire }): RequestFields {
  return { clientPublicKey: r.clientPublicKey, clientNonce: r.clientNonce, clientEphemeral: r.clientEphemeral, timestamp: r.wire.timestamp, audience: r.audience }
}

export function challengeFieldsOf(c: { serverPublicKey: Buffer; serverNonce: Buffer; serverEphemeral: Buffer; wire: AuthChallengeWire }): ChallengeFields {
  return { serverPublicKey: c.serverPublicKey, serverNonce: c.serverNonce, serverEphemeral: c.serverEphemeral, timestamp: c.wire.timestamp, expiresAt: c.wire.expires_at }
}
