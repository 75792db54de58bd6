/**
 * Size limits (issue 9, mcp-pki/2 attack): every limit of docs/PROTOCOL.md §12 is enforced exactly
 * at its boundary — the limit passes, one more is refused with the documented code — and the
 * handshake endpoints answer an oversized body alike: mcp-pki-server and mcp-pki-gateway both send
 * 413 with the auth_error body `payload_too_large` (the gateway used to answer 400).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch } from '../../src/mcp/client.js'
import { createMcpAuth, mountMcpAuth } from '../../src/mcp/server.js'
import { parseAuthChallenge, parseAuthRequest } from '../../src/protocol/messages.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig } from '../../src/server/start-server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeHarness, type Run } from '../helpers/handshake-harness.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { listen, startProtectedServer } from '../mcp/fixtures/harness.js'
import { makeDeployment, GATEWAY_BIN } from '../mcp/fixtures/deployment.js'

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

function requestOf(run: Run, proof: string): { authorization: string; proof: string; method: string; target: string; body: string } {
  return { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: '{}' }
}

/** Message 1 for `audience` as JSON text padded with trailing spaces to exactly `size` bytes. */
function m1OfSize(audience: string, size: number): string {
  const client = createClientHandshake({ keyPair: generateKeyPair(), serverTrust: createServerTrust({}), audience })
  const text = JSON.stringify(client.start())
  assert.ok(text.length < size)
  return text + ' '.repeat(size - Buffer.byteLength(text))
}

async function post(url: string, body: string): Promise<{ status: number; json: { type?: string; error?: { code: string; message: string } } }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  return { status: res.status, json: (await res.json()) as { type?: string; error?: { code: string; message: string } } }
}

/** The limit passes (a real challenge comes back), one byte more is 413 payload_too_large with the auth_error body. */
async function assertBodyLimit(url: string, audience: string, limit: number, what: string): Promise<void> {
  const atLimit = await post(url, m1OfSize(audience, limit))
  assert.equal(atLimit.status, 200, `${what}: ${limit} bytes: ${JSON.stringify(atLimit.json)}`)
  assert.equal(atLimit.json.type, 'auth_challenge')
  const over = await post(url, m1OfSize(audience, limit + 1))
  assert.equal(over.status, 413, `${what}: ${limit + 1} bytes: ${JSON.stringify(over.json)}`)
  assert.equal(over.json.type, 'auth_error')
  assert.equal(over.json.error?.code, 'payload_too_large')
  assert.match(over.json.error?.message ?? '', new RegExp(`larger than ${limit} bytes`))
}

test('mcp-pki-server /auth: transport.max_body_size (default 65,536 and a configured 20,000) passes at the limit, 413 one byte over', async () => {
  for (const [maxBody, server] of [[65_536, {}], [20_000, { transport: { max_body_size: 20_000 } }]] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-size-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const sb = await createSandbox(dir, { server })
    const config = await loadConfig(sb.serverConfigPath, { env: {} })
    assert.equal(config.transport.max_body_size, maxBody)
    const running = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }), allowlistPollMs: 60_000 })
    cleanups.push(() => running.close())
    await assertBodyLimit(running.authUrl, running.authUrl.replace(/\/auth$/, ''), maxBody, `server ${maxBody}`)
  }
})

test('mcp-pki-gateway /auth: the same limit and the same 413 answer (was 400)', async () => {
  assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const d = await makeDeployment()
  cleanups.push(() => d.cleanup())
  for (const maxBody of [65_536, 20_000]) {
    if (maxBody !== 65_536) await writeFile(d.serverConfig, (await readFile(d.serverConfig, 'utf8')).replace('  port: 0\n', `  port: 0\n  max_body_size: ${maxBody}\n`))
    const { child, base } = await startGateway(d.serverConfig)
    cleanups.push(() => child.kill('SIGTERM'))
    await assertBodyLimit(`${base}/auth`, base, maxBody, `gateway ${maxBody}`)
    child.kill('SIGTERM')
  }
})

test('createMcpAuth handshake endpoint (library default 16 KiB, and maxHandshakeSize) and createAuthService (maxMessageSize)', async () => {
  for (const max of [undefined, 4096]) {
    const limit = max ?? 16 * 1024
    // The service allows more than the endpoint: the endpoint's own cap decides, with the same answer.
    const service = createAuthService({ keyPair: generateKeyPair(), allowlist: { lookup: () => ({ status: 'unknown' }) }, nonceStore: new TestNonceStore(), audience: 'https://mcp.example', maxMessageSize: 64 * 1024 })
    const server = createServer()
    mountMcpAuth(server, createMcpAuth(service, max === undefined ? {} : { maxHandshakeSize: max }), { handler: (_req, res) => res.end() })
    const origin = await listen(server)
    cleanups.push(() => new Promise((r) => server.close(r)))
    await assertBodyLimit(`${origin}/auth`, 'https://mcp.example', limit, `createMcpAuth ${limit}`)
  }
  for (const maxMessageSize of [undefined, 3000]) {
    const limit = maxMessageSize ?? 16 * 1024
    const service = createAuthService({ keyPair: generateKeyPair(), allowlist: { lookup: () => ({ status: 'unknown' }) }, nonceStore: new TestNonceStore(), audience: 'https://mcp.example', ...(maxMessageSize ? { maxMessageSize } : {}) })
    const ok = await service.handleMessage(Buffer.from(m1OfSize('https://mcp.example', limit)), { transport: 'test' })
    assert.equal(ok.status, 200)
    const over = await service.handleMessage(Buffer.from(m1OfSize('https://mcp.example', limit + 1)), { transport: 'test' })
    assert.equal(over.status, 413)
    assert.equal(over.error?.code, 'payload_too_large')
  }
})

test('WebSocket frames: transport.max_body_size passes, one byte more is an auth_error payload_too_large frame', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-size-ws-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, { server: { transport: { max_body_size: 10_000 } } })
  const running = await startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), { audit: new AuditLogger({ enabled: false }), allowlistPollMs: 60_000 })
  cleanups.push(() => running.close())
  const audience = running.wsUrl.replace(/\/ws$/, '')
  for (const [size, want] of [[10_000, 'auth_challenge'], [10_001, 'payload_too_large']] as const) {
    const ws = new WebSocket(running.wsUrl)
    const first = await new Promise<{ type: string; error?: { code: string } }>((resolve, reject) => {
      ws.on('error', reject)
      ws.on('open', () => ws.send(m1OfSize(audience, size)))
      ws.on('message', (data) => resolve(JSON.parse(String(data)) as { type: string; error?: { code: string } }))
    })
    ws.close()
    assert.equal(first.type === 'auth_error' ? first.error?.code : first.type, want, `${size} bytes`)
  }
})

test('audience: 512 bytes of UTF-8 pass, 513 are invalid_message (counted in bytes, not characters)', () => {
  const client = createClientHandshake({ keyPair: generateKeyPair(), serverTrust: createServerTrust({}), audience: 'https://x' })
  const m1 = client.start() as unknown as Record<string, unknown>
  for (const [audience, ok] of [['a'.repeat(512), true], ['a'.repeat(513), false], ['é'.repeat(256), true], ['é'.repeat(256) + 'a', false]] as const) {
    const msg = { ...m1, audience }
    if (ok) assert.equal(parseAuthRequest(msg).audience, audience)
    else assert.throws(() => parseAuthRequest(msg), (e: unknown) => e instanceof AuthError && e.code === 'invalid_message' && /audience/.test(e.message))
  }
})

test('challenge_token: 1,024 characters pass the schema, 1,025 are invalid_message', async () => {
  const service = createAuthService({ keyPair: generateKeyPair(), allowlist: { lookup: () => ({ status: 'unknown' }) }, nonceStore: new TestNonceStore(), audience: 'https://mcp.example' })
  const reply = await service.handleMessage(m1OfSize('https://mcp.example', 600), { transport: 'test' })
  const m2 = reply.body as unknown as Record<string, unknown>
  assert.ok(parseAuthChallenge(m2))
  const at = { ...m2, challenge_token: 'A'.repeat(1024) }
  assert.equal(parseAuthChallenge(at).challengeToken.byteLength, 768)
  assert.throws(() => parseAuthChallenge({ ...m2, challenge_token: 'A'.repeat(1025) }), (e: unknown) => e instanceof AuthError && e.code === 'invalid_message' && /1 to 1024 characters/.test(e.message))
})

test('request proofs: a 160-character header passes, 161 is proof_invalid naming the length; Authorization tokens of 16–1024 characters reach the token check', async () => {
  const h = makeHarness()
  const run = await h.run()
  const proof = (): string => createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: '{}', clock: h.serverClock.now })
  const p1 = proof()
  const padded = (p: string, n: number): string => ' '.repeat(n - p.length) + p
  await h.verifier.verify({ ...requestOf(run, p1), body: '{}', proof: padded(p1, 160) })
  const p2 = proof()
  await assert.rejects(h.verifier.verify({ ...requestOf(run, p2), body: '{}', proof: padded(p2, 161) }), (e: unknown) => e instanceof AuthError && e.code === 'proof_invalid' && /161 characters long; at most 160/.test(e.message))
  await h.verifier.verify({ ...requestOf(run, p2), body: '{}', proof: p2 })
  // Bearer tokens: 16 and 1024 characters reach the token check ("not valid for this server"),
  // 15 and 1025 are refused by the header's form.
  for (const [len, why] of [[15, /must be "Bearer <session token>"/], [16, /not valid for this server/], [1024, /not valid for this server/], [1025, /must be "Bearer <session token>"/]] as const) {
    await assert.rejects(h.verifier.verify({ ...requestOf(run, proof()), authorization: `Bearer ${'A'.repeat(len)}` }), (e: unknown) => e instanceof AuthError && e.code === 'session_invalid' && why.test(e.message), `${len}`)
  }
})

test('MCP request body behind createMcpAuth: maxBodySize passes, one byte more is 413 payload_too_large', async () => {
  const p = makeParties()
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() }, { maxBodySize: 5000 })
  cleanups.push(() => s.close())
  const authFetch = createAuthFetch({ url: s.url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 })
  const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'size', version: '1' } } })
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }
  const at = await authFetch(s.url, { method: 'POST', headers, body: init + ' '.repeat(5000 - init.length) })
  assert.equal(at.status, 200, await at.clone().text())
  await at.body?.cancel()
  const over = await authFetch(s.url, { method: 'POST', headers, body: init + ' '.repeat(5001 - init.length) })
  assert.equal(over.status, 413)
  assert.equal(((await over.json()) as { error: string }).error, 'payload_too_large')
  assert.equal(authFetch.handshakes, 1)
})

/** Starts the built gateway in front of an upstream that is never reached; resolves its base URL. */
function startGateway(config: string): Promise<{ child: ChildProcess; base: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GATEWAY_BIN, '--config', config, '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9/mcp'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString()
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\/mcp/.exec(err)
      if (m) resolve({ child, base: m[1]! })
    })
    child.on('exit', (code) => reject(new Error(`gateway exited with ${code}: ${err}`)))
  })
}
