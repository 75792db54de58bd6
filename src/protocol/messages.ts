/**
 * The four handshake messages: wire types (snake_case), parsed types (decoded bytes) and strict
 * parsers. Every parser copies what it reads out of the untrusted value, rejects unknown fields,
 * checks base64url charset and exact decoded lengths, and throws AuthError('invalid_message') or
 * AuthError('unsupported_version') with a fixed message. No crypto runs here.
 * @module
 */
import { AuthError, type WireError } from '../errors.js'
import { fromB64u } from '../internal/bytes.js'
import { parseTimestamp } from '../internal/clock.js'
import { printable } from '../internal/text.js'
import { KEY_UPDATE_FIELD, parseServerKeyUpdate, type ServerKeyUpdate, type ServerKeyUpdateWire } from './server-key-update.js'
import { EPOCH_SIZE, MAX_AUDIENCE_BYTES, MAX_CERTIFICATE_CHARS, MAX_TOKEN_LENGTH, NONCE_SIZE, PROTOCOL_VERSION, X25519_KEY_SIZE } from './constants.js'

/** Message 1, client → server. */
export interface AuthRequestWire {
  type: 'auth_request'
  version: string
  client_public_key: string
  client_nonce: string
  client_ephemeral: string
  timestamp: string
  audience: string
}

/** Message 2, server → client. */
export interface AuthChallengeWire {
  type: 'auth_challenge'
  version: string
  server_public_key: string
  server_nonce: string
  server_ephemeral: string
  timestamp: string
  expires_at: string
  challenge_token: string
  signature: string
  /** Optional: base64url of the server's OpenSSH host certificate, covered by `signature` (docs/PROTOCOL.md §3). */
  certificate?: string
}

/** Message 3, client → server: echoes messages 1 and 2 so the server keeps no state. */
export interface AuthResponseWire {
  type: 'auth_response'
  version: string
  request: AuthRequestWire
  challenge: AuthChallengeWire
  timestamp: string
  signature: string
  /** Optional: base64url of the client's OpenSSH certificate, covered by `signature` (docs/PROTOCOL.md §3). */
  certificate?: string
}

/** Message 4, server → client. Authenticated by `finished`, a MAC under the session's finished key. */
export interface AuthCompleteWire {
  type: 'auth_complete'
  version: string
  success: true
  session_token: string
  expires_at: string
  client_fingerprint: string
  server_fingerprint: string
  timestamp: string
  /** The server's replay epoch: every request proof of this session names it. */
  replay_epoch: string
  finished: string
  /** Only during a server-key rotation (docs/PROTOCOL.md §15); absent otherwise. */
  server_key_update?: ServerKeyUpdateWire
}

/** Any failure, at any step. */
export interface AuthErrorWire {
  type: 'auth_error'
  version: string
  success: false
  error: WireError
  retry_after?: number
}

export interface AuthRequest {
  wire: AuthRequestWire
  clientPublicKey: Buffer
  clientNonce: Buffer
  clientEphemeral: Buffer
  timestamp: number
  audience: string
}

export interface AuthChallenge {
  wire: AuthChallengeWire
  serverPublicKey: Buffer
  serverNonce: Buffer
  serverEphemeral: Buffer
  timestamp: number
  expiresAt: number
  challengeToken: Buffer
  signature: Buffer
  /** The host certificate blob, when the server presented one (size-checked, not yet parsed). */
  certificate: Buffer | undefined
}

export interface AuthResponse {
  wire: AuthResponseWire
  request: AuthRequest
  challenge: AuthChallenge
  timestamp: number
  signature: Buffer
  /** The OpenSSH certificate blob, when the client presented one (size-checked, not yet parsed). */
  certificate: Buffer | undefined
}

export interface AuthComplete {
  wire: AuthCompleteWire
  sessionToken: string
  expiresAt: number
  clientFingerprint: string
  serverFingerprint: string
  timestamp: number
  replayEpoch: Buffer
  finished: Buffer
  serverKeyUpdate?: ServerKeyUpdate
}

function malformed(message: string): never {
  throw new AuthError('invalid_message', message)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

/** Copies exactly `fields` out of `value`; any other own key, or a missing one, is an error. */
function snapshot<K extends string>(value: unknown, label: string, fields: readonly K[]): Record<K, unknown> {
  if (!isPlainObject(value)) malformed(`${label} must be a JSON object`)
  const keys = Object.keys(value)
  if (keys.length !== fields.length) {
    const extra = keys.find((k) => !(fields as readonly string[]).includes(k))
    if (extra !== undefined) malformed(`${label} has an unknown field "${printable(extra.slice(0, 40))}"`)
  }
  const out = {} as Record<K, unknown>
  for (const f of fields) {
    if (!Object.prototype.hasOwnProperty.call(value, f)) malformed(`${label}.${f} is missing`)
    out[f] = value[f]
  }
  return out
}

function str(value: unknown, label: string, max: number): string {
  if (typeof value !== 'string') malformed(`${label} must be a string`)
  if (value.length === 0 || value.length > max) malformed(`${label} must be 1 to ${max} characters`)
  return value
}

function bytes(value: unknown, label: string, size: number): Buffer {
  const text = str(value, label, Math.ceil((size * 4) / 3) + 2)
  const buf = fromB64u(text)
  if (buf === undefined) malformed(`${label} must be unpadded base64url`)
  if (buf.byteLength !== size) malformed(`${label} must decode to ${size} bytes`)
  return buf
}

function blob(value: unknown, label: string, maxChars: number): Buffer {
  const text = str(value, label, maxChars)
  const buf = fromB64u(text)
  if (buf === undefined) malformed(`${label} must be unpadded base64url`)
  return buf
}

function time(value: unknown, label: string): number {
  const text = str(value, label, 24)
  const ms = parseTimestamp(text)
  if (ms === undefined) malformed(`${label} must be an RFC 3339 UTC timestamp with milliseconds`)
  return ms
}

function checkType(value: unknown, type: string, label: string): void {
  if (value !== type) malformed(`${label}.type must be "${type}"`)
}

function checkVersion(value: unknown): string {
  if (typeof value !== 'string') malformed('version must be a string')
  if (value !== PROTOCOL_VERSION) {
    throw new AuthError('unsupported_version', `unsupported protocol version; this server speaks ${PROTOCOL_VERSION}`)
  }
  return value
}

const HEX64 = /^[0-9a-f]{64}$/

const REQUEST_FIELDS = ['type', 'version', 'client_public_key', 'client_nonce', 'client_ephemeral', 'timestamp', 'audience'] as const
const CHALLENGE_FIELDS = [
  'type',
  'version',
  'server_public_key',
  'server_nonce',
  'server_ephemeral',
  'timestamp',
  'expires_at',
  'challenge_token',
  'signature',
] as const
const CHALLENGE_FIELDS_WITH_CERTIFICATE = [...CHALLENGE_FIELDS, 'certificate'] as const
const RESPONSE_FIELDS = ['type', 'version', 'request', 'challenge', 'timestamp', 'signature'] as const
const RESPONSE_FIELDS_WITH_CERTIFICATE = [...RESPONSE_FIELDS, 'certificate'] as const
const COMPLETE_FIELDS = [
  'type',
  'version',
  'success',
  'session_token',
  'expires_at',
  'client_fingerprint',
  'server_fingerprint',
  'timestamp',
  'replay_epoch',
  'finished',
] as const

/**
 * A protocol string (the audience): 1 to `maxBytes` bytes of UTF-8, well-formed UTF-16 (no lone
 * surrogate: two different lone surrogates encode to the same U+FFFD bytes, so the signed bytes would
 * not pin the text), and no C0 control, DEL or C1 control (U+0080–U+009F, e.g. CSI U+009B).
 */
export function protocolString(value: unknown, label: string, maxBytes: number): string {
  if (typeof value !== 'string') malformed(`${label} must be a string`)
  if (value.length === 0 || value.length > maxBytes) malformed(`${label} must be 1 to ${maxBytes} bytes of UTF-8`)
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) malformed(`${label} must not contain control characters`)
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1)
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) malformed(`${label} must be well-formed Unicode (it has a lone surrogate)`)
      i++
    }
  }
  if (Buffer.byteLength(value, 'utf8') > maxBytes) malformed(`${label} must be 1 to ${maxBytes} bytes of UTF-8`)
  return value
}

/** Parses message 1. */
export function parseAuthRequest(value: unknown, label = 'auth_request'): AuthRequest {
  const v = snapshot(value, label, REQUEST_FIELDS)
  checkType(v.type, 'auth_request', label)
  const version = checkVersion(v.version)
  const audience = protocolString(v.audience, `${label}.audience`, MAX_AUDIENCE_BYTES)
  const r: AuthRequest = {
    clientPublicKey: bytes(v.client_public_key, `${label}.client_public_key`, 32),
    clientNonce: bytes(v.client_nonce, `${label}.client_nonce`, NONCE_SIZE),
    clientEphemeral: bytes(v.client_ephemeral, `${label}.client_ephemeral`, X25519_KEY_SIZE),
    timestamp: time(v.timestamp, `${label}.timestamp`),
    audience,
    wire: undefined as unknown as AuthRequestWire,
  }
  r.wire = {
    type: 'auth_request',
    version,
    client_public_key: v.client_public_key as string,
    client_nonce: v.client_nonce as string,
    client_ephemeral: v.client_ephemeral as string,
    timestamp: v.timestamp as string,
    audience,
  }
  return r
}

/** Parses message 2. */
export function parseAuthChallenge(value: unknown, label = 'auth_challenge'): AuthChallenge {
  const withCertificate = isPlainObject(value) && Object.prototype.hasOwnProperty.call(value, 'certificate')
  const v = snapshot(value, label, withCertificate ? CHALLENGE_FIELDS_WITH_CERTIFICATE : CHALLENGE_FIELDS) as Record<(typeof CHALLENGE_FIELDS_WITH_CERTIFICATE)[number], unknown>
  checkType(v.type, 'auth_challenge', label)
  const version = checkVersion(v.version)
  const c: AuthChallenge = {
    serverPublicKey: bytes(v.server_public_key, `${label}.server_public_key`, 32),
    serverNonce: bytes(v.server_nonce, `${label}.server_nonce`, NONCE_SIZE),
    serverEphemeral: bytes(v.server_ephemeral, `${label}.server_ephemeral`, X25519_KEY_SIZE),
    timestamp: time(v.timestamp, `${label}.timestamp`),
    expiresAt: time(v.expires_at, `${label}.expires_at`),
    challengeToken: blob(v.challenge_token, `${label}.challenge_token`, MAX_TOKEN_LENGTH),
    signature: bytes(v.signature, `${label}.signature`, 64),
    certificate: withCertificate ? blob(v.certificate, `${label}.certificate`, MAX_CERTIFICATE_CHARS) : undefined,
    wire: undefined as unknown as AuthChallengeWire,
  }
  c.wire = {
    type: 'auth_challenge',
    version,
    server_public_key: v.server_public_key as string,
    server_nonce: v.server_nonce as string,
    server_ephemeral: v.server_ephemeral as string,
    timestamp: v.timestamp as string,
    expires_at: v.expires_at as string,
    challenge_token: v.challenge_token as string,
    signature: v.signature as string,
  }
  if (withCertificate) c.wire.certificate = v.certificate as string
  return c
}

/** Parses message 3 (including the echoed messages 1 and 2). */
export function parseAuthResponse(value: unknown, label = 'auth_response'): AuthResponse {
  const withCertificate = isPlainObject(value) && Object.prototype.hasOwnProperty.call(value, 'certificate')
  const v = snapshot(value, label, withCertificate ? RESPONSE_FIELDS_WITH_CERTIFICATE : RESPONSE_FIELDS) as Record<(typeof RESPONSE_FIELDS_WITH_CERTIFICATE)[number], unknown>
  checkType(v.type, 'auth_response', label)
  const version = checkVersion(v.version)
  const request = parseAuthRequest(v.request, `${label}.request`)
  const challenge = parseAuthChallenge(v.challenge, `${label}.challenge`)
  const timestamp = time(v.timestamp, `${label}.timestamp`)
  const signature = bytes(v.signature, `${label}.signature`, 64)
  // Size first (a text length), then strict base64url; the certificate is parsed only by the server's certificate check.
  const certificate = withCertificate ? blob(v.certificate, `${label}.certificate`, MAX_CERTIFICATE_CHARS) : undefined
  const wire: AuthResponseWire = { type: 'auth_response', version, request: request.wire, challenge: challenge.wire, timestamp: v.timestamp as string, signature: v.signature as string }
  if (certificate !== undefined) wire.certificate = v.certificate as string
  return { request, challenge, timestamp, signature, certificate, wire }
}

/** Parses a successful message 4. */
export function parseAuthComplete(value: unknown, label = 'auth_complete'): AuthComplete {
  // The one optional field: set aside, parsed after the rest (server-key-update.ts).
  let updateField: unknown
  const hasUpdate = isPlainObject(value) && Object.prototype.hasOwnProperty.call(value, KEY_UPDATE_FIELD)
  if (hasUpdate) {
    const { [KEY_UPDATE_FIELD]: field, ...rest } = value as Record<string, unknown>
    updateField = field
    value = rest
  }
  const v = snapshot(value, label, COMPLETE_FIELDS)
  checkType(v.type, 'auth_complete', label)
  const version = checkVersion(v.version)
  if (v.success !== true) malformed(`${label}.success must be true`)
  const sessionToken = str(v.session_token, `${label}.session_token`, MAX_TOKEN_LENGTH)
  if (fromB64u(sessionToken) === undefined) malformed(`${label}.session_token must be unpadded base64url`)
  const clientFingerprint = str(v.client_fingerprint, `${label}.client_fingerprint`, 64)
  const serverFingerprint = str(v.server_fingerprint, `${label}.server_fingerprint`, 64)
  if (!HEX64.test(clientFingerprint) || !HEX64.test(serverFingerprint)) malformed(`${label} fingerprints must be 64 lowercase hex characters`)
  const c: AuthComplete = {
    sessionToken,
    expiresAt: time(v.expires_at, `${label}.expires_at`),
    clientFingerprint,
    serverFingerprint,
    timestamp: time(v.timestamp, `${label}.timestamp`),
    replayEpoch: bytes(v.replay_epoch, `${label}.replay_epoch`, EPOCH_SIZE),
    finished: bytes(v.finished, `${label}.finished`, 32),
    wire: undefined as unknown as AuthCompleteWire,
  }
  c.wire = {
    type: 'auth_complete',
    version,
    success: true,
    session_token: sessionToken,
    expires_at: v.expires_at as string,
    client_fingerprint: clientFingerprint,
    server_fingerprint: serverFingerprint,
    timestamp: v.timestamp as string,
    replay_epoch: v.replay_epoch as string,
    finished: v.finished as string,
  }
  if (hasUpdate) {
    const update: ServerKeyUpdate = parseServerKeyUpdate(updateField, `${label}.${KEY_UPDATE_FIELD}`)
    c.serverKeyUpdate = update
    c.wire.server_key_update = update.wire
  }
  return c
}

/** Parses an auth_error message; returns undefined when `value` is not one. */
export function parseAuthError(value: unknown): AuthErrorWire | undefined {
  if (!isPlainObject(value) || value.type !== 'auth_error') return undefined
  const err = value.error
  if (!isPlainObject(err) || typeof err.code !== 'string' || typeof err.message !== 'string') return undefined
  const out: AuthErrorWire = {
    type: 'auth_error',
    version: typeof value.version === 'string' ? value.version.slice(0, 32) : PROTOCOL_VERSION,
    success: false,
    error: { code: err.code.slice(0, 64) as WireError['code'], message: printable(err.message.slice(0, 500)) },
  }
  if (typeof value.retry_after === 'number' && Number.isFinite(value.retry_after)) out.retry_after = value.retry_after
  return out
}

/**
 * Cheap pre-dispatch: the `type` of an untrusted message, or an invalid_message error.
 * Used by transports to route before the full parse.
 */
export function messageTypeOf(value: unknown): string {
  if (!isPlainObject(value)) malformed('message must be a JSON object')
  const t = value.type
  if (typeof t !== 'string') malformed('message.type must be a string')
  return t
}

/** Parses JSON text with a size cap (bytes) before parsing. */
export function parseJsonMessage(text: string | Buffer, maxBytes: number): unknown {
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength
  if (size > maxBytes) throw new AuthError('payload_too_large', `message is larger than ${maxBytes} bytes`)
  try {
    return JSON.parse(typeof text === 'string' ? text : text.toString('utf8')) as unknown
  } catch {
    malformed('message is not valid JSON')
  }
}
