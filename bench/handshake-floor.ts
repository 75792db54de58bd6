/**
 * The floor of an mcp-pki/2 handshake over HTTP: a minimal server and client, node:crypto and
 * node:http only, that do the cryptography docs/PROTOCOL.md §3–§5 and §7 require of each side
 * per handshake, over two keep-alive POST round trips with JSON bodies of the real messages'
 * fields and sizes (base64url, RFC 3339 timestamps), and nothing else: no schema validation, no
 * timestamp windows, no audience check, no allowlist, no replay memory, no rate limit, no logging.
 * The one function taken from src/ is the curve check of the client key (keys/point-check.ts),
 * which the protocol mandates at message 1.
 *
 * Per handshake —
 *   server, M1: full point check of the client key; fresh X25519 key pair; X25519; H(T2pre);
 *     HKDF (session + finished key); AES-256-GCM seal of the challenge token (the seal key of the
 *     minute is cached, as src/session/ticket.ts does); H(T2) and an ed25519 signature.
 *   server, M3: AES-GCM open of the challenge token; H(T2pre) rebuilt from the echoes, compared
 *     with the token's; H(T3) and an ed25519 verification; H(client key) (its fingerprint);
 *     AES-GCM seal of the session token; H(token), H(T4) and the finished HMAC.
 *   client: fresh X25519 key pair (M1); on M2 H(T2) and an ed25519 verification, X25519, H(T2pre),
 *     HKDF, H(T3) and an ed25519 signature; on M4 H(token), H(T4), the finished HMAC and its
 *     constant-time compare.
 * Imported ed25519 public keys are cached by their text on both sides (a real server finds the
 * client's in its allowlist; the client pins the server's); ephemeral X25519 keys are imported
 * per handshake. Transcripts are exactly those of §4 (lp()-framed), built with Buffer.concat.
 * @module
 */
import { createCipheriv, createDecipheriv, createHmac, createPrivateKey, createPublicKey, diffieHellman, hash, hkdfSync, randomBytes, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { ed25519PublicKeyProblem } from '../src/keys/point-check.js'
import type { AuthChallengeWire, AuthCompleteWire, AuthRequestWire, AuthResponseWire } from '../src/protocol/messages.js'

const VERSION = 'mcp-pki/2'
const CTX = {
  challenge: 'mcp-pki/2 server-challenge',
  response: 'mcp-pki/2 client-response',
  finished: 'mcp-pki/2 server-finished',
  sessionKeys: 'mcp-pki/2 session-keys',
  ticketKey: 'mcp-pki/2 ticket-key',
  ticketKeyId: 'mcp-pki/2 ticket-key-id',
  sealKey: 'mcp-pki/2 seal-key',
}
const CHALLENGE_TTL_MS = 60_000
const SESSION_TTL_MS = 900_000
const KIND_CHALLENGE = 0x01
const KIND_SESSION = 0x02

// The wire messages of docs/PROTOCOL.md §3 (types only: nothing of src/ runs in the floor).
type M1 = AuthRequestWire
type M2 = AuthChallengeWire
type M3 = AuthResponseWire
type M4 = AuthCompleteWire

// ---------- encodings and transcripts (§2, §4) ----------

const b64 = (text: string): Buffer => Buffer.from(text, 'base64url')
const iso = (ms: number): string => new Date(ms).toISOString()
const sha256 = (data: Uint8Array): Buffer => hash('sha256', data, 'buffer')

/**
 * CSPRNG bytes sliced from 4 KiB blocks, each byte handed out once (as src/internal/clock.ts does):
 * one OpenSSL call per ~40 handshakes instead of ~5 µs for each small randomBytes.
 */
let randomPool = Buffer.alloc(0)
let randomOffset = 0
function random(n: number): Buffer {
  if (randomOffset + n > randomPool.byteLength) {
    randomPool = randomBytes(4096)
    randomOffset = 0
  }
  randomOffset += n
  return randomPool.subarray(randomOffset - n, randomOffset)
}

/** `head || lp(part) …`: 4-byte big-endian length, then the bytes (strings as UTF-8). */
function lp(head: Buffer | undefined, parts: readonly (Uint8Array | string)[]): Buffer {
  const list: Uint8Array[] = head === undefined ? [] : [head]
  for (const p of parts) {
    const bytes = typeof p === 'string' ? Buffer.from(p) : p
    const len = Buffer.allocUnsafe(4)
    len.writeUInt32BE(bytes.byteLength)
    list.push(len, bytes)
  }
  return Buffer.concat(list)
}

/** What ed25519 signs and the finished MAC covers: lp(context) || H(T). */
const sigin = (context: string, t: Buffer): Buffer => Buffer.concat([lp(undefined, [context]), sha256(t)])

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

/** T2pre from the wire messages 1 and 2 (binary fields decoded, timestamps as sent). */
function t2preOf(m1: M1, m2: Omit<M2, 'challenge_token' | 'signature'>): Buffer {
  const t1 = lp(undefined, [VERSION, b64(m1.client_public_key), b64(m1.client_nonce), b64(m1.client_ephemeral), m1.timestamp, m1.audience])
  return lp(t1, [b64(m2.server_public_key), b64(m2.server_nonce), b64(m2.server_ephemeral), m2.timestamp, m2.expires_at])
}

/** T3 = T2pre lp(challenge_token) lp(signature2) lp(ts3). */
const t3Of = (t2pre: Buffer, m2: M2, ts3: string): Buffer => lp(t2pre, [b64(m2.challenge_token), b64(m2.signature), ts3])

/** T4 = T3 lp(signature3) lp(H(session_token)) lp(expires_at4) lp(client_fp) lp(server_fp) lp(ts4) lp(epoch). */
function t4Of(t3: Buffer, sig3: Uint8Array, m4: Omit<M4, 'finished'>): Buffer {
  return lp(t3, [sig3, sha256(Buffer.from(m4.session_token)), m4.expires_at, m4.client_fingerprint, m4.server_fingerprint, m4.timestamp, b64(m4.replay_epoch)])
}

const finishedMac = (finishedKey: Buffer, t4: Buffer): Buffer => createHmac('sha256', finishedKey).update(sigin(CTX.finished, t4)).digest()

// ---------- keys (§5) ----------

const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex')

/** A fresh X25519 key pair from 32 random bytes: a JWK import (as src/handshake/common.ts, not generateKeyPairSync: see there). */
function x25519(seed: Buffer): { privateKey: KeyObject; publicRaw: Buffer } {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: seed.toString('base64url'), x: '' }, format: 'jwk' })
  return { privateKey, publicRaw: b64(privateKey.export({ format: 'jwk' }).x!) }
}

/** session_key || finished_key = HKDF(X25519(own, peer), H(T2pre), "mcp-pki/2 session-keys", 64). */
function sessionKeys(own: KeyObject, peerText: string, t2preHash: Buffer): Buffer {
  const peer = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerText }, format: 'jwk' })
  const shared = diffieHellman({ privateKey: own, publicKey: peer })
  if (shared.every((b) => b === 0)) throw new Error('floor: low-order X25519 key')
  return Buffer.from(hkdfSync('sha256', shared, t2preHash, CTX.sessionKeys, 64))
}

function ed25519FromSeed(seed: Buffer): { privateKey: KeyObject; publicRaw: Buffer; fingerprint: string } {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' })
  const publicRaw = b64(createPublicKey(privateKey).export({ format: 'jwk' }).x!)
  return { privateKey, publicRaw, fingerprint: sha256(publicRaw).toString('hex') }
}

/** Imported ed25519 public keys by their base64url text (a server's allowlist, a client's pin). */
function ed25519KeyCache(): (text: string) => KeyObject {
  const keys = new Map<string, KeyObject>()
  return (text) => {
    let k = keys.get(text)
    if (k === undefined) {
      if (keys.size >= 64) keys.clear()
      keys.set(text, (k = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: text }, format: 'jwk' })))
    }
    return k
  }
}

// ---------- sealed tickets (§5) ----------

interface Sealer {
  seal(kind: number, plain: Buffer, iv: Buffer, nowMs: number): Buffer
  /** The plaintext, or throws. */
  open(kind: number, token: Buffer): Buffer
}

/** AES-256-GCM tickets under the ticket key derived from the server seed; one seal key per minute, cached. */
function createSealer(serverSeed: Buffer): Sealer {
  const ticketKey = Buffer.from(hkdfSync('sha256', serverSeed, VERSION, CTX.ticketKey, 32))
  const keyId = sha256(Buffer.concat([Buffer.from(CTX.ticketKeyId), ticketKey])).readUInt32BE(0)
  const cache = new Map<number, Buffer>()
  const sealKey = (period: number): Buffer => {
    let k = cache.get(period)
    if (k === undefined) {
      if (cache.size >= 4) cache.clear()
      cache.set(period, (k = Buffer.from(hkdfSync('sha256', ticketKey, Buffer.alloc(0), Buffer.concat([Buffer.from(CTX.sealKey), u32(period)]), 32))))
    }
    return k
  }
  return {
    seal(kind, plain, iv, nowMs) {
      const period = Math.floor(nowMs / 60_000)
      const header = Buffer.concat([Buffer.from([0x02, kind]), u32(keyId), u32(period)])
      const c = createCipheriv('aes-256-gcm', sealKey(period), iv).setAAD(header)
      return Buffer.concat([header, iv, c.update(plain), c.final(), c.getAuthTag()])
    },
    open(kind, token) {
      if (token.byteLength < 39 || token[0] !== 0x02 || token[1] !== kind || token.readUInt32BE(2) !== keyId) throw new Error('floor: not our ticket')
      const d = createDecipheriv('aes-256-gcm', sealKey(token.readUInt32BE(6)), token.subarray(10, 22)).setAAD(token.subarray(0, 10))
      d.setAuthTag(token.subarray(token.byteLength - 16))
      return Buffer.concat([d.update(token.subarray(22, token.byteLength - 16)), d.final()])
    },
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32BE(n)
  return b
}

// ---------- server ----------

interface ServerState {
  key: ReturnType<typeof ed25519FromSeed>
  keyText: string
  sealer: Sealer
  epoch: Buffer
  clientKey: (text: string) => KeyObject
}

/** M1 → M2. */
function challengeFor(s: ServerState, m1: M1): M2 {
  if (ed25519PublicKeyProblem(b64(m1.client_public_key)) !== undefined) throw new Error('floor: client key is not a usable ed25519 point')
  const rnd = random(76) // server nonce (32) | ephemeral seed (32) | IV (12)
  const eph = x25519(rnd.subarray(32, 64))
  const now = Date.now()
  const head = { type: 'auth_challenge', version: VERSION, server_public_key: s.keyText, server_nonce: rnd.toString('base64url', 0, 32), server_ephemeral: eph.publicRaw.toString('base64url'), timestamp: iso(now), expires_at: iso(now + CHALLENGE_TTL_MS) } as const
  const t2pre = t2preOf(m1, head)
  const h = sha256(t2pre)
  const keys = sessionKeys(eph.privateKey, m1.client_ephemeral, h)
  const token = s.sealer.seal(KIND_CHALLENGE, Buffer.concat([u64(now + CHALLENGE_TTL_MS), h, keys, s.epoch]), rnd.subarray(64), now)
  const signature = sign(null, sigin(CTX.challenge, lp(t2pre, [token])), s.key.privateKey)
  return { ...head, challenge_token: token.toString('base64url'), signature: signature.toString('base64url') }
}

/** M3 → M4. */
function completeFor(s: ServerState, m3: M3): M4 {
  const { request: m1, challenge: m2 } = m3
  const plain = s.sealer.open(KIND_CHALLENGE, b64(m2.challenge_token))
  const t2pre = t2preOf(m1, m2)
  if (!timingSafeEqual(sha256(t2pre), plain.subarray(8, 40)) || m2.server_public_key !== s.keyText) throw new Error('floor: echoed fields do not match the challenge')
  const t3 = t3Of(t2pre, m2, m3.timestamp)
  const sig3 = b64(m3.signature)
  if (!verify(null, sigin(CTX.response, t3), s.clientKey(m1.client_public_key), sig3)) throw new Error('floor: client signature does not verify')
  const now = Date.now()
  const rnd = random(28) // session id (16) | IV (12)
  const clientFp = sha256(b64(m1.client_public_key))
  const sessionPlain = Buffer.concat([rnd.subarray(0, 16), clientFp, plain.subarray(40, 72), u64(now), u64(now + SESSION_TTL_MS), Buffer.from(m1.audience)])
  const m4 = {
    type: 'auth_complete', version: VERSION, success: true,
    session_token: s.sealer.seal(KIND_SESSION, sessionPlain, rnd.subarray(16), now).toString('base64url'),
    expires_at: iso(now + SESSION_TTL_MS), client_fingerprint: clientFp.toString('hex'), server_fingerprint: s.key.fingerprint,
    timestamp: iso(now), replay_epoch: plain.toString('base64url', 104, 112),
  } as const
  return { ...m4, finished: finishedMac(plain.subarray(72, 104), t4Of(t3, sig3, m4)).toString('base64url') }
}

function reply(s: ServerState, body: Buffer): { status: number; message: unknown } {
  try {
    const m = JSON.parse(body.toString('utf8')) as M1 | M3
    if (m.type === 'auth_request') return { status: 200, message: challengeFor(s, m) }
    if (m.type === 'auth_response') return { status: 200, message: completeFor(s, m) }
    return { status: 400, message: { type: 'auth_error', error: { message: 'unknown message type' } } }
  } catch (err) {
    return { status: 400, message: { type: 'auth_error', error: { message: err instanceof Error ? err.message : String(err) } } }
  }
}

/** Starts the floor server on 127.0.0.1; `onHandshake` is called for each message 4 sent. */
export async function startHandshakeFloor(o: { serverSeed: Buffer; onHandshake: () => void }): Promise<{ port: number; close: () => Promise<void> }> {
  const key = ed25519FromSeed(o.serverSeed)
  const s: ServerState = { key, keyText: key.publicRaw.toString('base64url'), sealer: createSealer(o.serverSeed), epoch: randomBytes(8), clientKey: ed25519KeyCache() }
  const server = http.createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r = reply(s, Buffer.concat(chunks))
      const text = JSON.stringify(r.message)
      res.writeHead(r.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) })
      res.end(text)
      if ((r.message as { type?: string }).type === 'auth_complete') o.onHandshake()
    })
  })
  server.maxConnections = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = (): Promise<void> => new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
  return { port: (server.address() as AddressInfo).port, close }
}

// ---------- client ----------

export interface FloorClientOptions {
  port: number
  /** The client's ed25519 seed and the server's pinned public key, base64url. */
  clientSeed: string
  serverPublicKey: string
  concurrency: number
}

interface ClientState {
  key: ReturnType<typeof ed25519FromSeed>
  keyText: string
  pinned: string
  serverFingerprint: string
  serverKey: (text: string) => KeyObject
  audience: string
}

/** Message 1 and what the client keeps for message 2. */
function start(c: ClientState): { m1: M1; eph: KeyObject } {
  const rnd = random(64) // client nonce (32) | ephemeral seed (32)
  const eph = x25519(rnd.subarray(32))
  const m1: M1 = { type: 'auth_request', version: VERSION, client_public_key: c.keyText, client_nonce: rnd.toString('base64url', 0, 32), client_ephemeral: eph.publicRaw.toString('base64url'), timestamp: iso(Date.now()), audience: c.audience }
  return { m1, eph: eph.privateKey }
}

/** M2 → M3, and what the client keeps for message 4. */
function respond(c: ClientState, m1: M1, eph: KeyObject, m2: M2): { m3: M3; t3: Buffer; sig3: Buffer; finishedKey: Buffer } {
  if (m2.server_public_key !== c.pinned) throw new Error('floor: server key is not the pinned one')
  const t2pre = t2preOf(m1, m2)
  if (!verify(null, sigin(CTX.challenge, lp(t2pre, [b64(m2.challenge_token)])), c.serverKey(m2.server_public_key), b64(m2.signature))) throw new Error('floor: server signature does not verify')
  const keys = sessionKeys(eph, m2.server_ephemeral, sha256(t2pre))
  const ts3 = iso(Date.now())
  const t3 = t3Of(t2pre, m2, ts3)
  const sig3 = sign(null, sigin(CTX.response, t3), c.key.privateKey)
  const m3: M3 = { type: 'auth_response', version: VERSION, request: m1, challenge: m2, timestamp: ts3, signature: sig3.toString('base64url') }
  return { m3, t3, sig3, finishedKey: keys.subarray(32) }
}

/** M4: the fingerprints are this run's keys and the finished MAC verifies. */
function finish(c: ClientState, kept: { t3: Buffer; sig3: Buffer; finishedKey: Buffer }, m4: M4): void {
  if (m4.client_fingerprint !== c.key.fingerprint || m4.server_fingerprint !== c.serverFingerprint) throw new Error('floor: message 4 names other keys')
  if (!timingSafeEqual(finishedMac(kept.finishedKey, t4Of(kept.t3, kept.sig3, m4)), b64(m4.finished))) throw new Error('floor: finished MAC does not verify')
}

/** A handshake function over a keep-alive agent with `concurrency` sockets. */
export function makeFloorClient(o: FloorClientOptions): { run: () => Promise<void>; close: () => void } {
  const key = ed25519FromSeed(b64(o.clientSeed))
  const c: ClientState = {
    key,
    keyText: key.publicRaw.toString('base64url'),
    pinned: o.serverPublicKey,
    serverFingerprint: sha256(b64(o.serverPublicKey)).toString('hex'),
    serverKey: ed25519KeyCache(),
    // what the real client sends by default: the origin of the URL
    audience: `http://127.0.0.1:${o.port}`,
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency })
  const post = <T>(message: unknown): Promise<T> => postJson<T>(agent, o.port, message)
  const run = async (): Promise<void> => {
    const { m1, eph } = start(c)
    const kept = respond(c, m1, eph, await post<M2>(m1))
    finish(c, kept, await post<M4>(kept.m3))
  }
  return { run, close: () => agent.destroy() }
}

function postJson<T>(agent: http.Agent, port: number, message: unknown): Promise<T> {
  const body = JSON.stringify(message)
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/auth', agent, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        if (res.statusCode === 200) resolve(JSON.parse(text) as T)
        else reject(new Error(`floor server answered ${String(res.statusCode)}: ${text}`))
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}
