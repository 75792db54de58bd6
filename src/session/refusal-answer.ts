/**
 * The authenticated refusal (docs/PROTOCOL.md §8): what tells a client "this request was refused
 * and did not run".
 *
 * A client that renewed its session and re-sent on an unauthenticated `401` could be made to run a
 * request twice by anyone on the path (plain HTTP): let the server execute the request, then answer
 * the client with a forged `session_expired`. So when the server refuses a request whose token it
 * opened and whose proof MAC it verified, it MACs its answer under the session key, over the error
 * code and the refused proof's MAC (which names exactly one request of one session):
 *
 *   MCP-PKI-Refusal: c=<error code>, m=<43 chars b64u>
 *   m = HMAC-SHA256(session_key, lp("mcp-pki/2 refusal") lp(code, ASCII) lp(refused proof's m, 32 bytes))
 *
 * `proof_stale` keeps its own answer (stale-answer.ts: it also carries the new epoch). The client
 * renews and re-sends only on a `session_expired` refusal that verifies (constant time) for the
 * proof it just sent; the server attests `session_expired` only for a proof that passed every
 * check, its sequence number now used, so that request never ran and never will.
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { fromB64u, lp, utf8 } from '../internal/bytes.js'
import { CONTEXT } from '../protocol/constants.js'
import { matchRequestProof } from './session-token.js'

/** An error code as it may appear in a refusal: lowercase ASCII letters and `_`, 1–32 characters. */
const CODE_RE = /^[a-z_]{1,32}$/
const REFUSAL_RE = /^c=([a-z_]{1,32}), ?m=([A-Za-z0-9_-]{43})$/
/** Longest `MCP-PKI-Refusal` value accepted (characters). */
export const MAX_REFUSAL_HEADER = 96

/** The MAC input: lp(context) lp(code) lp(refused proof MAC). */
export function refusalInput(code: string, refusedMac: Uint8Array): Buffer {
  if (!CODE_RE.test(code)) throw new RangeError('a refusal code is 1-32 characters of a-z and _')
  if (refusedMac.byteLength !== 32) throw new RangeError('the refused proof MAC must be 32 bytes')
  return Buffer.concat([lp(utf8(CONTEXT.refusal)), lp(utf8(code)), lp(refusedMac)])
}

/** HMAC-SHA256(session key, {@link refusalInput}). */
export function computeRefusalMac(sessionKey: Uint8Array, code: string, refusedMac: Uint8Array): Buffer {
  return createHmac('sha256', sessionKey).update(refusalInput(code, refusedMac)).digest()
}

/**
 * The `MCP-PKI-Refusal` value the server sends (server side): the code and the MAC binding it to
 * the refused proof (`refusedMacText`, that proof's 43-character `m`, already verified).
 */
export function refusalHeader(sessionKey: Uint8Array, code: string, refusedMacText: string): string {
  const refused = fromB64u(refusedMacText)
  if (refused === undefined) throw new RangeError('the refused MAC must be canonical base64url')
  return `c=${code}, m=${computeRefusalMac(sessionKey, code, refused).toString('base64url')}`
}

/**
 * Client side: the error code of a refusal whose `MCP-PKI-Refusal` MAC verifies under `sessionKey`
 * for the proof header `sentProof` this client just sent; else undefined (absent, forged, altered,
 * replayed from another request, or malformed: the caller must not re-send).
 */
export function verifiedRefusal(sessionKey: Uint8Array, sentProof: string, header: string | null | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > MAX_REFUSAL_HEADER) return undefined
  const m = REFUSAL_RE.exec(header.trim())
  const sent = matchRequestProof(sentProof)
  if (m === null || sent === undefined) return undefined
  const mac = fromB64u(m[2]!)
  const refused = fromB64u(sent[4]!)
  if (mac?.byteLength !== 32 || refused === undefined) return undefined
  const expected = computeRefusalMac(sessionKey, m[1]!, refused)
  return timingSafeEqual(expected, mac) ? m[1]! : undefined
}
