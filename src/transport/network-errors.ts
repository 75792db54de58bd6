/**
 * What a failed connection means, in words a user can act on.
 *
 * Node reports a failed connect or TLS handshake as an error code (`ECONNREFUSED`, `EPROTO`,
 * `DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED`, …), sometimes
 * wrapped in a `fetch failed` TypeError whose `cause` carries it. {@link classifyNetworkError}
 * finds the code anywhere in the `cause` chain and says which of a few problems it is, so the
 * handshake client can put the explanation in its message and the CLIs can give the right hint
 * (a TLS trust problem is not "is the server running?").
 * @module
 */

/** The kinds of connection failure the tools tell apart. */
export type NetworkProblem =
  | 'tls_to_plain_http'
  | 'tls_untrusted'
  | 'tls_wrong_host'
  | 'tls_certificate_dates'
  | 'tls_client_certificate'
  | 'tls_other'
  | 'refused'
  | 'host_not_found'
  | 'reset'
  | 'no_reply'
  | 'other'

export interface NetworkErrorInfo {
  /** The error code found (`ECONNREFUSED`, `EPROTO`, …), or the innermost message when there is none. */
  code: string
  problem: NetworkProblem
  /** One sentence on what is wrong (no URL in it: the caller adds where). */
  explanation: string
}

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
])
const CLIENT_CERTIFICATE = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
])

interface Found {
  code: string | undefined
  message: string
}

/** The first error code in `err`'s cause chain, and the innermost message. */
function findCode(err: unknown): Found {
  let message = ''
  let e: unknown = err
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const { code, message: m, cause } = e as { code?: unknown; message?: unknown; cause?: unknown }
    if (typeof m === 'string' && m !== '') message = m
    if (typeof code === 'string' && code !== '') return { code, message }
    e = cause
  }
  return { code: undefined, message: message || String(err) }
}

/**
 * Which connection problem `err` is. Returns the error code it found and a one-sentence
 * explanation; `problem: 'other'` (with the bare code or message) for anything not recognised.
 */
export function classifyNetworkError(err: unknown): NetworkErrorInfo {
  const { code, message } = findCode(err)
  const c = code ?? message
  const plainHttp = c === 'ERR_SSL_WRONG_VERSION_NUMBER' || c === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || (c === 'EPROTO' && /wrong version number|packet length too long|http request/i.test(message))
  if (plainHttp) {
    return { code: c, problem: 'tls_to_plain_http', explanation: 'the server did not answer in TLS: it looks like a plain http server; use an http:// URL, or enable TLS on the server (transport.ssl)' }
  }
  if (UNTRUSTED.has(c)) {
    return { code: c, problem: 'tls_untrusted', explanation: "the server's TLS certificate is not signed by a CA this client trusts" }
  }
  if (c === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { code: c, problem: 'tls_wrong_host', explanation: "the server's TLS certificate is not issued for this host name or IP address" }
  }
  if (c === 'CERT_HAS_EXPIRED' || c === 'CERT_NOT_YET_VALID') {
    return { code: c, problem: 'tls_certificate_dates', explanation: "the server's TLS certificate has expired or is not valid yet (or this machine's clock is wrong)" }
  }
  if (CLIENT_CERTIFICATE.has(c)) {
    return { code: c, problem: 'tls_client_certificate', explanation: 'the server asks for a TLS client certificate and refused the one sent (or none was sent)' }
  }
  if (c.startsWith('ERR_SSL_') || c.startsWith('ERR_TLS_') || c === 'EPROTO') {
    const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1] ?? message
    return { code: c, problem: 'tls_other', explanation: `the TLS handshake failed (${reason})` }
  }
  if (c === 'ECONNREFUSED') return { code: c, problem: 'refused', explanation: 'nothing accepts connections on that host and port' }
  if (c === 'ENOTFOUND' || c === 'EAI_AGAIN') return { code: c, problem: 'host_not_found', explanation: 'the host name does not resolve' }
  if (c === 'ECONNRESET' || c === 'UND_ERR_SOCKET' || c === 'EPIPE') {
    return { code: c, problem: 'reset', explanation: 'the server closed the connection before answering (a server with transport.ssl.verify_mode: required does this to clients without a certificate)' }
  }
  if (c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'UND_ERR_CONNECT_TIMEOUT') {
    return { code: c, problem: 'no_reply', explanation: c === 'UND_ERR_CONNECT_TIMEOUT' ? 'no connection within the connect timeout' : 'the server did not start answering within the request timeout' }
  }
  return { code: c, problem: 'other', explanation: '' }
}

/** `CODE (explanation)` for a message, or the bare code when there is nothing to add. */
export function describeNetworkError(err: unknown): string {
  const info = classifyNetworkError(err)
  return info.explanation === '' ? info.code : `${info.code}: ${info.explanation}`
}

/** Whether the problem is in TLS (not in reaching the host at all). */
export function isTlsProblem(problem: NetworkProblem): boolean {
  return problem.startsWith('tls_')
}
