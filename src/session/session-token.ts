/**
 * Session tokens (message 4) and per-request proofs.
 *
 * A session token is a sealed ticket (see ticket.ts) holding
 *   session_id(16) || client_fingerprint(32, raw SHA-256) || session_key(32) || issued_at(8) || expires_at(8)
 * Only the server can open it; only the client (who ran the X25519 exchange) knows the session key.
 *
 * Request proof header (`MCP-PKI-Proof`): `t=<ms since epoch>, n=<base64url 16 bytes>, m=<base64url HMAC>`
 *   m = HMAC-SHA256(session_key, lp("mcp-pki/1 request-proof") lp(METHOD) lp(target) lp(SHA-256(body)) lp(t) lp(n))
 * @module
 */
import { createHash, createHmac } from 'node:crypto'
import { b64u, fromB64u, lp, readU64, utf8, writeU64 } from '../internal/bytes.js'
import { systemClock, systemRandom, type Clock, type RandomSource } from '../internal/clock.js'
import { CONTEXT, PROOF_NONCE_SIZE } from '../protocol/constants.js'
import { openTicket, sealTicket, TICKET_KIND, type TicketKey } from './ticket.js'

export interface SessionTicket {
  sessionId: Buffer
  clientFingerprint: string
  sessionKey: Buffer
  issuedAt: number
  expiresAt: number
}

const SESSION_PLAINTEXT = 16 + 32 + 32 + 8 + 8

export function encodeSessionTicket(key: TicketKey, t: Omit<SessionTicket, 'sessionId'> & { sessionId: Uint8Array }, random: RandomSource): Buffer {
  const plain = Buffer.allocUnsafe(SESSION_PLAINTEXT)
  plain.set(t.sessionId, 0)
  plain.write(t.clientFingerprint, 16, 32, 'hex')
  plain.set(t.sessionKey, 48)
  writeU64(plain, t.issuedAt, 80)
  writeU64(plain, t.expiresAt, 88)
  const sealed = sealTicket(key, TICKET_KIND.session, plain, random)
  plain.fill(0)
  return sealed
}

/** Opens a session token; undefined when it is not one of ours or was altered. */
export function decodeSessionTicket(keys: readonly TicketKey[], token: string): SessionTicket | undefined {
  const raw = fromB64u(token)
  if (raw === undefined) return undefined
  const plain = openTicket(keys, TICKET_KIND.session, raw)
  if (plain === undefined || plain.byteLength !== SESSION_PLAINTEXT) return undefined
  return {
    sessionId: plain.subarray(0, 16),
    clientFingerprint: plain.toString('hex', 16, 48),
    sessionKey: plain.subarray(48, 80),
    issuedAt: readU64(plain, 80),
    expiresAt: readU64(plain, 88),
  }
}

export interface ProofInput {
  method: string
  /** Request target as sent: path plus query (`/mcp?x=1`). */
  target: string
  /** SHA-256 of the request body (empty body: SHA-256 of nothing). */
  bodyDigest: Uint8Array
  timestamp: number
  nonce: Uint8Array
}

const EMPTY_DIGEST = createHash('sha256').digest()
const PROOF_CONTEXT = lp(utf8(CONTEXT.requestProof))

export function bodyDigest(body: Uint8Array | string | undefined | null): Buffer {
  if (body === undefined || body === null || body.length === 0) return EMPTY_DIGEST
  return createHash('sha256').update(body).digest()
}

export function computeProofMac(sessionKey: Uint8Array, p: ProofInput): Buffer {
  return createHmac('sha256', sessionKey)
    .update(PROOF_CONTEXT)
    .update(lp(utf8(p.method.toUpperCase())))
    .update(lp(utf8(p.target)))
    .update(lp(p.bodyDigest))
    .update(lp(utf8(String(p.timestamp))))
    .update(lp(p.nonce))
    .digest()
}

export interface CreateProofOptions {
  sessionKey: Uint8Array
  method: string
  target: string
  body?: Uint8Array | string | null
  clock?: Clock
  random?: RandomSource
}

/** The value of the `MCP-PKI-Proof` header for one request (client side). */
export function createRequestProof(o: CreateProofOptions): string {
  const timestamp = (o.clock ?? systemClock)()
  const nonce = (o.random ?? systemRandom)(PROOF_NONCE_SIZE)
  const mac = computeProofMac(o.sessionKey, { method: o.method, target: o.target, bodyDigest: bodyDigest(o.body), timestamp, nonce })
  return `t=${timestamp}, n=${b64u(nonce)}, m=${b64u(mac)}`
}

export interface ParsedProof {
  timestamp: number
  nonce: Buffer
  nonceText: string
  mac: Buffer
}

const PROOF_RE = /^t=(\d{1,16}), ?n=([A-Za-z0-9_-]{22}), ?m=([A-Za-z0-9_-]{43})$/

/** Parses a proof header; undefined when malformed. */
export function parseRequestProof(header: string): ParsedProof | undefined {
  if (typeof header !== 'string' || header.length > 128) return undefined
  const m = PROOF_RE.exec(header.trim())
  if (m === null) return undefined
  const nonce = fromB64u(m[2]!)
  const mac = fromB64u(m[3]!)
  if (nonce === undefined || mac === undefined || nonce.byteLength !== PROOF_NONCE_SIZE || mac.byteLength !== 32) return undefined
  return { timestamp: Number(m[1]), nonce, nonceText: m[2]!, mac }
}
