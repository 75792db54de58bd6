/**
 * One actionable hint per client-side failure, shared by `mcp-auth-test` and `mcp-pki-proxy` (which
 * also sends it to the MCP app inside the JSON-RPC error).
 *
 * A hint says what is actually wrong and the command or setting that fixes it. Where the wire
 * protocol folds several causes into one code (`authentication_failed`: the server does not tell a
 * client whether its key is unknown, expired or revoked, so as not to help anyone probe its
 * allowlist), the hint names every possibility and points to the server's audit log, which records
 * the precise reason.
 * @module
 */
import { isAuthError, type AuthError } from '../../errors.js'
import { safeUrl } from '../../transport/http-client.js'
import { classifyNetworkError, describeNetworkError } from '../../transport/network-errors.js'

export interface HintContext {
  /** The client config file, as the user named it. */
  config: string
  /** The client's public key file (for the server operator's `mcp-allowlist add`). */
  publicKeyPath: string
  /** The handshake URL that was used. */
  url: string
  /** The MCP endpoint, for the proxy (to tell the two endpoints apart). */
  mcpUrl?: string
}

/** The message a handshake endpoint gives for an MCP message it cannot parse. */
const MCP_SENT_TO_AUTH = /message\.type must be a string/
/** What the handshake client says when it got a reply that is not a handshake message. */
const NOT_A_HANDSHAKE_REPLY = /auth_challenge has an unknown field|auth_challenge.*(missing|must be)|not an mcp-pki-auth|replied HTTP (401|404|405|406)/

/** `…/auth` on the URL's origin. */
function authUrlOf(url: string): string {
  try {
    return new URL('/auth', url).href
  } catch {
    return '<server>/auth'
  }
}

/**
 * The hint for an error from a handshake or an authenticated request, or undefined when there is
 * nothing to add to the message.
 */
export function hintFor(err: unknown, ctx: HintContext): string | undefined {
  if (isAuthError(err)) return hintForAuthError(err, ctx)
  const message = (err as Error | undefined)?.message ?? ''
  if (MCP_SENT_TO_AUTH.test(message)) return wrongEndpointHint(ctx, 'mcp-to-auth')
  if (ctx.mcpUrl !== undefined && httpStatusOf(err) === 404) {
    return `the server has no MCP endpoint at ${safeUrl(ctx.mcpUrl)}: check --server-url (the MCP endpoint is often …/mcp)`
  }
  if (message === 'fetch failed' || (err as { cause?: unknown } | undefined)?.cause !== undefined) {
    const info = classifyNetworkError(err)
    if (info.problem !== 'other') return transportHint(err, { ...ctx, url: ctx.mcpUrl ?? ctx.url })
  }
  return undefined
}

/** The HTTP status of an SDK transport error (`StreamableHTTPError.code`, or `(HTTP 404)` in its message). */
function httpStatusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code
  if (typeof code === 'number' && code >= 100 && code < 600) return code
  const m = /\(HTTP (\d{3})\)/.exec((err as Error | undefined)?.message ?? '')
  return m === null ? undefined : Number(m[1])
}

/** The error's message, with the network cause spelled out when it is only `fetch failed`, and the HTTP status. */
export function describeError(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  if (message === 'fetch failed') return `fetch failed: ${describeNetworkError(err)}`
  const status = httpStatusOf(err)
  return status === undefined || message.includes(`HTTP ${status}`) ? message : `${message} (HTTP ${status})`
}

function wrongEndpointHint(ctx: HintContext, which: 'auth-to-mcp' | 'mcp-to-auth'): string {
  if (which === 'auth-to-mcp') {
    return `${safeUrl(ctx.url)} did not answer with a handshake message: this is the MCP endpoint (or another path), not the handshake endpoint; use ${safeUrl(authUrlOf(ctx.url))} here, and give the MCP endpoint (…/mcp) to mcp-pki-proxy --server-url`
  }
  const mcp = ctx.mcpUrl === undefined ? 'the MCP URL' : safeUrl(ctx.mcpUrl)
  return `${mcp} is the handshake endpoint, not the MCP endpoint: give mcp-pki-proxy --server-url the MCP endpoint (usually …/mcp) and, if the handshake is elsewhere, --auth-url`
}

function hintForAuthError(err: AuthError, ctx: HintContext): string | undefined {
  const fp = /[0-9a-f]{64}/.exec(err.message)?.[0] ?? '<server fingerprint>'
  const retry = err.retryAfter !== undefined ? ` (the server asks to wait ${err.retryAfter} s)` : ''
  switch (err.code) {
    case 'authentication_failed':
      return (
        'the server refused this client key, and on the wire it does not say why: the key is not on its allowlist ' +
        `(the operator adds it: mcp-allowlist add --config <server config> --key-file ${ctx.publicKeyPath}), ` +
        'or its allowlist entry has expired (mcp-allowlist list shows EXPIRED; renew it with add --replace and a later "expires"), ' +
        'or the key is revoked (mcp-allowlist revoked; lift it with mcp-allowlist unrevoke), ' +
        `or your private key (keys.private_key_path in ${ctx.config}) is not the one whose public key the server has. The server's audit log records which`
      )
    case 'unknown_key':
      return `the server does not know this key: the operator adds it with mcp-allowlist add --config <server config> --key-file ${ctx.publicKeyPath}`
    case 'key_expired':
      return 'this key\'s allowlist entry has expired: the operator renews it with mcp-allowlist add --replace and a later "expires" in --metadata'
    case 'session_revoked':
      return 'the server revoked this key while the session was open: the operator lifts it with mcp-allowlist unrevoke (old sessions stay refused; a new handshake is needed)'
    case 'session_expired':
    case 'session_invalid':
      return 'the session ended or the server restarted: the next request runs a new handshake by itself (this one was not sent again unless the server authenticated its refusal, since it may have run); if this repeats, check the server log'
    case 'proof_missing':
    case 'proof_invalid':
    case 'proof_stale':
      return 'the server refused the per-request proof: something between you and the server may change requests (method, path or body), or the clocks differ; check any reverse proxy in between and the clocks'
    case 'server_key_unknown':
      return `the server's key is not on your allowlist: if you trust it, run mcp-allowlist add --config ${ctx.config} --fingerprint ${fp} (or pin it under servers: in ${ctx.config}, or enable acl.tofu)`
    case 'server_key_mismatch':
      return `the server presented another key than the fingerprint pinned under servers: in ${ctx.config}; if the server key was rotated on purpose, update the pin, otherwise you may not be talking to the real server`
    case 'server_key_rejected':
      return 'you declined to trust the server key; nothing was sent after the first message'
    case 'timestamp_skew':
      return 'the clocks of client and server differ by more than auth.timestamp_tolerance: check both clocks (NTP)'
    case 'challenge_expired':
      return "the handshake took longer than the server's auth.challenge_ttl: check network latency and the clocks"
    case 'server_busy':
      return `the server is overloaded or its replay store is full or unavailable: retry later${retry}`
    case 'rate_limited':
      return `too many handshakes from this address or key: slow down and retry later${retry}`
    case 'transport_error':
      return transportHint(err, ctx)
    case 'transport_timeout':
      return `no answer in time from ${safeUrl(ctx.url)}: is the server reachable and not overloaded? raise the timeout if the network is slow`
    case 'invalid_signature':
      return "a signature from the server did not verify: the server's key changed or something between you and the server altered the messages"
    case 'unsupported_version':
      return 'client and server speak different protocol versions: upgrade the older side'
    case 'replay_detected':
      return 'the server saw a message twice: retry; if it persists, something between you and the server replays traffic'
    case 'invalid_message':
      if (NOT_A_HANDSHAKE_REPLY.test(err.message)) return wrongEndpointHint(ctx, 'auth-to-mcp')
      if (MCP_SENT_TO_AUTH.test(err.message)) return wrongEndpointHint(ctx, 'mcp-to-auth')
      return `the server did not accept the message: check that ${safeUrl(ctx.url)} is an mcp-pki-auth handshake endpoint and that auth.audience matches`
    case 'payload_too_large':
      return 'the server refused the message size: check transport.max_body_size on the server'
    case 'internal_error':
      return 'the server failed while handling the handshake: check its logs'
    case 'key_file_permissions':
      return 'fix the permissions of your private key file (chmod 600)'
    default:
      return undefined
  }
}

function transportHint(err: unknown, ctx: HintContext): string {
  const where = safeUrl(ctx.url)
  const message = (err as Error | undefined)?.message ?? ''
  if (NOT_A_HANDSHAKE_REPLY.test(message)) return wrongEndpointHint(ctx, 'auth-to-mcp')
  const info = classifyNetworkError((err as { cause?: unknown } | undefined)?.cause ?? err)
  switch (info.problem) {
    case 'tls_to_plain_http':
      return `the server at ${where} speaks plain http on that port: use ${where.replace(/^https:/, 'http:')} (or give the server transport.ssl.cert_file and key_file)`
    case 'tls_untrusted':
      return `the server's TLS certificate is not trusted: set transport.ssl.ca_file in ${ctx.config} to the CA certificate that signed it (for a self-signed certificate, the certificate itself)`
    case 'tls_wrong_host':
      return `the server's TLS certificate does not name the host in ${where}: connect with a name it lists (openssl x509 -in server.crt -noout -ext subjectAltName) or reissue it with this one`
    case 'tls_certificate_dates':
      return "the server's TLS certificate is expired or not yet valid: renew it on the server, or check this machine's clock"
    case 'tls_client_certificate':
      return `the server requires a TLS client certificate (transport.ssl.verify_mode: required): set transport.ssl.cert_file and key_file in ${ctx.config} to a certificate signed by the CA in the server's transport.ssl.ca_file`
    case 'tls_other':
      return `the TLS handshake with ${where} failed: check the server's transport.ssl settings and that the URL's scheme and port are right`
    case 'host_not_found':
      return `the host name in ${where} does not resolve: check the URL`
    case 'reset':
      // TLS 1.3 servers check the client certificate after the handshake and just close.
      return where.startsWith('https:')
        ? `the server closed the connection right after TLS: it probably requires a TLS client certificate (transport.ssl.verify_mode: required): set transport.ssl.cert_file and key_file in ${ctx.config} to a certificate signed by the CA in the server's transport.ssl.ca_file; otherwise check the server's log`
        : `the server closed the connection before answering: check that ${where} is an mcp-pki-auth server and look at its log`
    case 'no_reply':
      return `no answer in time from ${where}: is the server reachable and not overloaded? raise --connect-timeout / --request-timeout if it is just slow`
    case 'refused':
      return `is the server running at ${where}? check the URL and that mcp-pki-server (or your MCP server) is started`
    default:
      if (/replied HTTP 404/.test(message)) return `${where} does not exist on the server: the handshake endpoint is usually /auth on the server's origin`
      return `check that ${where} is right and the server is running`
  }
}
