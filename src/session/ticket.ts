/**
 * Sealed tickets: the challenge token (message 2) and the session token (message 4) are
 * AES-256-GCM under a key only the server (or its fleet) holds. The server keeps no
 * per-client state; any instance with the same ticket key can open them.
 *
 *   token    = header(10) || iv(12) || ciphertext || tag(16)
 *   header   = 0x02 || kind || key_id(u32) || period(u32)      AAD = header
 *   seal key = HKDF-SHA256(ikm = ticket key, salt = "", info = "mcp-pki/2 seal-key" || period(u32), 32)
 *   period   = floor(ms since epoch / 60,000) when sealed
 *
 * Usage bound: a seal key seals only during its one minute, so the 2^32 random-IV messages NIST
 * SP 800-38D allows per AES-GCM key (collision odds ≤ 2^-32) would take 71 million seals a second
 * under one ticket key — a server makes two per handshake and cannot reach a thousandth of that.
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes as randomBytesSync } from 'node:crypto'
import { CONTEXT, PROTOCOL_VERSION } from '../protocol/constants.js'
import type { RandomSource } from '../internal/clock.js'

export const TICKET_KIND = { challenge: 0x01, session: 0x02, certifiedSession: 0x03 } as const
export type TicketKind = (typeof TICKET_KIND)[keyof typeof TICKET_KIND]

const FORMAT = 0x02
const HEADER = 10
const PERIOD_MS = 60_000
const IV = 12
const TAG = 16

export interface TicketKey {
  /** 4-byte identifier derived from the key: lets a fleet rotate keys and accept the previous one. */
  readonly id: number
  readonly key: Buffer
}

/** Derives the ticket key from the server's ed25519 private seed (HKDF-SHA256). */
export function deriveTicketKey(serverSeed: Uint8Array): TicketKey {
  return ticketKeyFrom(Buffer.from(hkdfSync('sha256', serverSeed, Buffer.from(PROTOCOL_VERSION), Buffer.from(CONTEXT.ticketKey), 32)))
}

/** Wraps a configured 32-byte fleet key. */
export function ticketKeyFrom(key: Uint8Array): TicketKey {
  if (key.byteLength !== 32) throw new RangeError('a ticket key is 32 bytes')
  const id = createHash('sha256').update(CONTEXT.ticketKeyId).update(key).digest().readUInt32BE(0)
  return { id, key: Buffer.from(key) }
}

/** Seal keys by ticket key, then by period: a handful live at once (one per minute of the longest ticket). */
const sealKeys = new WeakMap<TicketKey, Map<number, Buffer>>()
const SEAL_KEY_CACHE = 64

/** The AES key of `key` for one period (derived once, then cached). */
export function sealKeyFor(key: TicketKey, period: number): Buffer {
  let byPeriod = sealKeys.get(key)
  if (byPeriod === undefined) sealKeys.set(key, (byPeriod = new Map()))
  let k = byPeriod.get(period)
  if (k === undefined) {
    const info = Buffer.allocUnsafe(SEAL_INFO.byteLength + 4)
    SEAL_INFO.copy(info, 0)
    info.writeUInt32BE(period, SEAL_INFO.byteLength)
    k = Buffer.from(hkdfSync('sha256', key.key, Buffer.alloc(0), info, 32))
    if (byPeriod.size >= SEAL_KEY_CACHE) {
      const oldest = byPeriod.keys().next().value as number
      byPeriod.get(oldest)?.fill(0)
      byPeriod.delete(oldest)
    }
    byPeriod.set(period, k)
  }
  return k
}

/** Zeroes a ticket key and every seal key derived from it (forgotten keys of a rotating ring). */
export function forgetTicketKey(key: TicketKey): void {
  for (const k of sealKeys.get(key)?.values() ?? []) k.fill(0)
  sealKeys.delete(key)
  key.key.fill(0)
}

const SEAL_INFO = Buffer.from(CONTEXT.sealKey)

/** The period a ticket sealed at `nowMs` carries. */
export function sealPeriod(nowMs: number): number {
  return Math.floor(nowMs / PERIOD_MS) >>> 0
}

/** Seals `plaintext` under the seal key of `key` for the period of `nowMs`. */
export function sealTicket(key: TicketKey, kind: TicketKind, plaintext: Uint8Array, random: RandomSource, nowMs: number): Buffer {
  const period = sealPeriod(nowMs)
  const header = Buffer.allocUnsafe(HEADER)
  header[0] = FORMAT
  header[1] = kind
  header.writeUInt32BE(key.id, 2)
  header.writeUInt32BE(period, 6)
  const iv = random(IV)
  const cipher = createCipheriv('aes-256-gcm', sealKeyFor(key, period), iv)
  cipher.setAAD(header)
  const ct = cipher.update(plaintext)
  cipher.final()
  return Buffer.concat([header, iv, ct, cipher.getAuthTag()])
}

/** Opens a ticket of `kind` with whichever key its id names; undefined on any failure. */
export function openTicket(keys: readonly TicketKey[], kind: TicketKind, token: Uint8Array): Buffer | undefined {
  if (token.byteLength < HEADER + IV + TAG + 1 || token[0] !== FORMAT || token[1] !== kind) return undefined
  const buf = Buffer.from(token.buffer, token.byteOffset, token.byteLength)
  const id = buf.readUInt32BE(2)
  const key = keys.find((k) => k.id === id)
  if (key === undefined) return undefined
  try {
    const decipher = createDecipheriv('aes-256-gcm', sealKeyFor(key, buf.readUInt32BE(6)), buf.subarray(HEADER, HEADER + IV))
    decipher.setAAD(buf.subarray(0, HEADER))
    decipher.setAuthTag(buf.subarray(buf.byteLength - TAG))
    const pt = decipher.update(buf.subarray(HEADER + IV, buf.byteLength - TAG))
    decipher.final()
    return pt
  } catch {
    return undefined
  }
}

/** The ticket keys in force: `current()` seals, `all()` open (current first). */
export interface TicketKeyRing {
  current(): TicketKey
  all(): readonly TicketKey[]
}

/** A fixed set of keys (derived from the server key, or a fleet key plus its predecessor). */
export function staticTicketKeys(keys: readonly TicketKey[]): TicketKeyRing {
  if (keys.length === 0) throw new RangeError('at least one ticket key is required')
  const list = [...keys]
  return { current: () => list[0]!, all: () => list }
}

export function isTicketKeyRing(value: unknown): value is TicketKeyRing {
  return typeof value === 'object' && value !== null && typeof (value as TicketKeyRing).current === 'function'
}

export interface RotatingTicketKeysOptions {
  /** Seconds between new random keys. */
  rotateEvery: number
  /** Seconds a key stays usable for opening after it stopped sealing (≥ the session lifetime). */
  keepFor: number
  clock?: () => number
  random?: RandomSource
}

/**
 * Random ticket keys that rotate and are then forgotten (zeroed): once a key is gone, nobody —
 * not even a thief of the server's long-term key — can open tokens sealed under it and recover
 * their session keys (forward secrecy). Keys live in this process only: after a restart, or on
 * another instance, earlier sessions are refused and clients authenticate again.
 */
export function rotatingTicketKeys(o: RotatingTicketKeysOptions): TicketKeyRing {
  if (!(o.rotateEvery > 0) || !(o.keepFor >= 0)) throw new RangeError('rotateEvery must be > 0 and keepFor >= 0')
  const clock = o.clock ?? Date.now
  const random = o.random ?? ((n: number) => randomBytesSync(n))
  let keys: { key: TicketKey; sealUntil: number }[] = []
  let list: TicketKey[] = []
  function refresh(): void {
    const now = clock()
    if (keys.length > 0 && now < keys[0]!.sealUntil) return
    keys.unshift({ key: ticketKeyFrom(random(32)), sealUntil: now + o.rotateEvery * 1000 })
    const kept = keys.filter((k, i) => i === 0 || now < k.sealUntil + o.keepFor * 1000)
    for (const k of keys) if (!kept.includes(k)) forgetTicketKey(k.key)
    keys = kept
    list = keys.map((k) => k.key)
  }
  return {
    current() {
      refresh()
      return list[0]!
    },
    all() {
      refresh()
      return list
    },
  }
}
