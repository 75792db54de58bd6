/**
 * Red-team findings against protected MCP endpoints (createMcpAuth + mountMcpAuth, and the gateway's
 * header handling), attacked over real HTTP on loopback. Tests marked `todo: 'finding N …'`
 * reproduce an open finding; the others are regression tests for attacks the product held.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import { upstreamHeaders } from '../../src/mcp/gateway.js'
import { createMcpAuth, mountMcpAuth, type McpRequest } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { createRequestProof } from '../../src/session/session-token.js'

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

interface Setup {
  sb: Sandbox
  configured: ConfiguredAuthService
  port: number
  reached: string[]
}

/**
 * A protected node:http server. `style: 'listener'` is the pattern of mountMcpAuth's own @example:
 * the MCP transport is the server's existing 'request' listener and no `handler` is passed.
 * `style: 'handler'` is the pattern of docs/mcp-server.md (`mountMcpAuth(server, mcpAuth, { handler })`).
 */
async function setup(style: 'listener' | 'handler'): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-redteam-mcp-'))
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: new AuditLogger({ enabled: false }), allowlistPollMs: 100 })
  const mcpAuth = createMcpAuth(configured.service, { bindSessions: false })
  const reached: string[] = []
  const mcp = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const auth = (req as McpRequest).auth
    reached.push(`${req.method} ${req.url} auth=${auth === undefined ? 'none' : 'yes'}`)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reached: true, role: auth?.extra?.role ?? null }))
  }
  const server = style === 'listener' ? http.createServer(mcp) : http.createServer()
  if (style === 'listener') mountMcpAuth(server, mcpAuth)
  else mountMcpAuth(server, mcpAuth, { handler: mcp })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  cleanups.push(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    await configured.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { sb, configured, port: (server.address() as AddressInfo).port, reached }
}

interface Reply {
  status: number | string
  text: string
}

function send(port: number, o: { method?: string; path?: string; body?: string; headers?: Record<string, string> }): Promise<Reply> {
  return new Promise((resolve) => {
    const body = o.body ?? ''
    const req = http.request(
      { host: '127.0.0.1', port, path: o.path ?? '/mcp', method: o.method ?? 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...o.headers } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
      },
    )
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 'timeout', text: '' })
    }, 3000)
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, text: '' }))
    req.on('close', () => clearTimeout(timer))
    req.end(body)
  })
}

async function handshake(s: Setup): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: s.sb.clientKey, audience: `http://127.0.0.1:${s.port}/mcp`, serverTrust: () => ({}) })
  const r2 = await send(s.port, { path: '/auth', body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const r4 = await send(s.port, { path: '/auth', body: JSON.stringify(await c.handleChallenge(JSON.parse(r2.text))) })
  assert.equal(r4.status, 200, r4.text)
  return c.handleComplete(JSON.parse(r4.text))
}

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
const VARIANTS = ['/mcp/', '//mcp', '/MCP', '/%6dcp', '/mcp%20', '/./mcp', '/mcp/../mcp', '/other']

test(
  'mountMcpAuth as in its own @example (existing listener, no handler): other paths must not reach the MCP transport unauthenticated',
  async () => {
    const s = await setup('listener')
    for (const path of [...VARIANTS, '/mcp#x', '/auth/']) {
      const r = await send(s.port, { path, body: BODY })
      assert.notEqual(r.status, 200, `${path}: ${r.text}`)
      assert.equal(r.status, 404, `${path}: ${r.text}`)
      assert.match(r.text, /not_found/, path)
    }
    // The exact path is checked whatever the query string.
    for (const path of ['/mcp', '/mcp?x=1', '/mcp?']) {
      const r = await send(s.port, { path, body: BODY })
      assert.equal(r.status, 401, `${path}: ${r.text}`)
    }
    assert.deepEqual(s.reached, [], 'the MCP transport never saw an unauthenticated request')
    const health = await send(s.port, { method: 'GET', path: '/health' })
    assert.equal(health.status, 200, health.text)
    assert.deepEqual(s.reached, [])
    // An authenticated request to exactly mcpPath still reaches the existing listener.
    const session = await handshake(s)
    const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp?x=1', body: BODY })
    const ok = await send(s.port, { path: '/mcp?x=1', body: BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
    assert.equal(ok.status, 200, ok.text)
    assert.deepEqual(s.reached, ['POST /mcp?x=1 auth=yes'])
  },
)

test(
  'gateway: client-sent look-alikes of X-MCP-PKI-* (underscores) must not reach the upstream',
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

// ---- attacks the product held (regression tests) ----

test('held: gateway headers — forged X-MCP-PKI-* in any case are replaced, and a Connection header cannot strip them', () => {
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

test('held: with options.handler (docs pattern) no path variant reaches the handler unauthenticated; /mcp?query still needs a session', async () => {
  const s = await setup('handler')
  for (const path of [...VARIANTS, '/mcp?x=1', '/mcp#x']) {
    const r = await send(s.port, { path, body: BODY })
    assert.notEqual(r.status, 200, `${path}: ${r.text}`)
  }
  assert.deepEqual(s.reached, [])
  // And an authenticated request with the query in its proof target does reach it.
  const session = await handshake(s)
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp?x=1', body: BODY })
  const ok = await send(s.port, { path: '/mcp?x=1', body: BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(ok.status, 200, ok.text)
  assert.deepEqual(s.reached, ['POST /mcp?x=1 auth=yes'])
})

test('held: a used proof re-sent in another spelling (leading zeros in t, spacing) is replay_detected; a non-canonical epoch is proof_invalid', async () => {
  const s = await setup('handler')
  const session = await handshake(s)
  const headers = (proof: string): Record<string, string> => ({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof })
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: BODY })
  assert.equal((await send(s.port, { body: BODY, headers: headers(proof) })).status, 200)
  const e = /e=([A-Za-z0-9_-]{11})/.exec(proof)![1]!
  const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  // Same 8 bytes, other text: the last character carries 2 unused bits.
  const lastIdx = B64U.indexOf(e[10]!)
  const sameBytes = e.slice(0, 10) + B64U[lastIdx ^ 1]!
  const spellings = [proof.replace('t=', 't=0'), proof.replace('t=', 't=000'), proof.replace(', s=', ',s=').replace(', e=', ',e=').replace(', m=', ',m='), `  ${proof}  `]
  for (const v of spellings) {
    const r = await send(s.port, { body: BODY, headers: headers(v) })
    assert.equal(r.status, 401, v)
    assert.match(r.text, /replay_detected/, v)
  }
  const r = await send(s.port, { body: BODY, headers: headers(proof.replace(`e=${e}`, `e=${sameBytes}`)) })
  assert.equal(r.status, 401)
  assert.match(r.text, /proof_invalid/)
  assert.equal(s.reached.length, 1)
})

test('held: allowlist metadata with an own "__proto__" key does not give the caller that role', async () => {
  const s = await setup('handler')
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  const forged = text.replace(/"metadata":\{[^}]*\}/, '"metadata":{"__proto__":{"role":"admin","org":"evil"}}')
  assert.notEqual(forged, text)
  await writeFile(s.sb.serverAllowlistPath, forged)
  await s.configured.reloadAllowlist()
  const session = await handshake(s)
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: BODY })
  const r = await send(s.port, { body: BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(r.status, 200, r.text)
  assert.equal((JSON.parse(r.text) as { role: unknown }).role, null)
})
