/**
 * MCP path confinement: behind mountMcpAuth no request reaches the MCP transport unauthenticated,
 * whatever path variant it uses (trailing slash, case, percent-encoding, dot segments, another
 * path), in both patterns the docs show (an existing 'request' listener, or options.handler).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequestProof } from '../../src/session/session-token.js'
import { MCP_BODY, send } from './helpers/loopback-http.js'
import { listenerSession, mcpListener, type ListenerSetup } from './helpers/mcp-listener.js'

const VARIANTS = ['/mcp/', '//mcp', '/MCP', '/%6dcp', '/mcp%20', '/./mcp', '/mcp/../mcp', '/other']

/** An authenticated POST to /mcp?x=1 (the query in its proof target) reaches the MCP transport, and is the only request that did. */
async function authenticatedQueryReaches(s: ListenerSetup): Promise<void> {
  const session = await listenerSession(s)
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp?x=1', body: MCP_BODY })
  const ok = await send({ port: s.port }, { path: '/mcp?x=1', body: MCP_BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(ok.status, 200, ok.text)
  assert.deepEqual(s.reached, ['POST /mcp?x=1 auth=yes'])
}

// From the red-team, MCP endpoints (finding, fixed).
test(
  'mountMcpAuth over an existing listener (its own @example): only exactly mcpPath reaches the MCP transport, and only authenticated',
  async () => {
    const s = await mcpListener('listener')
    for (const path of [...VARIANTS, '/mcp#x', '/auth/']) {
      const r = await send({ port: s.port }, { path, body: MCP_BODY })
      assert.notEqual(r.status, 200, `${path}: ${r.text}`)
      assert.equal(r.status, 404, `${path}: ${r.text}`)
      assert.match(r.text, /not_found/, path)
    }
    // The exact path is checked whatever the query string.
    for (const path of ['/mcp', '/mcp?x=1', '/mcp?']) {
      const r = await send({ port: s.port }, { path, body: MCP_BODY })
      assert.equal(r.status, 401, `${path}: ${r.text}`)
    }
    assert.deepEqual(s.reached, [], 'the MCP transport never saw an unauthenticated request')
    const health = await send({ port: s.port }, { method: 'GET', path: '/health' })
    assert.equal(health.status, 200, health.text)
    assert.deepEqual(s.reached, [])
    // An authenticated request to exactly mcpPath still reaches the existing listener.
    await authenticatedQueryReaches(s)
  },
)

// From the red-team, MCP endpoints (held).
test('mountMcpAuth with options.handler (docs pattern): no path variant reaches the handler unauthenticated; /mcp?query still needs a session', async () => {
  const s = await mcpListener('handler')
  for (const path of [...VARIANTS, '/mcp?x=1', '/mcp#x']) {
    const r = await send({ port: s.port }, { path, body: MCP_BODY })
    assert.notEqual(r.status, 200, `${path}: ${r.text}`)
  }
  assert.deepEqual(s.reached, [])
  // And an authenticated request with the query in its proof target does reach it.
  await authenticatedQueryReaches(s)
})
