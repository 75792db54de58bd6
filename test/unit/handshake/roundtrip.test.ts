import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createClientHandshake, createServerTrust } from '../../../src/handshake/client-handshake.js'
import { createServerHandshake } from '../../../src/handshake/server-handshake.js'
import { createSessionVerifier } from '../../../src/session/session-verifier.js'
import { createRequestProof } from '../../../src/session/session-token.js'
import { makeParties, TestClock, TestNonceStore } from '../../helpers/fixtures.js'

test('a full handshake authenticates both sides and yields a session the verifier accepts', async () => {
  const p = makeParties()
  const clock = new TestClock()
  const nonces = new TestNonceStore(1000, clock.now)
  const server = createServerHandshake({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: nonces, clock: clock.now })
  const client = createClientHandshake({
    keyPair: p.client,
    audience: 'http://127.0.0.1:8443',
    serverTrust: createServerTrust({ allowlist: p.clientAllowlist, clock: clock.now }),
    clock: clock.now,
  })
  const m2 = server.handleRequest(JSON.parse(JSON.stringify(client.start())))
  const m3 = await client.handleChallenge(JSON.parse(JSON.stringify(m2)))
  const result = await server.handleResponse(JSON.parse(JSON.stringify(m3)))
  const session = client.handleComplete(JSON.parse(JSON.stringify(result.message)))
  assert.equal(session.serverFingerprint, p.server.fingerprint)
  assert.equal(result.clientFingerprint, p.client.fingerprint)
  assert.deepEqual(session.serverMetadata, { role: 'mcp_server' })

  const verifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: p.serverAllowlist, nonceStore: nonces, clock: clock.now })
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body, clock: clock.now })
  const info = await verifier.verify({ authorization: `Bearer ${session.token}`, proof, method: 'POST', target: '/mcp', body })
  assert.equal(info.clientFingerprint, p.client.fingerprint)
  assert.equal(info.entry.metadata.role, 'trusted_client')
  await assert.rejects(verifier.verify({ authorization: `Bearer ${session.token}`, proof, method: 'POST', target: '/mcp', body }), { code: 'replay_detected' })
})
