/**
 * createMcpAuth hands every request of a session one AuthInfo, made once (docs/benchmarks.md,
 * session 10). Shared between requests, it must be one no handler can change: a handler that
 * grants itself a scope or a role, or swaps the client id, changes nothing for the next request,
 * and the identity a later handler sees is the one the handshake established.
 */
import assert from 'node:assert/strict'
import { createServer, type ServerResponse } from 'node:http'
import { after, test } from 'node:test'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch } from '../../src/mcp/client.js'
import { createMcpAuth, mountMcpAuth, type McpRequest } from '../../src/mcp/server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { closeServer, listen } from './fixtures/harness.js'

const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

/** Tries to change what it was given; answers with what it saw and which changes were refused. */
function tamperingHandler(req: McpRequest, res: ServerResponse): void {
  const auth = req.auth!
  const seen = { clientId: auth.clientId, scopes: [...auth.scopes], role: (auth.extra as { role?: string }).role }
  const refused: string[] = []
  const attempt = (name: string, change: () => void): void => {
    try {
      change()
    } catch {
      refused.push(name)
    }
  }
  attempt('scopes', () => auth.scopes.push('role:admin'))
  attempt('role', () => ((auth.extra as { role?: string }).role = 'admin'))
  attempt('clientId', () => (auth.clientId = 'someone-else'))
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ seen, refused }))
}

test('a handler cannot change the AuthInfo of its session: the next request sees the identity of the handshake', async () => {
  const p = makeParties()
  const mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }))
  const server = createServer()
  mountMcpAuth(server, mcpAuth, { handler: tamperingHandler })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  const fetch = createAuthFetch({ url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 })
  const expected = { clientId: p.client.fingerprint, scopes: ['role:trusted_client'], role: 'trusted_client' }
  for (let i = 0; i < 3; i++) {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'ping' }) })
    assert.equal(res.status, 200)
    const { seen, refused } = (await res.json()) as { seen: typeof expected; refused: string[] }
    assert.deepEqual(seen, expected, `request ${i} sees the handshake's identity`)
    assert.deepEqual(refused, ['scopes', 'role', 'clientId'], 'every change is refused')
  }
})

test("an application's scopesOf is asked on every request: scopes it grants or takes back apply to the next request", async () => {
  const p = makeParties()
  let granted = ['tools:read']
  const mcpAuth = createMcpAuth(createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }), { scopesOf: () => [...granted] })
  const server = createServer()
  mountMcpAuth(server, mcpAuth, { handler: tamperingHandler })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  const fetch = createAuthFetch({ url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 })
  const scopesSeen = async (): Promise<string[]> => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) })
    assert.equal(res.status, 200)
    return ((await res.json()) as { seen: { scopes: string[] } }).seen.scopes
  }
  assert.deepEqual(await scopesSeen(), ['tools:read'])
  granted = []
  assert.deepEqual(await scopesSeen(), [], 'a scope taken back is gone from the next request')
  granted = ['tools:read', 'tools:write']
  assert.deepEqual(await scopesSeen(), ['tools:read', 'tools:write'])
})
