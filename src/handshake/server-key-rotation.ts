/**
 * Server-key rotation inside the handshake (docs/PROTOCOL.md §15), both sides.
 *
 * Server: while it holds two keys (the retiring `from` and its successor `to`, one of which message 2
 * presents), message 4 carries `server_key_update`, signed by both keys over this handshake's T4
 * and both public keys.
 *
 * Client: a client that pinned one of the two keys accepts the other only through such an update
 * in the handshake it is running: both signatures verify over this handshake's transcript, and the
 * presented key and the pinned key are its two keys. A pin on `from` moves to `to` ({@link PinRotation});
 * any other update is ignored (and reported), and never changes the pin.
 * @module
 */
import { AuthError } from '../errors.js'
import { b64u } from '../internal/bytes.js'
import { fingerprintOf, publicKeyFromRaw, verifyBytes } from '../keys/key-pair.js'
import { weakEd25519KeyReason } from '../keys/point-check.js'
import { CONTEXT } from '../protocol/constants.js'
import { keyUpdateTranscript, type ServerKeyUpdate, type ServerKeyUpdateWire } from '../protocol/server-key-update.js'
import { signingInput } from '../protocol/transcript.js'
import { signWithServerKey, type ServerKey } from './server-key.js'

/** The keys a server holds at one instant (key pairs in this process, or keys in an agent). */
export interface ServerKeys<K extends ServerKey = ServerKey> {
  /** The key message 2 presents. */
  current: K
  /** During a rotation: the retiring key and its successor; `current` is one of the two. */
  rotation?: { from: K; to: K } | undefined
}

/** Read once per handshake message, so a server can move through a rotation while it runs. */
export type ServerKeySource<K extends ServerKey = ServerKey> = () => ServerKeys<K>

/** The key the server holds whose raw public key is `raw` (a challenge it issued before a switch), if any. */
export function heldServerKey<K extends ServerKey>(keys: ServerKeys<K>, raw: Uint8Array): K | undefined {
  const candidates = [keys.current, keys.rotation?.from, keys.rotation?.to]
  return candidates.find((k) => k !== undefined && k.publicKeyRaw.equals(raw))
}

/**
 * Message 4's `server_key_update` when the handshake's key (`presented`) is part of a rotation;
 * else undefined. A promise only when one of the two keys signs outside this process (an agent).
 */
export function serverKeyUpdateFor(keys: ServerKeys, presented: ServerKey, t4: Uint8Array): ServerKeyUpdateWire | undefined | Promise<ServerKeyUpdateWire> {
  const r = keys.rotation
  if (r === undefined || (presented !== r.from && presented !== r.to)) return undefined
  const tu = keyUpdateTranscript(t4, r.from.publicKeyRaw, r.to.publicKeyRaw)
  const fromSignature = signWithServerKey(r.from, signingInput(CONTEXT.serverKeyUpdate, tu))
  const toSignature = signWithServerKey(r.to, signingInput(CONTEXT.serverKeyProve, tu))
  const wire = (from: Buffer, to: Buffer): ServerKeyUpdateWire => ({
    from_public_key: b64u(r.from.publicKeyRaw),
    to_public_key: b64u(r.to.publicKeyRaw),
    from_signature: b64u(from),
    to_signature: b64u(to),
  })
  if (!(fromSignature instanceof Promise) && !(toSignature instanceof Promise)) return wire(fromSignature, toSignature)
  return Promise.all([fromSignature, toSignature]).then(([from, to]) => wire(from, to))
}

/** Both signatures of an update verify over TU (this handshake's T4 and the two keys). */
export function verifyServerKeyUpdate(t4: Uint8Array, u: ServerKeyUpdate): boolean {
  const tu = keyUpdateTranscript(t4, u.fromPublicKey, u.toPublicKey)
  try {
    return (
      verifyBytes(publicKeyFromRaw(u.fromPublicKey), signingInput(CONTEXT.serverKeyUpdate, tu), u.fromSignature) &&
      verifyBytes(publicKeyFromRaw(u.toPublicKey), signingInput(CONTEXT.serverKeyProve, tu), u.toSignature)
    )
  } catch {
    return false // a key that is not a usable ed25519 point
  }
}

/** A pinned server key that may move to its announced successor (client side). */
export interface PinRotation {
  /** The fingerprint pinned now. */
  pinned(): string
  /** A verified update names `to` as the successor of the pinned key: record it (may finish later; failures keep the old pin). */
  advance(change: { from: string; to: string; toPublicKeyRaw: Buffer }): void
  /** An update that was ignored, and why (logged; the pin is unchanged). */
  ignored(reason: string): void
}

/** Whether a refusal of the key in message 2 may wait for message 4's update (the key differs from the pin and the pin can rotate). */
export function mayAwaitKeyUpdate(rotation: PinRotation | undefined, err: unknown): boolean {
  return rotation !== undefined && err instanceof AuthError && err.code === 'server_key_mismatch'
}

export interface KeyUpdateContext {
  t4: Uint8Array
  /** Fingerprint of the key message 2 presented (and signed with). */
  presented: string
  update: ServerKeyUpdate | undefined
  /** Message 2's key was not the pin: the handshake stands only if the update links it to the pin. */
  provisional: boolean
}

/**
 * Judges message 4's update against the pin. Throws `server_key_mismatch` when message 2's key
 * was not the pin and no valid update links the two; otherwise never throws.
 */
export function settleServerKeyUpdate(rotation: PinRotation | undefined, c: KeyUpdateContext): void {
  const verdict = rotation === undefined ? undefined : judge(rotation.pinned(), c)
  if (verdict === 'advance') {
    const u = c.update!
    rotation!.advance({ from: fingerprintOf(u.fromPublicKey), to: fingerprintOf(u.toPublicKey), toPublicKeyRaw: u.toPublicKey })
    return
  }
  if (typeof verdict === 'string' && verdict !== 'keep') rotation!.ignored(verdict)
  if (c.provisional && verdict !== 'keep') {
    throw new AuthError(
      'server_key_mismatch',
      `server key ${c.presented} does not match the fingerprint pinned for this server (${rotation?.pinned() ?? '?'}) and the server did not prove a rotation from the pinned key; refusing to talk`,
    )
  }
}

/** 'advance' (move the pin to `to`), 'keep' (linked to the pin, nothing to change), a reason to ignore it, or undefined (no update). */
function judge(pin: string, c: KeyUpdateContext): string | undefined {
  const u = c.update
  if (u === undefined) return undefined
  const from = fingerprintOf(u.fromPublicKey)
  const to = fingerprintOf(u.toPublicKey)
  if (c.presented !== from && c.presented !== to) return 'the key update names neither key of this handshake'
  if (pin !== from && pin !== to) return `the key update (${from.slice(0, 16)}… → ${to.slice(0, 16)}…) does not involve the pinned key`
  // A small-order key "verifies" a fixed signature for every message: it proves nothing (point-check.ts).
  const weak = weakEd25519KeyReason(u.toPublicKey) ?? weakEd25519KeyReason(u.fromPublicKey)
  if (weak !== undefined) return `the key update names a key that is not usable (${weak})`
  if (!verifyServerKeyUpdate(c.t4, u)) return `the key update (${from.slice(0, 16)}… → ${to.slice(0, 16)}…) does not verify for this handshake`
  return pin === from ? 'advance' : 'keep'
}
