/** Protocol constants (docs/PROTOCOL.md). @module */

export const PROTOCOL_VERSION = 'mcp-pki/1'

/** Domain-separation contexts: a signature or MAC made for one step is never valid at another. */
export const CONTEXT = {
  serverChallenge: 'mcp-pki/1 server-challenge',
  clientResponse: 'mcp-pki/1 client-response',
  serverComplete: 'mcp-pki/1 server-complete',
  requestProof: 'mcp-pki/1 request-proof',
  sessionKey: 'mcp-pki/1 session-key',
  ticketKey: 'mcp-pki/1 ticket-key',
} as const

export const NONCE_SIZE = 32
export const X25519_KEY_SIZE = 32
export const SESSION_KEY_SIZE = 32
export const MAX_AUDIENCE_LENGTH = 512
export const MAX_TOKEN_LENGTH = 1024
/** Largest handshake message body accepted by default (bytes). */
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024

/** HTTP header carrying the per-request proof. */
export const PROOF_HEADER = 'mcp-pki-proof'
export const PROOF_NONCE_SIZE = 16

export const MESSAGE_TYPES = ['auth_request', 'auth_challenge', 'auth_response', 'auth_complete', 'auth_error'] as const
export type MessageType = (typeof MESSAGE_TYPES)[number]
