/** Protocol constants (docs/PROTOCOL.md). @module */

export const PROTOCOL_VERSION = 'mcp-pki/2'

/** Domain-separation contexts: a signature or MAC made for one step is never valid at another. */
export const CONTEXT = {
  serverChallenge: 'mcp-pki/2 server-challenge',
  clientResponse: 'mcp-pki/2 client-response',
  serverFinished: 'mcp-pki/2 server-finished',
  requestProof: 'mcp-pki/2 request-proof',
  staleAnswer: 'mcp-pki/2 stale-answer',
  /** An authenticated refusal of a request whose token opened and whose proof MAC verified (§8). */
  refusal: 'mcp-pki/2 refusal',
  sessionKeys: 'mcp-pki/2 session-keys',
  ticketKey: 'mcp-pki/2 ticket-key',
  ticketKeyId: 'mcp-pki/2 ticket-key-id',
  sealKey: 'mcp-pki/2 seal-key',
  /** Server-key rotation (docs/PROTOCOL.md §15): the old key hands over to the new one. */
  serverKeyUpdate: 'mcp-pki/2 server-key-update',
  /** Server-key rotation: the new key proves it is held by this handshake's server. */
  serverKeyProve: 'mcp-pki/2 server-key-prove',
  clientCertificate: 'mcp-pki/2 client-certificate',
  serverCertificate: 'mcp-pki/2 server-certificate',
} as const

export const NONCE_SIZE = 32
export const X25519_KEY_SIZE = 32
export const SESSION_KEY_SIZE = 32
/** The replay epoch: 8 random bytes naming one life of a replay memory (docs/PROTOCOL.md §9). */
export const EPOCH_SIZE = 8
/** Audience: 1 to this many bytes of UTF-8. */
export const MAX_AUDIENCE_BYTES = 512
/** Kept for callers of v1: the audience limit (now in UTF-8 bytes). */
export const MAX_AUDIENCE_LENGTH = MAX_AUDIENCE_BYTES
export const MAX_TOKEN_LENGTH = 1024
/** Largest client certificate in message 3 (bytes; `ssh-keygen -s` writes 300–600). */
export const MAX_CERTIFICATE_BYTES = 8192
/** Its base64url text: at most this many characters. */
export const MAX_CERTIFICATE_CHARS = Math.ceil((MAX_CERTIFICATE_BYTES * 4) / 3)
/** Largest handshake message body accepted by default (bytes). */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024

/** HTTP header carrying the per-request proof. */
export const PROOF_HEADER = 'mcp-pki-proof'
/** HTTP header on a `proof_stale` answer: `e=<the server's current replay epoch>, m=<MAC under the session key>` (stale-answer.ts). */
export const EPOCH_HEADER = 'mcp-pki-epoch'
/** HTTP header on a refusal of a request whose proof verified: `c=<error code>, m=<MAC under the session key>` (refusal-answer.ts). */
export const REFUSAL_HEADER = 'mcp-pki-refusal'
/** Largest request sequence number (2^53 − 1). */
export const MAX_SEQUENCE = Number.MAX_SAFE_INTEGER

export const MESSAGE_TYPES = ['auth_request', 'auth_challenge', 'auth_response', 'auth_complete', 'auth_error'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]
