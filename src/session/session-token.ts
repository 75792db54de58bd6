/**
 * Session tokens (message 4) and per-request proofs.
 *
 * A session token is a sealed ticket (see ticket.ts) holding
 *   session_id(16) || client_fingerprint(32, raw SHA-256) || session_key(32) || issued_at(8) || expires_at(8) || audience (UTF-8)
 * Only the server can open it; only the client (who ran the X25519 exchange) knows the session key.
 *
 * Request proof header (`MCP-PKI-Proof`): `t=<ms, server clock>, s=<sequence>, e=<replay epoch>, m=<HMAC>`
 *   m = HMAC-SHA256(session_key, lp("mcp-pki/2 request-proof") lp(SHA-256(token)) lp(epoch) lp(METHOD)
 *                                lp(target) lp(Mcp-Session-Id) lp(SHA-256(body)) lp(t) lp(s))
 * @module
 */
import { createHash } from 'node:crypto'
import { fromB64u, lp, readU64, utf8, writeU64 } from '../internal/bytes.js'
import { hashOnce, hmacInPlace, hmacPads, newPads, sha256Into, textEqualConstantTime, zeroPads, type HmacPads } from '../internal/hmac-sha256.js'
import { systemClock, type Clock, type RandomSource } from '../internal/clock.js'
import { CONTEXT, EPOCH_SIZE, MAX_SEQUENCE } from '../protocol/constants.js'
import { openTicket, sealTicket, TICKET_KIND, type TicketKey } from './ticket.js'

export interface SessionTicket {
  sessionId: Buffer
  clientFingerprint: string
  sessionKey: Buffer
  issuedAt: number
  expiresAt: number
  /** The audience the handshake was made for: every request is checked against it again. */
  audience: string
  /** Set when the client got in with an OpenSSH certificate (ticket kind 0x03) rather than an allowlist entry. */
  certificate?: SessionCertificate
}

/** What a certified session remembers of its certificate: enough to re-check CA and revocation per request. */
export interface SessionCertificate {
  /** Hex SHA-256 of the CA key. */
  caFingerprint: string
  /** The certificate serial (uint64, decimal). */
  serial: string
  /** Hex: the revocation id of the certificate's key id (certificateRevocationIds). */
  keyIdRevocationId: string
  /** The role the CA entry mapped (UTF-8, at most {@link MAX_CERTIFICATE_ROLE_BYTES} bytes); undefined = none. */
  role: string | undefined
}

const SESSION_FIXED = 16 + 32 + 32 + 8 + 8
/** ca_fingerprint(32) || serial(8) || key_id revocation id(32) || role length(1). */
const CERTIFIED_FIXED = 32 + 8 + 32 + 1
export const MAX_CERTIFICATE_ROLE_BYTES = 64

export function encodeSessionTicket(
  key: TicketKey,
  t: Omit<SessionTicket, 'sessionId'> & { sessionId: Uint8Array },
  random: RandomSource,
  nowMs: number,
): Buffer {
  const audienceBytes = Buffer.byteLength(t.audience, 'utf8')
  const c = t.certificate
  const role = c?.role === undefined ? Buffer.alloc(0) : Buffer.from(c.role, 'utf8')
  if (role.byteLength > MAX_CERTIFICATE_ROLE_BYTES) throw new RangeError(`a certified session's role is at most ${MAX_CERTIFICATE_ROLE_BYTES} bytes`)
  const extra = c === undefined ? 0 : CERTIFIED_FIXED + role.byteLength
  const plain = Buffer.allocUnsafe(SESSION_FIXED + extra + audienceBytes)
  plain.set(t.sessionId, 0)
  plain.write(t.clientFingerprint, 16, 32, 'hex')
  plain.set(t.sessionKey, 48)
  writeU64(plain, t.issuedAt, 80)
  writeU64(plain, t.expiresAt, 88)
  if (c !== undefined) {
    plain.write(c.caFingerprint, SESSION_FIXED, 32, 'hex')
    plain.writeBigUInt64BE(BigInt(c.serial), SESSION_FIXED + 32)
    plain.write(c.keyIdRevocationId, SESSION_FIXED + 40, 32, 'hex')
    plain[SESSION_FIXED + 72] = role.byteLength
    role.copy(plain, SESSION_FIXED + CERTIFIED_FIXED)
  }
  plain.write(t.audience, SESSION_FIXED + extra, 'utf8')
  const sealed = sealTicket(key, c === undefined ? TICKET_KIND.session : TICKET_KIND.certifiedSession, plain, random, nowMs)
  plain.fill(0)
  return sealed
}

/** Opens a session token; undefined when it is not one of ours or was altered. */
export function decodeSessionTicket(keys: readonly TicketKey[], token: string): SessionTicket | undefined {
  const raw = fromB64u(token)
  if (raw === undefined) return undefined
  const certified = raw[1] === TICKET_KIND.certifiedSession
  const plain = openTicket(keys, certified ? TICKET_KIND.certifiedSession : TICKET_KIND.session, raw)
  if (plain === undefined || plain.byteLength <= SESSION_FIXED) return undefined
  let audienceAt = SESSION_FIXED
  let certificate: SessionCertificate | undefined
  if (certified) {
    if (plain.byteLength <= SESSION_FIXED + CERTIFIED_FIXED) return undefined
    const roleLength = plain[SESSION_FIXED + 72]!
    audienceAt = SESSION_FIXED + CERTIFIED_FIXED + roleLength
    if (plain.byteLength <= audienceAt) return undefined
    certificate = {
      caFingerprint: plain.toString('hex', SESSION_FIXED, SESSION_FIXED + 32),
      serial: plain.readBigUInt64BE(SESSION_FIXED + 32).toString(),
      keyIdRevocationId: plain.toString('hex', SESSION_FIXED + 40, SESSION_FIXED + 72),
      role: roleLength === 0 ? undefined : plain.toString('utf8', SESSION_FIXED + CERTIFIED_FIXED, audienceAt),
    }
  }
  return {
    sessionId: plain.subarray(0, 16),
    clientFingerprint: plain.toString('hex', 16, 48),
    sessionKey: plain.subarray(48, 80),
    issuedAt: readU64(plain, 80),
    expiresAt: readU64(plain, 88),
    audience: plain.toString('utf8', audienceAt),
    ...(certificate === undefined ? {} : { certificate }),
  }
}

/** SHA-256 of the token text: what a proof binds (a proof is valid for exactly one session token). */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'latin1').digest()
}

/** What a proof covers besides the session key (docs/PROTOCOL.md §6). */
export interface ProofInput {
  /** SHA-256 of the session token text. */
  tokenDigest: Uint8Array
  /** The replay epoch (8 bytes) the proof names. */
  epoch: Uint8Array
  method: string
  /** Request target as sent: path plus query (`/mcp?x=1`). */
  target: string
  /** The `Mcp-Session-Id` header as sent ('' when absent). */
  mcpSessionId: string
  /** SHA-256 of the request body (empty body: SHA-256 of nothing). */
  bodyDigest: Uint8Array
  /** ms since the epoch, in the server's clock as the client estimates it. */
  timestamp: number
  sequence: number
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

/** The request side of a proof as the verifier hot path passes it: body bytes or their digest. */
export interface ProofCheck {
  method: string
  target: string
  /** The `Mcp-Session-Id` header ('' or undefined when absent). */
  mcpSessionId?: string | undefined
  body?: Uint8Array | string | null
  bodyDigest?: Uint8Array
}

/**
 * Writes the MAC input — lp(context) lp(H(token)) lp(epoch) lp(METHOD) lp(target) lp(mcp-session-id)
 * lp(body digest) lp(t) lp(s) — into the scratch buffer after the pad space; returns its end.
 * The epoch is given as bytes or, on the verifier, as its canonical 11-character base64url text.
 */
function writeProofInput(tokenHash: Uint8Array, epoch: Uint8Array | string, req: ProofCheck, timestamp: number | string, sequence: number | string): number {
  const m = req.method.toUpperCase()
  const sid = req.mcpSessionId ?? ''
  const ts = typeof timestamp === 'string' ? timestamp : String(timestamp)
  const seq = typeof sequence === 'string' ? sequence : String(sequence)
  // upper bound: at most 3 UTF-8 bytes per UTF-16 unit
  const need = PAD + PROOF_CONTEXT.byteLength + 36 + 12 + 36 + 3 * (m.length + req.target.length + sid.length) + 12 + ts.length + seq.length + 12
  if (need > scratch.byteLength) scratch = Buffer.alloc(Math.max(need, scratch.byteLength * 2))
  const buf = scratch
  buf.set(PROOF_CONTEXT, PAD)
  let o = PAD + PROOF_CONTEXT.byteLength
  o = putBytes(buf, o, tokenHash)
  o = putBytes(buf, o, typeof epoch === 'string' ? epochBytes(epoch) : epoch)
  o = putString(buf, o, m)
  o = putString(buf, o, req.target)
  o = putString(buf, o, sid)
  if (req.bodyDigest !== undefined) o = putBytes(buf, o, req.bodyDigest)
  else if (req.body === undefined || req.body === null || req.body.length === 0) o = putBytes(buf, o, EMPTY_DIGEST)
  else {
    buf.writeUInt32BE(32, o)
    sha256Into(req.body, buf, o + 4)
    o += 36
  }
  o = putString(buf, o, ts)
  return putString(buf, o, seq)
}

/** m = HMAC-SHA256(session_key, MAC input of §6), built into one buffer and hashed in place. */
export function computeProofMac(sessionKey: Uint8Array, p: ProofInput): Buffer {
  const pads = hmacPads(sessionKey, padScratch)
  const end = writeProofInput(p.tokenDigest, p.epoch, { method: p.method, target: p.target, mcpSessionId: p.mcpSessionId, bodyDigest: p.bodyDigest }, p.timestamp, p.sequence)
  const mac = hmacInPlace(pads, scratch, end, 'latin1')
  zeroPads(pads)
  return Buffer.from(mac, 'latin1')
}

/** The epoch whose bytes were decoded last: one epoch serves a whole process (or session) until its replay memory restarts. */
let lastEpochText = ''
let lastEpochBytes = Buffer.alloc(EPOCH_SIZE)

/** The 8 bytes of an epoch's base64url text (decoded once per epoch, not once per proof). */
function epochBytes(text: string): Buffer {
  if (text === lastEpochText) return lastEpochBytes
  const bytes = Buffer.from(text, 'base64url')
  if (bytes.byteLength !== EPOCH_SIZE) throw new RangeError('replay epoch must be 8 bytes')
  lastEpochText = text
  lastEpochBytes = bytes
  return bytes
}

/**
 * Internal (verifier hot path): whether `macText` (the proof's 43-character base64url MAC, which
 * {@link matchRequestProof} checked to be canonical) is the MAC of this request under the session
 * whose {@link hmacPads} are `pads`. `timestamp` and `sequence` as the header's canonical digits.
 * The expected MAC is made as base64url text and the two texts compared in constant time: for
 * canonical encodings equal text is equal bytes, and this skips two Buffer writes and a
 * `timingSafeEqual` call into C++ per request (docs/benchmarks.md, "tools/call").
 */
export function proofMacMatches(pads: HmacPads, tokenHash: Uint8Array, epochText: string, req: ProofCheck, timestamp: string, sequence: string, macText: string): boolean {
  const end = writeProofInput(tokenHash, epochText, req, timestamp, sequence)
  return textEqualConstantTime(hmacInPlace(pads, scratch, end, 'base64url'), macText)
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

/**
 * What a client keeps to make proofs for one session: the session key, the token's digest, the
 * server's replay epoch (it changes when the server's replay memory restarts: a `proof_stale`
 * answer names the new one), the offset from this clock to the server's, and the last sequence
 * number used. {@link ClientSession} is one.
 */
export interface ProofSession {
  readonly sessionKey: Uint8Array
  readonly token: string
  /** base64url of the 8-byte replay epoch; updated in place on `proof_stale`. */
  replayEpoch: string
  /** Server clock minus this clock, in ms, as measured at the handshake. */
  readonly clockOffsetMs: number
  /** The last sequence number used (the next proof uses one more). */
  lastSequence: number
}

export interface CreateProofOptions {
  session: ProofSession
  method: string
  target: string
  /** The request's `Mcp-Session-Id` header, if any. */
  mcpSessionId?: string | null
  body?: Uint8Array | string | null
  /** This machine's clock (the session's offset to the server's clock is added). */
  clock?: Clock
  /** The exact `t` to write (server clock), instead of the clock plus offset: test vectors and tests. */
  timestamp?: number
}

/**
 * What a client derives once per session for its proofs: the token's digest and the session key's
 * HMAC pads (as secret as the key, and kept exactly as long: with the session object). Recomputing
 * and zeroing the pads on every proof cost ~1.5 µs of a ~25 µs in-situ proof (docs/benchmarks.md).
 */
interface ProofKeys {
  token: string
  key: Uint8Array
  hash: Buffer
  pads: HmacPads
}

const proofKeys = new WeakMap<ProofSession, ProofKeys>()

function proofKeysOf(s: ProofSession): ProofKeys {
  const cached = proofKeys.get(s)
  if (cached !== undefined && cached.token === s.token && cached.key === s.sessionKey) return cached
  if (cached !== undefined) zeroPads(cached.pads)
  const keys: ProofKeys = { token: s.token, key: s.sessionKey, hash: tokenDigest(s.token), pads: hmacPads(s.sessionKey) }
  proofKeys.set(s, keys)
  return keys
}

/** The value of the `MCP-PKI-Proof` header for one request (client side); uses the session's next sequence number. */
export function createRequestProof(o: CreateProofOptions): string {
  const s = o.session
  const timestamp = o.timestamp ?? (o.clock ?? systemClock)() + s.clockOffsetMs
  return requestProof(s, o.method, o.target, o.mcpSessionId ?? '', o.body ?? null, timestamp)
}

/**
 * Internal: {@link createRequestProof} with positional arguments and `t` given (server clock), for
 * createAuthFetch's per-request path (no options object per request).
 */
export function requestProof(s: ProofSession, method: string, target: string, mcpSessionId: string, body: Uint8Array | string | null, timestamp: number): string {
  if (s.lastSequence >= MAX_SEQUENCE) throw new RangeError('this session has used every sequence number; authenticate again')
  const sequence = ++s.lastSequence
  const epoch = s.replayEpoch
  const keys = proofKeysOf(s)
  const end = writeProofInput(keys.hash, epoch, { method, target, mcpSessionId, body }, timestamp, sequence)
  const mac = hmacInPlace(keys.pads, scratch, end, 'base64url')
  return `t=${timestamp}, s=${sequence}, e=${epoch}, m=${mac}`
}

export interface ParsedProof {
  timestamp: number
  sequence: number
  epochText: string
  epoch: Buffer
  mac: Buffer
}

/** `t` and `s` are canonical decimals: no sign, no leading zero, at most 16 digits (and ≤ 2^53 − 1, checked after). */
const PROOF_RE = /^t=(0|[1-9]\d{0,15}), ?s=([1-9]\d{0,15}), ?e=([A-Za-z0-9_-]{11}), ?m=([A-Za-z0-9_-]{43})$/
/** Longest header accepted (characters, before trimming). */
export const MAX_PROOF_HEADER = 160

const B64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

function canonicalTail(text: string, unusedBits: number): boolean {
  return (B64URL_ALPHABET.indexOf(text[text.length - 1]!) & unusedBits) === 0
}

/**
 * Internal: the regex match of a well-formed, canonical proof header — [1] timestamp digits,
 * [2] sequence digits (1 … 2^53 − 1, no leading zero), [3] epoch text (11 chars, 8 bytes),
 * [4] MAC text (43 chars, 32 bytes) — or undefined. Exactly the headers {@link parseRequestProof} accepts.
 */
export function matchRequestProof(header: string): RegExpExecArray | undefined {
  if (typeof header !== 'string' || header.length > MAX_PROOF_HEADER) return undefined
  const m = PROOF_RE.exec(header.trim())
  if (m === null) return undefined
  // The regex fixed the alphabet and lengths; canonical encodings only: unused low bits must be zero.
  if (!canonicalTail(m[3]!, 0x03) || !canonicalTail(m[4]!, 0x03)) return undefined
  if (Number(m[2]) > MAX_SEQUENCE || Number(m[1]) > MAX_PROOF_TIMESTAMP) return undefined
  return m
}

/** The largest `t` accepted (2^53 − 1 ms; larger values do not survive a JavaScript number). */
export const MAX_PROOF_TIMESTAMP = Number.MAX_SAFE_INTEGER

const PROOF_FIELDS: ReadonlyArray<readonly [string, RegExp, string]> = [
  ['t', /^(0|[1-9]\d{0,15})$/, 'the time in ms as a canonical decimal: digits only, no sign, no leading zero, at most 16 digits, at most 2^53 - 1'],
  ['s', /^[1-9]\d{0,15}$/, 'the sequence number as a canonical decimal: 1 to 2^53 - 1, digits only, no sign, no leading zero'],
  ['e', /^[A-Za-z0-9_-]{10}[AEIMQUYcgkosw048]$/, 'the replay epoch: 11 characters of canonical unpadded base64url (8 bytes)'],
  ['m', /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/, 'the MAC: 43 characters of canonical unpadded base64url (32 bytes)'],
]

/**
 * Why `header` is not a well-formed proof header, in words for the client (only called on the
 * refusal path; {@link matchRequestProof} is the check). Names the first field at fault.
 */
export function proofHeaderProblem(header: string): string {
  if (typeof header !== 'string') return 'it must be a string'
  if (header.length > MAX_PROOF_HEADER) return `it is ${header.length} characters long; at most ${MAX_PROOF_HEADER} are accepted`
  const parts = header.trim().split(/, ?/)
  if (parts.length !== 4) return 'it must be exactly "t=<ms>, s=<sequence>, e=<epoch>, m=<mac>" (four fields, in this order, separated by "," or ", ")'
  for (const [i, [name, re, rule]] of PROOF_FIELDS.entries()) {
    const part = parts[i]!
    if (!part.startsWith(`${name}=`)) return `field ${i + 1} must be ${name}=...`
    const value = part.slice(2)
    if (!re.test(value) || ((name === 't' || name === 's') && Number(value) > Number.MAX_SAFE_INTEGER)) return `${name}= must be ${rule}`
  }
  return 'it must be exactly "t=<ms>, s=<sequence>, e=<epoch>, m=<mac>"'
}

export function parseRequestProof(header: string): ParsedProof | undefined {
  const m = matchRequestProof(header)
  if (m === undefined) return undefined
  return { timestamp: Number(m[1]), sequence: Number(m[2]), epochText: m[3]!, epoch: Buffer.from(m[3]!, 'base64url'), mac: Buffer.from(m[4]!, 'base64url') }
}
