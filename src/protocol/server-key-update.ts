/**
 * The optional `server_key_update` field of message 4 (docs/PROTOCOL.md §15): a server that holds
 * two keys during a rotation (the old one and the new one, one of which message 2 presented) has
 * both sign this handshake, so a client that pinned either key learns, and can check, the other.
 *
 *   TU            = T4 lp(from_public_key) lp(to_public_key)
 *   from_signature = Sign_from(lp("mcp-pki/2 server-key-update") || H(TU))
 *   to_signature   = Sign_to(lp("mcp-pki/2 server-key-prove") || H(TU))
 *
 * Wire types, a strict parser and the transcript; no signing or verification here.
 * @module
 */
import { AuthError } from '../errors.js'
import { fromB64u } from '../internal/bytes.js'
import { printable } from '../internal/text.js'

/** The message 4 field name. */
export const KEY_UPDATE_FIELD = 'server_key_update'

export interface ServerKeyUpdateWire {
  /** The key being retired (raw ed25519, base64url). */
  from_public_key: string
  /** Its successor. */
  to_public_key: string
  /** By the `from` key, context `mcp-pki/2 server-key-update`, over TU. */
  from_signature: string
  /** By the `to` key, context `mcp-pki/2 server-key-prove`, over TU. */
  to_signature: string
}

export interface ServerKeyUpdate {
  wire: ServerKeyUpdateWire
  fromPublicKey: Buffer
  toPublicKey: Buffer
  fromSignature: Buffer
  toSignature: Buffer
}

const FIELDS = ['from_public_key', 'to_public_key', 'from_signature', 'to_signature'] as const

function malformed(message: string): never {
  throw new AuthError('invalid_message', message)
}

function bytes(value: unknown, label: string, size: number): Buffer {
  if (typeof value !== 'string' || value.length === 0 || value.length > Math.ceil((size * 4) / 3) + 2) malformed(`${label} must be a base64url string`)
  const buf = fromB64u(value)
  if (buf === undefined) malformed(`${label} must be unpadded base64url`)
  if (buf.byteLength !== size) malformed(`${label} must decode to ${size} bytes`)
  return buf
}

/** Parses `auth_complete.server_key_update`: exactly the four fields, keys 32 bytes, signatures 64, two different keys. */
export function parseServerKeyUpdate(value: unknown, label = `auth_complete.${KEY_UPDATE_FIELD}`): ServerKeyUpdate {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed(`${label} must be a JSON object`)
  const proto = Object.getPrototypeOf(value) as unknown
  if (proto !== Object.prototype && proto !== null) malformed(`${label} must be a JSON object`)
  const v = value as Record<string, unknown>
  for (const k of Object.keys(v)) if (!(FIELDS as readonly string[]).includes(k)) malformed(`${label} has an unknown field "${printable(k.slice(0, 40))}"`)
  for (const k of FIELDS) if (!Object.prototype.hasOwnProperty.call(v, k)) malformed(`${label}.${k} is missing`)
  const u: ServerKeyUpdate = {
    fromPublicKey: bytes(v.from_public_key, `${label}.from_public_key`, 32),
    toPublicKey: bytes(v.to_public_key, `${label}.to_public_key`, 32),
    fromSignature: bytes(v.from_signature, `${label}.from_signature`, 64),
    toSignature: bytes(v.to_signature, `${label}.to_signature`, 64),
    wire: {
      from_public_key: v.from_public_key as string,
      to_public_key: v.to_public_key as string,
      from_signature: v.from_signature as string,
      to_signature: v.to_signature as string,
    },
  }
  if (u.fromPublicKey.equals(u.toPublicKey)) malformed(`${label} names the same key twice`)
  return u
}

function lp(x: Uint8Array): Buffer {
  const len = Buffer.allocUnsafe(4)
  len.writeUInt32BE(x.byteLength, 0)
  return Buffer.concat([len, x])
}

/** TU = T4 lp(from_public_key) lp(to_public_key): this handshake, the audience and both keys. */
export function keyUpdateTranscript(t4: Uint8Array, fromPublicKey: Uint8Array, toPublicKey: Uint8Array): Buffer {
  return Buffer.concat([t4, lp(fromPublicKey), lp(toPublicKey)])
}
