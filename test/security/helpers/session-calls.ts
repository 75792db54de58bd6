/**
 * What a client does over HTTP in attack tests: the whole handshake (its session, or the reply that
 * refused it) and one MCP call with the session's token and a fresh proof.
 */
import assert from 'node:assert/strict'
import { createClientHandshake, type ClientSession } from '../../../src/handshake/client-handshake.js'
import type { Ed25519KeyPair } from '../../../src/keys/key-pair.js'
import { createRequestProof } from '../../../src/session/session-token.js'
import { MCP_BODY, replyCode, send, type Reply } from './loopback-http.js'

export interface HostPort {
  host: string
  port: number
}

/** Authorization + proof headers for one request with `session`. */
export function authHeaders(session: ClientSession, path = '/mcp', body = MCP_BODY, method = 'POST', mcpSessionId = ''): Record<string, string> {
  return {
    authorization: `Bearer ${session.token}`,
    'mcp-pki-proof': createRequestProof({ session: session, method, target: path, body, mcpSessionId }),
  }
}

/** The whole handshake over HTTP; the session, or the refusing reply. */
export async function handshake(to: HostPort, key: Ed25519KeyPair): Promise<{ session: ClientSession } | { refused: Reply; at: 'm1' | 'm3' }> {
  const c = createClientHandshake({ keyPair: key, audience: `http://${to.host}:${to.port}`, serverTrust: () => ({}) })
  const r2 = await send(to, { path: '/auth', body: JSON.stringify(c.start()) })
  if (r2.status !== 200) return { refused: r2, at: 'm1' }
  const r4 = await send(to, { path: '/auth', body: JSON.stringify(await c.handleChallenge(r2.json)) })
  if (r4.status !== 200) return { refused: r4, at: 'm3' }
  return { session: c.handleComplete(r4.json) }
}

export async function sessionAt(to: HostPort, key: Ed25519KeyPair): Promise<ClientSession> {
  const r = await handshake(to, key)
  if (!('session' in r)) assert.fail(`handshake refused at ${r.at}: ${r.refused.status} ${r.refused.text}`)
  return r.session
}

/** Asserts a handshake is refused as authentication_failed (401) and hands out no token. */
export async function assertHandshakeRefused(to: HostPort, key: Ed25519KeyPair, label: string): Promise<void> {
  const r = await handshake(to, key)
  assert.ok(!('session' in r), `${label}: a session was issued`)
  assert.equal(r.refused.status, 401, `${label}: ${r.refused.text}`)
  assert.equal(replyCode(r.refused), 'authentication_failed', label)
  assert.equal(r.refused.json.session_token, undefined, label)
}

/** POST /mcp with the session: 'ok' (the handler ran for this key) or the refusing code. */
export async function mcpCall(to: HostPort, session: ClientSession, path = '/mcp'): Promise<string> {
  const r = await send(to, { path, body: MCP_BODY, headers: authHeaders(session, path) })
  if (r.status === 200) {
    assert.equal(r.json.reached, true)
    return 'ok'
  }
  assert.equal(r.json.reached, undefined, 'a refused request reached the handler')
  return `${r.status} ${replyCode(r) ?? r.text}`
}
