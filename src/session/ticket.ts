/**
 * Sealed tickets: the challenge token (message 2) and the session token (message 4) are
 * AES-256-GCM under a ticket key only the server (or its fleet) holds. The server keeps no
 * per-client state; any instance with the same ticket key can open them.
 *
 *   token = header(6) || iv(12) || ciphertext || tag(16)     header = 0x01 || kind || key_id(4)
 *   AAD   = header
 * @module
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes as randomBytesSync } from 'node:crypto'
import { CONTEXT } from '../protocol/constants.js'
import type { RandomSource } from '../internal/clock.js'

export const TICKET_KIND = { challenge: 0x01, session: 0x02 } as const
export type TicketKind = (typeof TICKET_KIND)[keyof typeof TICKET_KIND]

const FORMAT = 0x01
const HEADER = 6
const IV = 12
const TAG = 16

export interface TicketKey {
  /** 4-byte identifier derived from the key: lets a fleet rotate keys and accept the previous one. */
  readonly id: number
  readonly key: Buffer
}

/** Derives the ticket key from the server's ed25519 private seed (HKDF-SHA256). */
export function deriveTicketKey(serverSeed: Uint8Array): TicketKey {
  return ticketKeyFrom(Buffer.from(hkdfSync('sha256', serverSeed, Buffer.from('mcp-pki/1'), Buffer.from(CONTEXT.ticketKey), 32)))
}

/** Wraps a configured 32-byte fleet key. */
export function ticketKeyFrom(key: Uint8Array): TicketKey {
  if (key.byteLength !== 32) throw new RangeError('a ticket key is 32 bytes')
  const id = createHash('sha256').update('mcp-pki/1 ticket-key-id').update(key).digest().readUInt32BE(0)
  return { id, key: Buffer.from(key) }
}

/** Seals `plaintext` under the first key. */
export function sealTicket(key: TicketKey, kind: TicketKind, plaintext: Uint8Array, random: RandomSource): Buffer {
  const header = Buffer.allocUnsafe(HEADER)
  header[0] = FORMAT
  header[1] = kind
  header.writeUInt32BE(key.id, 2)
  const iv = random(IV)
  const cipher = createCipheriv('aes-256-gcm', key.key, iv)
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
    const decipher = createDecipheriv('aes-256-gcm', key.key, buf.subarray(HEADER, HEADER + IV))
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
    for (const k of keys) if (!kept.includes(k)) k.key.key.fill(0)
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
