/**
 * Stateless `Mcp-Session-Id` bindings for the gateway: the id the client sees seals the upstream's
 * session id and the fingerprint of the key that opened the session. Any gateway holding the same
 * root key (a restarted one, or another member of a fleet) opens it, checks the caller's key and
 * forwards the upstream's id; nothing is kept in memory.
 *
 * Format: `g1.` + base64url(salt[16] ‖ AES-256-GCM(fingerprint[32] ‖ upstream id) ‖ tag[16]).
 * Every sealed id gets its own key and IV, derived with HKDF-SHA256 from the root key and a random
 * 128-bit salt (info {@link SESSION_ID_INFO}), so no random-IV bound per key applies: ids can be
 * sealed for as long as the root key lives. A header is size-limited and schema-checked before
 * any crypto runs.
 * @module
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto'

/** HKDF info: keys for sealed session ids, distinct from every other key derived from the root. */
export const SESSION_ID_INFO = 'mcp-pki-gateway session-id/1'
const PREFIX = 'g1.'
const SALT = 16
const FINGERPRINT = 32
const TAG = 16
/** Longest upstream session id sealed (the MCP spec asks for visible ASCII; UUIDs are 36). */
export const MAX_UPSTREAM_SESSION_ID = 256
/** Longest sealed id accepted: prefix + base64url of the largest sealed payload. */
const MAX_SEALED = PREFIX.length + Math.ceil(((SALT + FINGERPRINT + MAX_UPSTREAM_SESSION_ID + TAG) * 4) / 3)
const SEALED_RE = /^g1\.[A-Za-z0-9_-]+$/
const VISIBLE_ASCII_RE = /^[\x21-\x7e]+$/
const FINGERPRINT_RE = /^[0-9a-f]{64}$/

export interface SessionIdSealer {
  /** The id to give the client for the upstream's `upstreamId`, opened by `fingerprint`'s key. */
  seal(upstreamId: string, fingerprint: string): string
  /**
   * The upstream's id inside `sealed`, when it is well-formed, authentic and was sealed for
   * `fingerprint`; otherwise undefined (answer 404 as for an unknown session).
   */
  open(sealed: string, fingerprint: string): string | undefined
}

function derive(root: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  const okm = Buffer.from(hkdfSync('sha256', root, salt, SESSION_ID_INFO, 32 + 12))
  return { key: okm.subarray(0, 32), iv: okm.subarray(32) }
}

/**
 * A sealer under `rootKey` (32 bytes or more: the gateway passes `auth.ticket_key`, else its
 * server key's private seed).
 */
export function createSessionIdSealer(rootKey: Uint8Array): SessionIdSealer {
  if (!(rootKey instanceof Uint8Array) || rootKey.byteLength < 32) throw new RangeError('the session id root key must be at least 32 bytes')
  const root = Buffer.from(rootKey)
  const aad = Buffer.from(SESSION_ID_INFO)
  return {
    seal(upstreamId, fingerprint) {
      if (upstreamId.length > MAX_UPSTREAM_SESSION_ID || !VISIBLE_ASCII_RE.test(upstreamId)) {
        throw new RangeError(`an upstream session id must be 1 to ${MAX_UPSTREAM_SESSION_ID} visible ASCII characters`)
      }
      if (!FINGERPRINT_RE.test(fingerprint)) throw new TypeError('fingerprint must be 64 lowercase hex characters')
      const salt = randomBytes(SALT)
      const { key, iv } = derive(root, salt)
      const cipher = createCipheriv('aes-256-gcm', key, iv)
      cipher.setAAD(aad)
      const body = Buffer.concat([cipher.update(Buffer.from(fingerprint, 'hex')), cipher.update(upstreamId, 'latin1'), cipher.final(), cipher.getAuthTag()])
      key.fill(0)
      return PREFIX + Buffer.concat([salt, body]).toString('base64url')
    },
    open(sealed, fingerprint) {
      // Size and shape first: nothing else reaches the crypto.
      if (typeof sealed !== 'string' || sealed.length > MAX_SEALED || !SEALED_RE.test(sealed)) return undefined
      if (!FINGERPRINT_RE.test(fingerprint)) return undefined
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url')
      if (raw.byteLength < SALT + FINGERPRINT + 1 + TAG) return undefined
      const { key, iv } = derive(root, raw.subarray(0, SALT))
      const decipher = createDecipheriv('aes-256-gcm', key, iv)
      decipher.setAAD(aad)
      decipher.setAuthTag(raw.subarray(raw.byteLength - TAG))
      let plain: Buffer
      try {
        plain = Buffer.concat([decipher.update(raw.subarray(SALT, raw.byteLength - TAG)), decipher.final()])
      } catch {
        return undefined
      } finally {
        key.fill(0)
      }
      if (!timingSafeEqual(plain.subarray(0, FINGERPRINT), Buffer.from(fingerprint, 'hex'))) return undefined
      return plain.subarray(FINGERPRINT).toString('latin1')
    },
  }
}
