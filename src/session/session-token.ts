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
import { createHash, timingSafeEqual } from 'node:crypto'
import { b64u, fromB64u, lp, readU64, utf8, writeU64 } from '../internal/bytes.js'
import { hashOnce, hmacInPlace, hmacPads, newPads, sha256Into, zeroPads, type HmacPads } from '../internal/hmac-sha256.js'
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
/** Bytes reserved in front of the MAC input for the HMAC inner pad (see hmacInPlace). */
const PAD = 64

export function bodyDigest(body: Uint8Array | string | undefined | null): Buffer {
  if (body === undefined || body === null || body.length === 0) return EMPTY_DIGEST
  return hashOnce !== undefined ? Buffer.from(hashOnce('sha256', body, 'latin1'), 'latin1') : createHash('sha256').update(body).digest()
}

// One scratch buffer for the MAC input (64 bytes for the HMAC inner pad, then the input): proofs are
// made and checked synchronously, so it is never shared. The pad bytes are zeroed after each use.
let scratch = Buffer.alloc(1024)
/** Key pads of the proof being made (client side, and computeProofMac); zeroed after each use. */
const padScratch = newPads()

/**
 * Writes the MAC input — lp(context) lp(METHOD) lp(target) lp(body digest) lp(t) lp(n) — into the
 * scratch buffer after the pad space; returns its end. The nonce is given as bytes or, on the
 * verifier, as its (canonical, 22-character) base64url text, decoded straight into place.
 */
function writeProofInput(method: string, target: string, digest: Uint8Array | undefined, body: Uint8Array | string | undefined | null, timestamp: number, nonce: Uint8Array | string): number {
  const m = method.toUpperCase()
  const ts = String(timestamp)
  // upper bound: at most 3 UTF-8 bytes per UTF-16 unit
  const need = PAD + PROOF_CONTEXT.byteLength + 24 + 3 * (m.length + target.length) + (digest?.byteLength ?? 32) + ts.length + (typeof nonce === 'string' ? PROOF_NONCE_SIZE : nonce.byteLength)
  if (need > scratch.byteLength) scratch = Buffer.alloc(Math.max(need, scratch.byteLength * 2))
  const buf = scratch
  buf.set(PROOF_CONTEXT, PAD)
  let o = PAD + PROOF_CONTEXT.byteLength
  o = putString(buf, o, m)
  o = putString(buf, o, target)
  if (digest !== undefined) o = putBytes(buf, o, digest)
  else if (body === undefined || body === null || body.length === 0) o = putBytes(buf, o, EMPTY_DIGEST)
  else {
    buf.writeUInt32BE(32, o)
    sha256Into(body, buf, o + 4)
    o += 36
  }
  o = putString(buf, o, ts)
  if (typeof nonce === 'string') {
    buf.writeUInt32BE(PROOF_NONCE_SIZE, o)
    if (buf.write(nonce, o + 4, 'base64url') !== PROOF_NONCE_SIZE) throw new RangeError('proof nonce must be 16 bytes')
    return o + 4 + PROOF_NONCE_SIZE
  }
  return putBytes(buf, o, nonce)
}

/**
 * m = HMAC-SHA256(session_key, lp(context) lp(METHOD) lp(target) lp(body digest) lp(t) lp(n)),
 * built into one buffer and hashed in place.
 */
export function computeProofMac(sessionKey: Uint8Array, p: ProofInput): Buffer {
  const pads = hmacPads(sessionKey, padScratch)
  const end = writeProofInput(p.method, p.target, p.bodyDigest, undefined, p.timestamp, p.nonce)
  const mac = hmacInPlace(pads, scratch, end, 'latin1')
  zeroPads(pads)
  return Buffer.from(mac, 'latin1')
}

/** The request being checked, as the verifier hot path passes it to {@link proofMacMatches}. */
export interface ProofCheck {
  method: string
  target: string
  body?: Uint8Array | string | null
  bodyDigest?: Uint8Array
}

const expected = Buffer.alloc(32)
const presented = Buffer.alloc(32)

/**
 * Internal (verifier hot path): whether `macText` (the proof's 43-character base64url MAC) is the
 * MAC of this request under the session whose {@link hmacPads} are `pads`. Compared in constant
 * time; no Buffer allocated per call. `nonceText` is the proof's 22-character base64url nonce.
 */
export function proofMacMatches(pads: HmacPads, req: ProofCheck, timestamp: number, nonceText: string, macText: string): boolean {
  const end = writeProofInput(req.method, req.target, req.bodyDigest, req.body, timestamp, nonceText)
  expected.write(hmacInPlace(pads, scratch, end, 'latin1'), 0, 'latin1')
  const ok = presented.write(macText, 0, 'base64url') === 32 && timingSafeEqual(expected, presented)
  expected.fill(0)
  return ok
}

function putString(buf: Buffer, o: number, text: string): number {
  // Short ASCII (methods, timestamps, most targets) copied by hand: cheaper than Buffer#write.
  const len = text.length
  if (len <= 256) {
    let i = 0
    for (; i < len; i++) {
      const c = text.charCodeAt(i)
      if (c > 0x7f) break
      buf[o + 4 + i] = c
    }
    if (i === len) {
      buf.writeUInt32BE(len, o)
      return o + 4 + len
    }
  }
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
  const pads = hmacPads(o.sessionKey, padScratch)
  const end = writeProofInput(o.method, o.target, undefined, o.body, timestamp, nonce)
  const mac = hmacInPlace(pads, scratch, end, 'base64url')
  zeroPads(pads)
  return `t=${timestamp}, n=${b64u(nonce)}, m=${mac}`
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

/**
 * Internal: the regex match of a well-formed, canonical proof header — [1] timestamp digits,
 * [2] nonce text (22 chars, 16 bytes), [3] MAC text (43 chars, 32 bytes) — or undefined.
 * Exactly the headers {@link parseRequestProof} accepts.
 */
export function matchRequestProof(header: string): RegExpExecArray | undefined {
  if (typeof header !== 'string' || header.length > 128) return undefined
  const m = PROOF_RE.exec(header.trim())
  if (m === null) return undefined
  // The regex fixed the alphabet and lengths; canonical encodings only (the nonce text keys the
  // replay store, so two spellings of one nonce must not both pass): unused low bits must be zero.
  if (!canonicalTail(m[2]!, 0x0f) || !canonicalTail(m[3]!, 0x03)) return undefined
  return m
}

export function parseRequestProof(header: string): ParsedProof | undefined {
  const m = matchRequestProof(header)
  if (m === undefined) return undefined
  const nonce = Buffer.from(m[2]!, 'base64url')
  const mac = Buffer.from(m[3]!, 'base64url')
  if (nonce.byteLength !== PROOF_NONCE_SIZE || mac.byteLength !== 32) return undefined
  return { timestamp: Number(m[1]), nonce, nonceText: m[2]!, mac }
}
