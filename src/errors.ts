/**
 * Error model. Every failure a caller can act on is an {@link AuthError} with a stable
 * string `code`. Caller misuse (wrong argument types, bad options) throws plain
 * `TypeError`/`RangeError` instead.
 *
 * The detailed code goes to the local caller and the audit log. What the peer sees is
 * {@link toWireError}: reasons that would let a stranger probe the allowlist
 * (`unknown_key`, `key_expired`, `invalid_signature` about the client) are folded into
 * `authentication_failed`; reasons an honest user must act on (clock skew, expired
 * challenge, busy, version) stay distinct.
 *
 * @module
 */
import { printable } from './internal/text.js'

/** Protocol error codes (docs/PROTOCOL.md §Errors). */
export const PROTOCOL_ERROR_CODES = [
  'invalid_message',
  'payload_too_large',
  'unsupported_version',
  'timestamp_skew',
  'unknown_key',
  'key_expired',
  'invalid_signature',
  'authentication_failed',
  'challenge_expired',
  'replay_detected',
  'server_busy',
  'rate_limited',
  'session_invalid',
  'session_expired',
  'session_revoked',
  'proof_missing',
  'proof_invalid',
  'proof_stale',
  'internal_error',
] as const

/** Local-only error codes: files, configuration, the client's own checks, transport. */
export const LOCAL_ERROR_CODES = [
  'key_file_invalid',
  'key_file_permissions',
  'key_file_exists',
  'allowlist_invalid',
  'allowlist_entry_exists',
  'allowlist_entry_not_found',
  'config_invalid',
  'server_key_unknown',
  'server_key_mismatch',
  'server_key_rejected',
  'transport_error',
  'transport_timeout',
] as const

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number]
export type LocalErrorCode = (typeof LOCAL_ERROR_CODES)[number]
export type AuthErrorCode = ProtocolErrorCode | LocalErrorCode

export interface AuthErrorOptions {
  cause?: unknown
  /** Seconds the caller should wait before retrying (server_busy, rate_limited). */
  retryAfter?: number
  /** For config/file errors: the config path or file path the problem is at. */
  path?: string
  /** For proof_stale: the server's current replay epoch (base64url, 8 bytes). */
  epoch?: string
  /**
   * For proof_stale: the value of the MCP-PKI-Epoch header, `e=<current replay epoch>, m=<MAC under
   * the session key>` (docs/PROTOCOL.md §6, src/session/stale-answer.ts).
   */
  epochHeader?: string
  /**
   * For a refusal of a request whose token opened and whose proof MAC verified: the value of the
   * MCP-PKI-Refusal header, `c=<code>, m=<MAC under the session key>` (docs/PROTOCOL.md §8,
   * src/session/refusal-answer.ts).
   */
  refusalHeader?: string
}

/** Base class of every error this package throws for bad input, peers or files. */
export class AuthError extends Error {
  readonly code: AuthErrorCode
  readonly retryAfter: number | undefined
  readonly path: string | undefined
  readonly epoch: string | undefined
  readonly epochHeader: string | undefined
  readonly refusalHeader: string | undefined

  constructor(code: AuthErrorCode, message: string, options: AuthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AuthError'
    this.code = code
    this.retryAfter = options.retryAfter
    this.path = options.path
    this.epoch = options.epoch
    this.epochHeader = options.epochHeader
    this.refusalHeader = options.refusalHeader
  }
}

/** Error raised while loading or validating configuration; `path` names the key (`auth.session_ttl`). */
export class ConfigError extends AuthError {
  readonly problems: readonly string[]
  constructor(message: string, problems: readonly string[] = [message], options: AuthErrorOptions = {}) {
    super('config_invalid', message, options)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export function isAuthError(value: unknown): value is AuthError {
  return value instanceof AuthError
}

const STATUS: Record<AuthErrorCode, number> = {
  invalid_message: 400,
  payload_too_large: 413,
  unsupported_version: 400,
  timestamp_skew: 401,
  unknown_key: 401,
  key_expired: 401,
  invalid_signature: 401,
  authentication_failed: 401,
  challenge_expired: 401,
  replay_detected: 401,
  server_busy: 503,
  rate_limited: 429,
  session_invalid: 401,
  session_expired: 401,
  session_revoked: 401,
  proof_missing: 401,
  proof_invalid: 401,
  proof_stale: 401,
  internal_error: 500,
  key_file_invalid: 500,
  key_file_permissions: 500,
  key_file_exists: 500,
  allowlist_invalid: 500,
  allowlist_entry_exists: 500,
  allowlist_entry_not_found: 500,
  config_invalid: 500,
  server_key_unknown: 500,
  server_key_mismatch: 500,
  server_key_rejected: 500,
  transport_error: 502,
  transport_timeout: 504,
}

/** HTTP status for an error code (400 malformed, 401 auth failed, 413, 429, 503, else 500). */
export function httpStatusFor(code: AuthErrorCode): number {
  return STATUS[code] ?? 500
}

const FOLDED: ReadonlySet<AuthErrorCode> = new Set(['unknown_key', 'key_expired', 'invalid_signature'])

const WIRE_MESSAGES: Partial<Record<ProtocolErrorCode, string>> = {
  authentication_failed: 'the server did not accept this client key or its signature',
  internal_error: 'internal error',
}

export interface WireError {
  code: ProtocolErrorCode
  message: string
}

/**
 * What the peer may see of an error: a stable code and a message with no secret in it.
 * Anything that is not an AuthError with a protocol code becomes `internal_error`.
 */
export function toWireError(err: unknown): WireError {
  if (err instanceof AuthError && (PROTOCOL_ERROR_CODES as readonly string[]).includes(err.code)) {
    if (FOLDED.has(err.code)) {
      return { code: 'authentication_failed', message: WIRE_MESSAGES.authentication_failed! }
    }
    // Its message is for the audit log (it may name a socket or a key file), never for the peer.
    if (err.code === 'internal_error') return { code: 'internal_error', message: WIRE_MESSAGES.internal_error! }
    // The message may quote the peer's text (an audience, a field name): nothing in it may act on a terminal.
    return { code: err.code as ProtocolErrorCode, message: printable(err.message) }
  }
  return { code: 'internal_error', message: WIRE_MESSAGES.internal_error! }
}
