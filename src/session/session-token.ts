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
import crypto, { createHash, createHmac } from 'node:crypto'
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

const hashOnce: ((algorithm: string, data: Uint8Array | string, encoding: 'buffer') => Buffer) | undefined = (
  crypto as unknown as { hash?: (a: string, d: Uint8Array | string, e: 'buffer') => Buffer }
).hash

export function bodyDigest(body: Uint8Array | string | undefined | null): Buffer {
  if (body === undefined || body === null || body.length === 0) return EMPTY_DIGEST
  return hashOnce !== undefined ? hashOnce('sha256', body, 'buffer') : createHash('sha256').update(body).digest()
}

// One scratch buffer for the MAC input: the proof is checked synchronously, so it is never shared.
let scratch = Buffer.allocUnsafe(1024)

/**
 * m = HMAC-SHA256(session_key, lp(context) lp(METHOD) lp(target) lp(body digest) lp(t) lp(n)),
 * built into one buffer and hashed with one update (the request hot path).
 */
export function computeProofMac(sessionKey: Uint8Array, p: ProofInput): Buffer {
  const method = p.method.toUpperCase()
  const ts = String(p.timestamp)
  const need = PROOF_CONTEXT.byteLength + 20 + Buffer.byteLength(method) + Buffer.byteLength(p.target) + p.bodyDigest.byteLength + ts.length + p.nonce.byteLength
  if (need > scratch.byteLength) scratch = Buffer.allocUnsafe(Math.max(need, scratch.byteLength * 2))
  const buf = scratch
  let o = PROOF_CONTEXT.copy(buf, 0)
  o = putString(buf, o, method)
  o = putString(buf, o, p.target)
  o = putBytes(buf, o, p.bodyDigest)
  o = putString(buf, o, ts)
  o = putBytes(buf, o, p.nonce)
  return createHmac('sha256', sessionKey).update(buf.subarray(0, o)).digest()
}

function putString(buf: Buffer, o: number, text: string): number {
  const n = buf.write(text, o + 4, 'utf8')
  buf.writeUInt32BE(n, o)
  return o + 4 + n
}

function putBytes(buf: Buffer, o: number, bytes: Uint8Array): number {
  buf.writeUInt32BE(bytes.byteLength, o)
  buf.set(bytes, o + 4)
  return o + 4 + bytes.byteLength
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
const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function canonicalTail(text: string, unusedBits: number): boolean {
  return (B64URL_ALPHABET.indexOf(text[text.length - 1]!) & unusedBits) === 0
}

export function parseRequestProof(header: string): ParsedProof | undefined {
  if (typeof header !== 'string' || header.length > 128) return undefined
  const m = PROOF_RE.exec(header.trim())
  if (m === null) return undefined
  // The regex fixed the alphabet and lengths; canonical encodings only (the nonce text keys the
  // replay store, so two spellings of one nonce must not both pass): unused low bits must be zero.
  if (!canonicalTail(m[2]!, 0x0f) || !canonicalTail(m[3]!, 0x03)) return undefined
  const nonce = Buffer.from(m[2]!, 'base64url')
  const mac = Buffer.from(m[3]!, 'base64url')
  if (nonce.byteLength !== PROOF_NONCE_SIZE || mac.byteLength !== 32) return undefined
  return { timestamp: Number(m[1]), nonce, nonceText: m[2]!, mac }
}
