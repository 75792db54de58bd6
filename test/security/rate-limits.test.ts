/**
 * Rate limits: failures are limited per address (an IPv6 /64 counts as one) and per key, answered
 * with 429 + Retry-After, and neither lets a stranger lock a legitimate client out.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthServiceFromConfig } from '../../src/server/from-config.js'
import { honestHandshake, postAuth } from './helpers/auth-endpoint.js'
import { sleep } from './helpers/loopback-http.js'
import { sandbox, startServer } from './helpers/sandbox-servers.js'

// From the red-team, handshake server (finding, fixed).
test(
  'per-key rate limit: a stranger who knows a client\'s public key cannot lock that client out',
  async () => {
    const { sb, port } = await startServer()
    // The attacker has only the public key (it is public) and another loopback address.
    const attackerClaims = (): unknown => createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}`, serverTrust: () => ({}) }).start()
    const statuses: Record<string, number> = {}
    for (let i = 0; i < 120; i++) {
      const r = await postAuth(port, attackerClaims(), '127.0.0.2')
      statuses[String(r.status)] = (statuses[String(r.status)] ?? 0) + 1
    }
    assert.ok((statuses['200'] ?? 0) > 0, `the attacker got challenges: ${JSON.stringify(statuses)}`)
    // The real key holder, from its own address, right after.
    assert.equal(await honestHandshake(sb, port), 'ok')
  },
)

// From the red-team, handshake server (finding, fixed).
test(
  'per-address limits: IPv6 addresses of one /64 share a budget (an attacker owns the whole /64)',
  async () => {
    const sb = await sandbox()
    // A frozen clock: no token may refill between the calls however slow the machine is.
    const frozen = Date.now()
    const configured = await createAuthServiceFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), { audit: new AuditLogger({ enabled: false }), clock: () => frozen })
    try {
      // A fresh unknown key each time, so only the per-address limits can apply.
      const m1 = (): unknown => createClientHandshake({ keyPair: generateKeyPair(), audience: 'x', serverTrust: () => ({}) }).start()
      const codeFrom = async (remote: string): Promise<string> => {
        const r = await configured.service.handleMessage(JSON.stringify(m1()), { remote, transport: 'http' })
        return (r.body as { error?: { code?: string } }).error?.code ?? String(r.status)
      }
      let limited = false
      for (let i = 0; i < 200 && !limited; i++) limited = (await codeFrom('2001:db8:1:2::1')) === 'rate_limited'
      assert.ok(limited, 'the first address is limited')
      assert.equal(await codeFrom('2001:db8:1:2::1'), 'rate_limited')
      assert.equal(await codeFrom('2001:db8:1:2:ffff:ffff:ffff:fffe'), 'rate_limited', 'another address of the same /64')
      // Message 1 of an unknown key is answered like any other (mcp-pki/2): 200 from another /64.
      assert.equal(await codeFrom('2001:db8:1:3::1'), '200', 'another /64 is not affected')
    } finally {
      await configured.close()
    }
  },
)

// From the red-team, handshake server (held).
test('rate-limited failures get 429 + Retry-After (no reset, no 5xx); other addresses are unaffected; the address recovers after Retry-After', async () => {
  // A small budget (burst 10, 2/s): 130 failures exceed it however slowly a busy machine sends them.
  const { sb, running: server } = await startServer({ auth: { rate_limit: { per_address: 2, burst: 10 } } })
  const port = server.address.port
  // A key that is not on the allowlist: every message 1 is a failure.
  const other = await sandbox()
  const codes: Record<string, number> = {}
  let retryAfter: string | undefined
  for (let i = 0; i < 130; i++) {
    const c = createClientHandshake({ keyPair: other.clientKey, audience: `http://127.0.0.1:${port}`, serverTrust: () => ({}) })
    const r = await postAuth(port, c.start())
    const k = `${r.status}:${r.body.error?.code ?? ''}`
    codes[k] = (codes[k] ?? 0) + 1
    if (r.status === 429) retryAfter = r.headers['retry-after']
  }
  assert.ok((codes['429:rate_limited'] ?? 0) > 0, JSON.stringify(codes))
  assert.equal(Object.keys(codes).filter((k) => !['200:', '429:rate_limited'].includes(k)).length, 0, JSON.stringify(codes))
  assert.ok(retryAfter !== undefined && Number(retryAfter) >= 1 && Number(retryAfter) <= 5, String(retryAfter))
  assert.equal(await honestHandshake(sb, port, '127.0.0.3'), 'ok', 'another address')
  await sleep(Number(retryAfter) * 1000 + 200)
  assert.equal(await honestHandshake(sb, port), 'ok', 'same address after Retry-After')
})
