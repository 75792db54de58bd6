/**
 * Caller identity: what a handler or an upstream is told about the caller (fingerprint, role, org)
 * comes only from the verified session and its allowlist entry: client-sent look-alike headers are
 * dropped or replaced, and allowlist metadata cannot smuggle a role through __proto__.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { upstreamHeaders } from '../../src/mcp/gateway.js'
import type { McpRequest } from '../../src/mcp/server.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { MCP_BODY, send } from './helpers/loopback-http.js'
import { listenerSession, mcpListener } from './helpers/mcp-listener.js'

// From the red-team, MCP endpoints (finding, fixed).
test(
  'gateway: client-sent look-alikes of X-MCP-PKI-* (underscores) do not reach the upstream',
  () => {
    const req = {
      auth: { token: 't', clientId: 'a'.repeat(64), scopes: [], extra: { fingerprint: 'a'.repeat(64), role: 'reader', sessionId: 's', metadata: {} } },
    } as unknown as McpRequest
    const out = upstreamHeaders({ 'x_mcp_pki_role': 'admin', 'x-mcp-pki_role': 'admin', 'x_mcp_pki_fingerprint': 'f'.repeat(64), accept: 'application/json' }, req)
    assert.equal(out['x-mcp-pki-role'], 'reader')
    assert.equal(out['accept'], 'application/json')
    const leaked = Object.keys(out).filter((k) => k.toLowerCase().replace(/_/g, '-').startsWith('x-mcp-pki-') && !['x-mcp-pki-fingerprint', 'x-mcp-pki-role', 'x-mcp-pki-org'].includes(k))
    assert.deepEqual(leaked, [])
  },
)

// From the red-team, MCP endpoints (held).
test('gateway: forged X-MCP-PKI-* headers in any case are replaced, and a Connection header cannot strip them', () => {
  const req = {
    auth: { token: 't', clientId: 'a'.repeat(64), scopes: [], extra: { fingerprint: 'a'.repeat(64), role: 'reader', org: 'o', sessionId: 's', metadata: {} } },
  } as unknown as McpRequest
  const out = upstreamHeaders(
    { 'x-mcp-pki-fingerprint': 'f'.repeat(64), 'x-mcp-pki-role': 'admin', 'x-mcp-pki-extra': 'x', connection: 'x-mcp-pki-fingerprint, x-mcp-pki-role', authorization: 'Bearer t', 'mcp-pki-proof': 'p', cookie: 'c' },
    req,
  )
  assert.equal(out['x-mcp-pki-fingerprint'], 'a'.repeat(64))
  assert.equal(out['x-mcp-pki-role'], 'reader')
  assert.equal(out['x-mcp-pki-org'], 'o')
  for (const k of ['x-mcp-pki-extra', 'connection', 'authorization', 'mcp-pki-proof', 'cookie']) assert.equal(out[k], undefined, k)
})

// From the red-team, MCP endpoints (held).
test('allowlist metadata with an own "__proto__" key does not give the caller that role', async () => {
  const s = await mcpListener('handler')
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  const forged = text.replace(/"metadata":\{[^}]*\}/, '"metadata":{"__proto__":{"role":"admin","org":"evil"}}')
  assert.notEqual(forged, text)
  await writeFile(s.sb.serverAllowlistPath, forged)
  await s.configured.reloadAllowlist()
  const session = await listenerSession(s)
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: MCP_BODY })
  const r = await send({ port: s.port }, { body: MCP_BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(r.status, 200, r.text)
  assert.equal((JSON.parse(r.text) as { role: unknown }).role, null)
})

// Session 10: the AuthInfo of a session is made once and kept while its allowlist entry is unchanged.
test('a role changed in the allowlist file reaches the next request of a session that is already open', async () => {
  const s = await mcpListener('handler')
  const session = await listenerSession(s)
  const roleSeen = async (): Promise<unknown> => {
    const proof = createRequestProof({ session, method: 'POST', target: '/mcp', body: MCP_BODY })
    const r = await send({ port: s.port }, { body: MCP_BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
    assert.equal(r.status, 200, r.text)
    return (JSON.parse(r.text) as { role: unknown }).role
  }
  const before = await roleSeen()
  assert.equal(await roleSeen(), before, 'the same role on a second request')
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  const changed = text.replace(/"role":"[^"]*"/, '"role":"auditor"')
  assert.notEqual(changed, text)
  await writeFile(s.sb.serverAllowlistPath, changed)
  await s.configured.reloadAllowlist()
  assert.equal(await roleSeen(), 'auditor')
})
