/**
 * createMcpAuth checks the token before it reads a request body (so a stranger cannot make it
 * buffer one). That pre-check must see the socket the request came in on, as the full check right
 * after does: the verifier caches the session's audience verdict per socket, and a pre-check
 * without one reset that cache, so the verdict was computed twice on every request. And it is
 * only the token's: the allowlist is looked up once per request, by the full check after the body.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch } from '../../src/mcp/client.js'
import type { RequestContext } from '../../src/transport/auth-service.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { connectClient, startProtectedServer, whoami } from './fixtures/harness.js'

const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

test('the token pre-check before the body is read is given the socket the request came in on', async () => {
  const p = makeParties()
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() })
  cleanups.push(() => s.close())
  const seen: (RequestContext | undefined)[] = []
  const verifier = s.service.verifier
  const precheck = verifier.precheckToken!.bind(verifier)
  verifier.precheckToken = (token, context) => {
    seen.push(context)
    return precheck(token, context)
  }
  let lookups = 0
  const lookup = p.serverAllowlist.lookup.bind(p.serverAllowlist)
  p.serverAllowlist.lookup = (...args: Parameters<typeof lookup>) => {
    lookups++
    return lookup(...args)
  }
  const client = await connectClient(s.url, createAuthFetch({ url: s.url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 }))
  cleanups.push(() => client.close())
  for (let i = 0; i < 3; i++) assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  const before = { lookups, prechecks: seen.length }
  for (let i = 0; i < 5; i++) assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(seen.length - before.prechecks, 5, 'one pre-check per request')
  assert.equal(lookups - before.lookups, 5, 'one allowlist look-up per request (the full check only)')
  const port = (s.server.address() as AddressInfo).port
  assert.ok(seen.length >= 4, `the pre-check ran on every MCP request (${seen.length} times)`)
  for (const ctx of seen) {
    assert.equal(ctx?.localPort, port)
    assert.equal(ctx?.localAddress, '127.0.0.1')
  }
})
