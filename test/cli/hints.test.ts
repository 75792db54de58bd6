/**
 * Issue 11.5/11.6: each failure's hint says what is actually wrong. Driven with the error shapes
 * Node and undici produce (codes found anywhere in the `cause` chain, `fetch failed` wrappers).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { describeError, hintFor } from '../../src/cli/shared/hints.js'
import { AuthError } from '../../src/errors.js'
import { classifyNetworkError } from '../../src/transport/network-errors.js'

const ctx = { config: 'client_config.yml', publicKeyPath: 'keys/client_public.pem', url: 'https://h.example:8443/auth', mcpUrl: 'https://h.example:8443/mcp' }
const coded = (code: string, message = code): Error => Object.assign(new Error(message), { code })
const fetchFailed = (cause: Error): Error => new TypeError('fetch failed', { cause })
const transport = (cause: Error): AuthError => new AuthError('transport_error', 'x', { cause })

test('network errors are classified through the cause chain', () => {
  assert.equal(classifyNetworkError(fetchFailed(coded('DEPTH_ZERO_SELF_SIGNED_CERT'))).problem, 'tls_untrusted')
  assert.equal(classifyNetworkError(coded('EPROTO', 'write EPROTO …:SSL routines:ssl3_get_record:wrong version number:…')).problem, 'tls_to_plain_http')
  assert.equal(classifyNetworkError(fetchFailed(coded('ERR_SSL_WRONG_VERSION_NUMBER'))).problem, 'tls_to_plain_http')
  assert.equal(classifyNetworkError(coded('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')).problem, 'tls_client_certificate')
  assert.equal(classifyNetworkError(coded('ERR_TLS_CERT_ALTNAME_INVALID')).problem, 'tls_wrong_host')
  assert.equal(classifyNetworkError(coded('ECONNREFUSED')).problem, 'refused')
  const other = classifyNetworkError(coded('EPROTO', 'x:SSL routines:tls_process_server_hello:unsupported protocol:y'))
  assert.equal(other.problem, 'tls_other')
  assert.match(other.explanation, /unsupported protocol/)
  assert.doesNotMatch(other.explanation, /SSL routines/)
})

test('authentication_failed names unknown, expired and revoked and the audit log; it never only says "add it"', () => {
  const hint = hintFor(new AuthError('authentication_failed', 'server refused: authentication failed'), ctx) ?? ''
  assert.match(hint, /not on its allowlist .*mcp-allowlist add --config <server config> --key-file keys\/client_public\.pem/)
  assert.match(hint, /expired .*add --replace and a later "expires"/)
  assert.match(hint, /revoked .*mcp-allowlist unrevoke/)
  assert.match(hint, /private key \(keys\.private_key_path in client_config\.yml\) is not the one/)
  assert.match(hint, /audit log records which/)
  assert.match(hintFor(new AuthError('key_expired', 'x'), ctx) ?? '', /has expired: .*--replace/)
})

test('TLS problems are never "is the server running?"', () => {
  const cases: [Error, RegExp][] = [
    [coded('DEPTH_ZERO_SELF_SIGNED_CERT'), /set transport\.ssl\.ca_file in client_config\.yml/],
    [coded('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), /requires a TLS client certificate .*cert_file and key_file in client_config\.yml/],
    [coded('ECONNRESET'), /probably requires a TLS client certificate/],
    [coded('ERR_TLS_CERT_ALTNAME_INVALID'), /does not name the host/],
    [coded('CERT_HAS_EXPIRED'), /expired or not yet valid/],
    [coded('ERR_SSL_WRONG_VERSION_NUMBER'), /speaks plain http on that port: use http:\/\/h\.example:8443\/auth/],
  ]
  for (const [cause, expected] of cases) {
    const hint = hintFor(transport(cause), ctx) ?? ''
    assert.match(hint, expected)
    assert.doesNotMatch(hint, /is the server running/)
  }
  assert.match(hintFor(transport(coded('ECONNREFUSED')), ctx) ?? '', /is the server running at https:\/\/h\.example:8443\/auth\?/)
})

test('the two endpoints told apart, both ways; MCP-side HTTP errors get their status and hint', () => {
  assert.match(hintFor(new AuthError('invalid_message', 'auth_challenge has an unknown field "status"'), { ...ctx, url: 'https://h.example:8443/mcp' }) ?? '', /this is the MCP endpoint \(or another path\), not the handshake endpoint; use https:\/\/h\.example:8443\/auth/)
  assert.match(hintFor(new Error('Error POSTing to endpoint: {"error":"message.type must be a string"}'), ctx) ?? '', /is the handshake endpoint, not the MCP endpoint/)
  const notFound = Object.assign(new Error('Streamable HTTP error: Error POSTing to endpoint: {}'), { code: 404 })
  assert.match(describeError(notFound), /\(HTTP 404\)$/)
  assert.match(hintFor(notFound, ctx) ?? '', /no MCP endpoint at https:\/\/h\.example:8443\/mcp/)
  assert.equal(describeError(fetchFailed(coded('ECONNREFUSED'))), 'fetch failed: ECONNREFUSED: nothing accepts connections on that host and port')
})
