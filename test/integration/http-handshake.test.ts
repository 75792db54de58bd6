import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake, createServerTrust } from '../../src/handshake/client-handshake.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createWhoamiHandler, sessionHeaders } from '../../src/server/whoami.js'
import { authenticate, authenticateWithConfig, type FetchLike } from '../../src/transport/http-client.js'

const dirs: string[] = []
const servers: RunningServer[] = []
after(async () => {
  for (const s of servers) await s.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

interface Setup {
  sb: Sandbox
  server: RunningServer
  events: Array<{ event: string; fields: Readonly<Record<string, unknown>> }>
}

async function setup(server: ConfigObject = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-http-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: deepAudit(server) })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const events: Setup['events'] = []
  const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
  const running = await startServerFromConfig(config, {
    audit: new AuditLogger({ enabled: false }),
    onEvent: (event, fields) => events.push({ event, fields }),
    allowlistPollMs: 100,
    fallback: (req, res) => {
      if (!handlers.whoami?.(req, res)) res.writeHead(404).end()
    },
  })
  handlers.whoami = createWhoamiHandler(running.configured.service)
  servers.push(running)
  return { sb, server: running, events }
}

function deepAudit(server: ConfigObject): ConfigObject {
  return { audit: { enabled: false }, ...server }
}

interface RawReply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function rawRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; chunks?: number }): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'POST', headers: opts.headers ?? { 'content-type': 'application/json' }, agent: false }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }))
    })
    req.on('error', reject)
    if (opts.chunks !== undefined) {
      // stream chunks of 64 KiB without a content-length, ignoring write errors after the reply
      req.on('error', () => undefined)
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      let sent = 0
      const pump = (): void => {
        while (sent < opts.chunks!) {
          sent++
          if (!req.write(chunk)) {
            req.once('drain', pump)
            return
          }
        }
        req.end()
      }
      pump()
      return
    }
    req.end(opts.body)
  })
}

function code(reply: RawReply): string | undefined {
  return (JSON.parse(reply.body) as { error?: { code?: string } }).error?.code
}

test('a full mutual handshake over HTTP, from files made by the sandbox, then a proof-bound request', async () => {
  const { sb, server, events } = await setup()
  const clientConfig = await loadConfig(sb.clientConfigPath, { env: {} })
  const session = await authenticateWithConfig(clientConfig, server.authUrl)
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)
  assert.deepEqual(session.serverMetadata, { role: 'mcp_server', endpoint: '127.0.0.1' })
  const success = events.find((e) => e.event === 'handshake.success')
  assert.equal(success?.fields.client_fingerprint, sb.clientKey.fingerprint)
  assert.equal(success?.fields.transport, 'http')

  const origin = server.authUrl.replace(/\/auth$/, '')
  const res = await fetch(`${origin}/whoami`, { headers: sessionHeaders(session, 'GET', '/whoami') })
  assert.equal(res.status, 200)
  const who = (await res.json()) as { client_fingerprint: string; role: string }
  assert.equal(who.client_fingerprint, sb.clientKey.fingerprint)
  assert.equal(who.role, 'trusted_client')

  const health = await fetch(server.healthUrl)
  assert.equal(health.status, 200)
  const h = (await health.json()) as { status: string; fingerprint: string }
  assert.deepEqual([h.status, h.fingerprint], ['ok', sb.serverKey.fingerprint])
})

test('input limits: 413 for a huge body (and the server keeps serving), 400 non-JSON, 405, 415, deep nesting, wrong types', async () => {
  const { server } = await setup({ transport: { max_body_size: 4096 } })
  const url = server.authUrl

  const declared = await rawRequest(url, { body: 'x'.repeat(10_000) })
  assert.equal(declared.status, 413)
  assert.equal(code(declared), 'payload_too_large')
  const streamed = await rawRequest(url, { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks: 64 })
  assert.equal(streamed.status, 413)

  const nonJson = await rawRequest(url, { body: 'this is not json' })
  assert.equal(nonJson.status, 400)
  assert.equal(code(nonJson), 'invalid_message')

  const get = await rawRequest(url, { method: 'GET', headers: {} })
  assert.equal(get.status, 405)
  assert.equal(get.headers.allow, 'POST')

  const text = await rawRequest(url, { headers: { 'content-type': 'text/plain' }, body: '{}' })
  assert.equal(text.status, 415)

  const deep = await rawRequest(url, { body: '['.repeat(2000) + ']'.repeat(2000) })
  assert.equal(deep.status, 400)
  const deepObject = await rawRequest(url, { body: '{"type":"auth_request","version":' + '{"a":'.repeat(500) + '1' + '}'.repeat(500) + '}' })
  assert.equal(deepObject.status, 400)
  assert.equal(code(deepObject), 'invalid_message')

  const wrongTypes = await rawRequest(url, { body: JSON.stringify({ type: 'auth_request', version: 1, client_public_key: 42, client_nonce: [], timestamp: true }) })
  assert.equal(wrongTypes.status, 400)
  assert.equal(code(wrongTypes), 'invalid_message')

  const unknownPath = await rawRequest(url.replace('/auth', '/nope'), { method: 'GET', headers: {} })
  assert.equal(unknownPath.status, 404)

  // still serving
  const kp = (await import('../../src/keys/key-pair.js')).generateKeyPair()
  await assert.rejects(authenticate({ url, keyPair: kp, serverTrust: () => undefined, retryAttempts: 0 }), { code: 'authentication_failed' })
  const health = await fetch(server.healthUrl)
  assert.equal(health.status, 200)
})

test('429 with Retry-After after the per-address limit', async () => {
  const { server } = await setup({ auth: { rate_limit: { per_address: 1, per_key: 0, burst: 2 } } })
  const statuses: number[] = []
  let retryAfter: string | undefined
  for (let i = 0; i < 4; i++) {
    const r = await rawRequest(server.authUrl, { body: '{}' })
    statuses.push(r.status)
    if (r.status === 429) {
      retryAfter = r.headers['retry-after'] as string
      assert.equal(code(r), 'rate_limited')
    }
  }
  assert.deepEqual(statuses.slice(0, 2), [400, 400])
  assert.equal(statuses[3], 429)
  assert.ok(Number(retryAfter) >= 1)
})

test('503 + Retry-After when the nonce store is full (fails closed); nothing is granted', async () => {
  const { sb, server } = await setup({ auth: { nonce_cache_size: 1, rate_limit: { per_address: 0, per_key: 0 } } })
  const trust = createServerTrust({ pinnedFingerprint: sb.serverKey.fingerprint })
  await authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: trust, retryAttempts: 0 })
  const c = createClientHandshake({ keyPair: sb.clientKey, audience: new URL(server.authUrl).origin, serverTrust: trust })
  const m2 = await rawRequest(server.authUrl, { body: JSON.stringify(c.start()) })
  assert.equal(m2.status, 200)
  const m3 = await c.handleChallenge(JSON.parse(m2.body))
  const m4 = await rawRequest(server.authUrl, { body: JSON.stringify(m3) })
  assert.equal(m4.status, 503)
  assert.equal(code(m4), 'server_busy')
  assert.ok(Number(m4.headers['retry-after']) >= 1)
  assert.equal((JSON.parse(m4.body) as { session_token?: string }).session_token, undefined)
  await assert.rejects(authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: trust, retryAttempts: 0 }), { code: 'server_busy' })
})

test('a network failure on message 3 starts the handshake over and never resends message 3', async () => {
  const { sb, server } = await setup({ auth: { rate_limit: { per_address: 0, per_key: 0 } } })
  const sent: Array<{ type: string; body: string }> = []
  let failNextResponse = true
  const flaky: FetchLike = async (url, init) => {
    const type = (JSON.parse(init.body) as { type: string }).type
    sent.push({ type, body: init.body })
    if (type === 'auth_response' && failNextResponse) {
      failNextResponse = false
      // the request reaches the server (it consumes the nonce), the reply is lost
      await fetch(url, init)
      throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } })
    }
    return fetch(url, init)
  }
  const session = await authenticate({
    url: server.authUrl,
    keyPair: sb.clientKey,
    serverTrust: createServerTrust({ pinnedFingerprint: sb.serverKey.fingerprint }),
    fetch: flaky,
    retryAttempts: 2,
    retryDelayMs: 10,
  })
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
  assert.deepEqual(
    sent.map((s) => s.type),
    ['auth_request', 'auth_response', 'auth_request', 'auth_response'],
  )
  assert.notEqual(sent[1]!.body, sent[3]!.body)
  assert.notEqual(sent[0]!.body, sent[2]!.body)
})

test('network errors: transport_error naming the URL, transport_timeout, after the retry budget', async () => {
  const closed = http.createServer()
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
  const port = (closed.address() as { port: number }).port
  await new Promise<void>((r) => closed.close(() => r()))
  const kp = (await import('../../src/keys/key-pair.js')).generateKeyPair()
  let calls = 0
  const counting: FetchLike = (url, init) => {
    calls++
    return fetch(url, init)
  }
  await assert.rejects(
    authenticate({ url: `http://127.0.0.1:${port}/auth?secret=x`, keyPair: kp, serverTrust: () => undefined, retryAttempts: 2, retryDelayMs: 5, fetch: counting }),
    (err: { code: string; message: string }) => err.code === 'transport_error' && err.message.includes(`127.0.0.1:${port}/auth`) && !err.message.includes('secret'),
  )
  assert.equal(calls, 3)

  const silent = http.createServer(() => undefined)
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  try {
    const p = (silent.address() as { port: number }).port
    await assert.rejects(authenticate({ url: `http://127.0.0.1:${p}/auth`, keyPair: kp, serverTrust: () => undefined, retryAttempts: 0, timeoutMs: 200 }), { code: 'transport_timeout' })
  } finally {
    silent.closeAllConnections()
    await new Promise<void>((r) => silent.close(() => r()))
  }
})

test('removing a key from the allowlist file ends its live session within about 2 s', async () => {
  const { sb, server, events } = await setup()
  const session = await authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: createServerTrust({ pinnedFingerprint: sb.serverKey.fingerprint }) })
  const service = server.configured.service
  const request = () => service.verifyRequest({ authorization: `Bearer ${session.token}`, ...proofFor(session), method: 'GET', target: '/x', body: '' })
  await request()
  const started = Date.now()
  await updateAllowlistFile(sb.serverAllowlistPath, (l) => {
    l.remove(sb.clientKey.fingerprint)
  })
  let lastCode: string | undefined
  while (Date.now() - started < 2000) {
    try {
      await request()
    } catch (err) {
      lastCode = (err as { code: string }).code
      break
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  assert.equal(lastCode, 'session_revoked')
  assert.ok(events.some((e) => e.event === 'allowlist.reload'))
  // and a new handshake is refused
  await assert.rejects(authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: () => undefined, retryAttempts: 0 }), { code: 'authentication_failed' })
})

test('a broken allowlist edit keeps the last good list and is audited', async () => {
  const { sb, server, events } = await setup()
  const { writeFile } = await import('node:fs/promises')
  await writeFile(sb.serverAllowlistPath, '{ not json')
  await server.configured.reloadAllowlist()
  assert.ok(events.some((e) => e.event === 'allowlist.reload_failed'))
  const session = await authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: () => undefined, retryAttempts: 0 })
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)
})

function proofFor(session: Parameters<typeof sessionHeaders>[0]): { proof: string } {
  const h = sessionHeaders(session, 'GET', '/x')
  return { proof: h['mcp-pki-proof']! }
}

test('client config: servers: pin by URL or origin, and trust on first use (prompt, remember, refuse without a terminal)', async () => {
  const { sb, server } = await setup()
  const base = await loadConfig(sb.clientConfigPath, { env: {} })
  const { loadAllowlistFile } = await import('../../src/allowlist/allowlist-file.js')
  const origin = new URL(server.authUrl).origin
  const withServers = (fingerprint: string) => ({ ...base, servers: { main: { url: `${origin}/mcp`, fingerprint, audience: null } } })
  // pinned to the right key (matched by origin): ok; pinned to another key: refused (at message 4 when no
  // server-key rotation links the two keys, docs/PROTOCOL.md §15)
  await authenticateWithConfig(withServers(sb.serverKey.fingerprint), server.authUrl)
  const other = (await import('../../src/keys/key-pair.js')).generateKeyPair().fingerprint
  await assert.rejects(authenticateWithConfig(withServers(other), server.authUrl), { code: 'server_key_mismatch' })

  // an empty client allowlist with TOFU
  const { writeFile } = await import('node:fs/promises')
  await writeFile(sb.clientAllowlistPath, '{"version":1,"keys":{}}\n')
  const tofu = (enabled: boolean) => ({ ...base, acl: { ...base.acl, tofu: { enabled, prompt_unknown: true, remember_decisions: true } } })
  await assert.rejects(authenticateWithConfig(tofu(false), server.authUrl), { code: 'server_key_unknown' })
  await assert.rejects(authenticateWithConfig(tofu(true), server.authUrl, { interactive: false }), (err: { code: string; message: string }) => err.code === 'server_key_unknown' && err.message.includes('no terminal'))
  const asked: string[] = []
  await assert.rejects(authenticateWithConfig(tofu(true), server.authUrl, { prompt: async (fp) => (asked.push(fp), false) }), { code: 'server_key_rejected' })
  assert.equal((await loadAllowlistFile(sb.clientAllowlistPath)).size, 0)
  const session = await authenticateWithConfig(tofu(true), server.authUrl, { prompt: async (fp) => (asked.push(fp), true) })
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
  assert.deepEqual(asked, [sb.serverKey.fingerprint, sb.serverKey.fingerprint])
  const remembered = await loadAllowlistFile(sb.clientAllowlistPath)
  assert.equal(remembered.get(sb.serverKey.fingerprint)?.metadata.trust, 'tofu')
  // remembered: no prompt next time, even with TOFU off
  await authenticateWithConfig(tofu(false), server.authUrl)
})

test('slow senders are cut off after the request timeout; connections beyond max_connections are refused', async () => {
  const { server } = await setup()
  const { createAuthHttpServer } = await import('../../src/transport/http-server.js')
  const { connect } = await import('node:net')
  const small = createAuthHttpServer({ service: server.configured.service, timeoutSec: 1, maxConnections: 1 })
  const addr = await small.listen()
  try {
    const started = Date.now()
    const slow = connect(addr.port, '127.0.0.1')
    await new Promise<void>((r) => slow.once('connect', () => r()))
    slow.write('POST /auth HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"type":')
    // the first is now serving a request (head received): busy connections are never evicted
    await new Promise((r) => setTimeout(r, 300))
    // a second connection while the first is open: over the limit, closed by the server
    const extra = connect(addr.port, '127.0.0.1')
    extra.on('error', () => undefined)
    const extraClosed = await new Promise<boolean>((r) => {
      extra.once('close', () => r(true))
      setTimeout(() => r(false), 1500)
    })
    assert.equal(extraClosed, true)
    let reply = ''
    slow.on('data', (d: Buffer) => (reply += d.toString()))
    await new Promise<void>((r) => slow.once('close', () => r()))
    const took = Date.now() - started
    assert.ok(took >= 900 && took < 5000, `closed after ${took} ms`)
    assert.match(reply, /^HTTP\/1\.1 408/)
  } finally {
    await small.close(100)
  }
})
