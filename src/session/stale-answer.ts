/**
 * The authenticated `proof_stale` answer (docs/PROTOCOL.md §6).
 *
 * A `401 proof_stale` tells the client "your proof names an old replay epoch; here is the new one,
 * send the request again". A client that re-sent on an unauthenticated answer could be made to run
 * a request twice by anyone on the path (plain HTTP): let the server execute the request, then
 * answer the client with a forged `proof_stale`. So the server MACs its answer under the session
 * key, over the refused proof's MAC (which names exactly one request of one session) and the new
 * epoch:
 *
 *   MCP-PKI-Epoch: e=<new epoch, 11 chars b64u>, m=<43 chars b64u>
 *   m = HMAC-SHA256(session_key, lp("mcp-pki/2 stale-answer") lp(refused proof's m, 32 bytes) lp(new epoch, 8 bytes))
 *
 * The client re-sends only when this MAC verifies (constant time) for the proof it just sent.
 * @module
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { fromB64u, lp, utf8 } from '../internal/bytes.js'
import { CONTEXT, EPOCH_SIZE } from '../protocol/constants.js'
import { matchRequestProof } from './session-token.js'

const STALE_RE = /^e=([A-Za-z0-9_-]{11}), ?m=([A-Za-z0-9_-]{43})$/
/** Longest `MCP-PKI-Epoch` value accepted (characters). */
export const MAX_STALE_HEADER = 64

/** The MAC input: lp(context) lp(refused proof MAC) lp(new epoch). */
export function staleAnswerInput(refusedMac: Uint8Array, epoch: Uint8Array): Buffer {
  if (refusedMac.byteLength !== 32) throw new RangeError('the refused proof MAC must be 32 bytes')
  if (epoch.byteLength !== EPOCH_SIZE) throw new RangeError('replay epoch must be 8 bytes')
  return Buffer.concat([lp(utf8(CONTEXT.staleAnswer)), lp(refusedMac), lp(epoch)])
}

/** HMAC-SHA256(session key, {@link staleAnswerInput}). */
export function computeStaleAnswerMac(sessionKey: Uint8Array, refusedMac: Uint8Array, epoch: Uint8Array): Buffer {
  return createHmac('sha256', sessionKey).update(staleAnswerInput(refusedMac, epoch)).digest()
}

/**
 * The `MCP-PKI-Epoch` value the server sends with `proof_stale` (server side): the new epoch and
 * the MAC binding it to the refused proof (`refusedMacText`, that proof's 43-character `m`).
 */
export function staleAnswerHeader(sessionKey: Uint8Array, refusedMacText: string, epochText: string): string {
  const refused = fromB64u(refusedMacText)
  const epoch = fromB64u(epochText)
  if (refused === undefined || epoch === undefined) throw new RangeError('refused MAC and epoch must be canonical base64url')
  return `e=${epochText}, m=${computeStaleAnswerMac(sessionKey, refused, epoch).toString('base64url')}`
}

/**
 * Client side: the new epoch named by a `proof_stale` answer's `MCP-PKI-Epoch` value, when its MAC
 * verifies under `sessionKey` for the proof header `sentProof` this client just sent; else
 * undefined (a forged, altered, replayed or malformed answer, or one naming the epoch the sent
 * proof already named: the caller must not re-send).
 */
export function verifiedStaleEpoch(sessionKey: Uint8Array, sentProof: string, header: string | null | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > MAX_STALE_HEADER) return undefined
  const m = STALE_RE.exec(header.trim())
  const sent = matchRequestProof(sentProof)
  // A stale answer names another epoch than the refused proof did (else it would not be stale).
  if (m === null || sent === undefined || m[1] === sent[3]) return undefined
  const epoch = fromB64u(m[1]!)
  const mac = fromB64u(m[2]!)
  const refused = fromB64u(sent[4]!)
  if (epoch?.byteLength !== EPOCH_SIZE || mac?.byteLength !== 32 || refused === undefined) return undefined
  const expected = computeStaleAnswerMac(sessionKey, refused, epoch)
  return timingSafeEqual(expected, mac) ? m[1]! : undefined
}
