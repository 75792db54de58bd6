/**
 * Audience binding at the handshake: a message 1 (or 3) meant for another server is refused. With
 * auth.audience configured only those audiences pass; without it, only names of this machine on
 * the address and port the connection arrived on pass (however the URL is spelled), and paths with
 * no socket to check against (fetchAuthHandler, the compat facade, a Unix socket) fail closed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hostname } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { loadAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuthenticationEngine } from '../../src/compat.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake } from '../../src/handshake/client-handshake.js'
import { canonicalIp, namesThisServer } from '../../src/handshake/local-audience.js'
import { createMcpAuth } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig } from '../../src/server/from-config.js'
import type { ConfigObject } from '../../src/server/sandbox.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { honestHandshake, postAuth, postAuthWithHost } from './helpers/auth-endpoint.js'
import { onCleanup } from './helpers/cleanup.js'
import { quiet, replyCode, send } from './helpers/loopback-http.js'
import { fetchFront, front, handshakeAt, m1For, m1Status, mcpServer, sandbox, startServer } from './helpers/sandbox-servers.js'

const NO_LIMITS: ConfigObject = { auth: { rate_limit: { per_address: 0, per_key: 0 } } }

// From the red-team, handshake server, finding 4 (fixed).
test('a default server refuses a message 1 meant for another server, whatever Host header a relay writes', async () => {
  const { sb, port } = await startServer()
  const m1For = (audience: string): unknown => createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start()
  for (const audience of ['https://another-server.example/auth', `http://127.0.0.1:${port + 1}`, `http://[::1]:${port}`, 'x', `http://user@127.0.0.1:${port}`, `ftp://127.0.0.1:${port}`]) {
    const r = await postAuth(port, m1For(audience))
    assert.equal(r.status, 400, `${audience}: ${JSON.stringify(r.body)}`)
    assert.equal(r.body.error?.code, 'invalid_message', audience)
    assert.equal(r.body.type, 'auth_error')
    assert.equal(r.body.challenge_token, undefined, 'nothing granted')
  }
  // A relay at another.example forwards the client's message with Host: another.example.
  const relayed = await postAuthWithHost(port, m1For('https://another-server.example'), 'another-server.example')
  assert.equal(relayed.status, 400)
  assert.equal(relayed.body.error?.code, 'invalid_message')
  // The names of this machine on the port the request came in on are accepted, however spelled.
  for (const audience of [`http://127.0.0.1:${port}`, `http://localhost:${port}/auth`, `http://LOCALHOST:${port}`, `ws://127.0.0.1:${port}`, `https://127.0.0.1:${port}`]) {
    const r = await postAuth(port, m1For(audience))
    assert.equal(r.status, 200, `${audience}: ${JSON.stringify(r.body)}`)
  }
  assert.equal(await honestHandshake(sb, port), 'ok')
})

// From the red-team, handshake server, finding 4 (fixed).
test('with auth.audience set, only those audiences are accepted (also a relay through this machine)', async () => {
  const { sb, port } = await startServer({ auth: { audience: ['https://mcp.example.com', 'https://mcp2.example.com'] } })
  const m1For = (audience: string): unknown => createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start()
  assert.equal((await postAuth(port, m1For('https://mcp.example.com'))).status, 200)
  assert.equal((await postAuth(port, m1For('https://mcp2.example.com'))).status, 200)
  const local = await postAuth(port, m1For(`http://127.0.0.1:${port}`))
  assert.equal(local.status, 400, 'the local URL is not one of the configured audiences')
  assert.equal(local.body.error?.code, 'invalid_message')
  // A whole handshake with a configured audience completes (M3 is checked too).
  const c = createClientHandshake({ keyPair: sb.clientKey, audience: 'https://mcp.example.com', serverTrust: () => ({}) })
  const r2 = await postAuth(port, c.start())
  const r4 = await postAuth(port, await c.handleChallenge(r2.body))
  assert.equal(r4.status, 200, JSON.stringify(r4.body))
})

// From the red-team, handshake server, finding 4 (fixed).
test('over WebSocket the default audience check uses the socket port too', async () => {
  const { sb, port } = await startServer({ transport: { type: 'ws' } })
  const send = (audience: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
      ws.on('open', () => ws.send(JSON.stringify(createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start())))
      ws.on('message', (d: Buffer) => {
        resolve(JSON.parse(d.toString()) as Record<string, unknown>)
        ws.close()
      })
      ws.on('error', reject)
    })
  const bad = await send('https://another-server.example')
  assert.equal(bad.type, 'auth_error')
  assert.equal((bad.error as { code?: string }).code, 'invalid_message')
  const good = await send(`http://127.0.0.1:${port}`)
  assert.equal(good.type, 'auth_challenge')
})

// From the red-team round 2 (held).
test('audience spellings that really mean this machine on this port are accepted; look-alikes and other ports are refused', async () => {
  const { sb, port } = await startServer()
  const to = { port }
  // Each of these is parsed (WHATWG URL, as every client does) to a loopback name of this machine
  // on the port the request came in on: accepting them grants nothing meant for another server.
  const same = [
    `http://127.1:${port}`,
    `http://0x7f.1:${port}`,
    `http://2130706433:${port}`,
    `http://0177.0.0.1:${port}`,
    `http://%6c%6fcalhost:${port}`,
    `HTTP://LOCALHOST:${port}`,
    `http:\\\\127.0.0.1:${port}`,
    ` http://127.0.0.1:${port} `,
    `http://127.0.0.1:0${port}`,
    `http://127.0.0.1.:${port}`,
    `http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:${port}`,
    `ws://127.0.0.1:${port}`,
    `wss://localhost:${port}/ws`,
    `http://127.0.0.1:${port}\\@evil.example`,
    // the socket's own IPv4 address written as IPv4-mapped IPv6: the same address
    `http://[::ffff:127.0.0.1]:${port}`,
  ]
  for (const audience of same) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 200, `${audience}: ${r.text}`)
    assert.equal(r.json.type, 'auth_challenge', audience)
  }
  // Another port (explicit or by a scheme's default), a wildcard, another loopback address this
  // machine does not list, names that merely contain or resemble ours, userinfo and non-web schemes.
  const other = [
    `http://127.0.0.1:${port + 1}`,
    'http://127.0.0.1:443',
    'https://127.0.0.1',
    'ws://127.0.0.1',
    `http://127.0.0.1:${port + 65536}`,
    `http://0.0.0.0:${port}`,
    `http://0:${port}`,
    `http://127.0.0.2:${port}`,
    // ::1 is this machine too, but not the address this server's socket is on (127.0.0.1)
    `http://[0:0:0:0:0:0:0:1]:${port}`,
    `http://[::1]:${port}`,
    `http://localhost.:${port}`,
    `http://localhost.evil.example:${port}`,
    `http://127.0.0.1.nip.io:${port}`,
    `http://xn--localhost:${port}`,
    `http://user@127.0.0.1:${port}`,
    `http://127.0.0.1:${port}@evil.example`,
    `http://evil.example#@127.0.0.1:${port}`,
    `http://evil.example?@127.0.0.1:${port}`,
    `http://localhost:${port}:80`,
    `file://127.0.0.1:${port}`,
    `blob:http://127.0.0.1:${port}`,
    `ftp://127.0.0.1:${port}`,
    `127.0.0.1:${port}`,
    `//127.0.0.1:${port}`,
  ]
  for (const audience of other) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, `${audience}: ${r.text}`)
    assert.equal(replyCode(r), 'invalid_message', audience)
    assert.equal(r.json.challenge_token, undefined, `nothing granted for ${audience}`)
  }
})

// From the red-team round 2 (held).
test('message 3 is checked against the socket port too: a challenge won on one server cannot be finished on another port', async () => {
  // Two instances of one server (same key, same derived ticket key) on two ports.
  const a = await startServer()
  const b = await startServer({}, a.sb)
  assert.notEqual(a.port, b.port)
  const c = createClientHandshake({ keyPair: a.sb.clientKey, audience: `http://127.0.0.1:${a.port}`, serverTrust: () => ({}) })
  const r2 = await send({ port: a.port }, { path: '/auth', body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const m3 = JSON.stringify(await c.handleChallenge(r2.json))
  const atB = await send({ port: b.port }, { path: '/auth', body: m3 })
  assert.equal(atB.status, 400, atB.text)
  assert.equal(replyCode(atB), 'invalid_message')
  assert.equal(atB.json.session_token, undefined)
  // The refusal consumed nothing: the client can still finish where it meant to.
  const atA = await send({ port: a.port }, { path: '/auth', body: m3 })
  assert.equal(atA.status, 200, atA.text)
})

// From the red-team round 2, finding 1 (fixed).
test(
  'the default audience check binds the address the connection arrived on: a message 1 for another server on [::1]:P is refused by the server on 127.0.0.1:P',
  async () => {
    const a = await startServer()
    // Another server (another key) listens on the same port number on the IPv6 loopback.
    const b = await startServer({ transport: { host: '::1', port: a.port } })
    assert.equal(b.port, a.port)
    // A client of B (audience B's URL) relayed to A: A must refuse it.
    const r = await send({ port: a.port }, { path: '/auth', body: JSON.stringify(m1For(a.sb, `http://[::1]:${a.port}`)) })
    assert.equal(r.status, 400, r.text)
    assert.equal(replyCode(r), 'invalid_message')
  },
)

// From the red-team round 2, finding 2 (fixed).
test('mcpAuth.authHandler on a Unix socket (no local port) still applies the default audience check', async () => {
  const sb = await sandbox()
  const path = join(sb.dir, 'mcp.sock')
  const { to } = await mcpServer(sb, { where: path })
  for (const audience of ['https://another-server.example', 'http://localhost', 'http://127.0.0.1:0', 'x']) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, `${audience}: ${r.text}`)
    assert.equal(replyCode(r), 'invalid_message', audience)
    assert.equal(r.json.challenge_token, undefined, 'nothing granted')
  }
  // With the audience configured (what a server behind a proxy needs anyway) the handshake completes.
  const sb2 = await sandbox({ auth: { audience: 'https://mcp.example.com' } })
  const configuredAt = await mcpServer(sb2, { where: join(sb2.dir, 'mcp.sock') })
  const session = await handshakeAt(configuredAt.to, sb2, 'https://mcp.example.com')
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: '{}' })
  const ok = await send(configuredAt.to, { body: '{}', headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  assert.equal(ok.status, 200, ok.text)
})

// From the red-team round 2, finding 3 (fixed).
test(
  'fetchAuthHandler without a configured audience fails closed (it has no socket to check against)',
  async () => {
    const sb = await sandbox()
    const configured = await createAuthServiceFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), { audit: quiet() })
    onCleanup(() => configured.close())
    const mcpAuth = createMcpAuth(configured.service)
    const port = await fetchFront((request) => mcpAuth.fetchAuthHandler(request))
    const r = await send({ port }, { path: '/auth', body: JSON.stringify(m1For(sb, 'https://another-server.example')) })
    assert.equal(r.status, 400, r.text)
    assert.equal(replyCode(r), 'invalid_message')
  },
)

// From the red-team round 2 (held).
test('WebSocket /ws refuses a message 1 for another port or another server; the gateway-style authHandler checks the socket port', async () => {
  const sb = await sandbox()
  const { to, port } = await mcpServer(sb)
  for (const audience of [`http://127.0.0.1:${port! + 1}`, 'https://another-server.example']) {
    const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
    assert.equal(r.status, 400, r.text)
    assert.equal(replyCode(r), 'invalid_message')
  }
  const ok = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, `http://localhost:${port!}/mcp`)) })
  assert.equal(ok.status, 200, ok.text)
})

// From the red-team round 3 (held).
test('one service on 127.0.0.1, 127.0.0.2 and ::1 (same port) accepts an IP audience only on the socket it names, in any order (no verdict reused across addresses)', async () => {
  const sb = await sandbox(NO_LIMITS)
  const f = await front(sb, ['127.0.0.1', '127.0.0.2', '::1'])
  const P = f.port
  // audience → the one address whose socket may accept it (undefined: none; 'loopback': all three)
  const cases: Array<[string, string | undefined]> = [
    [`http://127.0.0.1:${P}`, '127.0.0.1'],
    [`http://127.0.0.2:${P}`, '127.0.0.2'],
    [`http://[::1]:${P}`, '::1'],
    [`http://[::ffff:127.0.0.2]:${P}`, '127.0.0.2'],
    [`http://[::ffff:7f00:2]:${P}`, '127.0.0.2'],
    [`http://[0:0:0:0:0:ffff:7f00:0001]:${P}`, '127.0.0.1'],
    [`http://2130706434:${P}`, '127.0.0.2'],
    [`  http://127.0.0.2:${P}/x y  `, '127.0.0.2'],
    // IPv4-compatible (deprecated) and NAT64 forms are other addresses, not the IPv4 one
    [`http://[::127.0.0.1]:${P}`, undefined],
    [`http://[::127.0.0.2]:${P}`, undefined],
    [`http://[64:ff9b::127.0.0.1]:${P}`, undefined],
    [`http://[::ffff:0:127.0.0.1]:${P}`, undefined],
    // zone ids are not URL hosts (the WHATWG parser refuses them)
    [`http://[fe80::1%25lo]:${P}`, undefined],
    [`http://[::1%25lo]:${P}`, undefined],
    [`http://[::ffff:127.0.0.1%25lo]:${P}`, undefined],
    [`http://127.0.0.3:${P}`, undefined],
    [`http://[::2]:${P}`, undefined],
    // spaces cannot splice the verdict cache key `${port} ${address} ${audience}`
    [`${P} 127.0.0.1 http://127.0.0.1:${P}`, undefined],
    [`127.0.0.1 http://127.0.0.1:${P}`, undefined],
    [`http://127.0.0.1:${P} 127.0.0.2`, undefined],
  ]
  const hosts = ['127.0.0.1', '127.0.0.2', '::1']
  // Forward and backward over the sockets: the first verdict for an audience is made on a different
  // socket each time, so a cache keyed without the address would show up as a wrong verdict.
  for (const order of [hosts, [...hosts].reverse(), ['127.0.0.2', '::1', '127.0.0.1']]) {
    for (const [audience, owner] of cases) {
      for (const host of order) {
        const got = await m1Status(f.at[host]!, sb, audience)
        assert.equal(got, owner === host ? 'accepted' : 'refused', `${JSON.stringify(audience)} on ${host}`)
      }
    }
  }
  // localhost means 127.0.0.1 / ::1 (what it resolves to), not any loopback address
  for (const host of hosts) assert.equal(await m1Status(f.at[host]!, sb, `http://localhost:${P}`), host === '127.0.0.2' ? 'refused' : 'accepted', host)
})

// From the red-team round 3 (held).
test('the verdict cache cap: 3000 distinct audiences (cache cleared three times) change no verdict; the cache holds at most 1024 audiences of ≤ 512 characters', async () => {
  const sb = await sandbox(NO_LIMITS)
  const f = await front(sb, ['127.0.0.1', '127.0.0.2'])
  const P = f.port
  const service = f.configured.service
  const at = async (address: string, audience: string): Promise<number> => (await service.handleMessage(m1For(sb, audience), { transport: 'http', localPort: P, localAddress: address })).status
  assert.equal(await at('127.0.0.1', `http://127.0.0.1:${P}`), 200)
  for (let i = 0; i < 3000; i++) {
    // long distinct audiences, half of which name this socket (a cached "true") on a path
    const audience = `http://127.0.0.${1 + (i % 2)}:${P}/${'a'.repeat(460)}${i}`
    assert.equal(await at('127.0.0.1', audience), i % 2 === 0 ? 200 : 400, audience.slice(0, 40))
  }
  assert.equal(await at('127.0.0.2', `http://127.0.0.1:${P}`), 400)
  assert.equal(await at('127.0.0.1', `http://127.0.0.1:${P}`), 200)
  // over the sockets too
  assert.equal(await m1Status(f.at['127.0.0.2']!, sb, `http://127.0.0.1:${P}`), 'refused')
  assert.equal(await m1Status(f.at['127.0.0.1']!, sb, `http://127.0.0.1:${P}`), 'accepted')
})

// From the red-team round 3 (held).
test('dual-stack socket addresses (IPv4 reached through a :: listener): IPv4-mapped local address, localhost off loopback, zone ids', () => {
  const P = 8080
  // An IPv4 client of a server listening on `::` is seen on local address ::ffff:a.b.c.d.
  assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, '::ffff:127.0.0.1'), true)
  assert.equal(namesThisServer(`http://[::1]:${P}`, P, undefined, '::ffff:127.0.0.1'), false)
  assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, '::1'), false)
  assert.equal(namesThisServer(`http://[::ffff:127.0.0.1]:${P}`, P, undefined, '::1'), false)
  assert.equal(namesThisServer(`http://[::127.0.0.1]:${P}`, P, undefined, '::ffff:127.0.0.1'), false)
  assert.equal(namesThisServer(`http://[::ffff:127.0.0.1]:${P}`, P, undefined, 'fe80::1%lo'), false)
  assert.equal(namesThisServer(`http://[fe80::1]:${P}`, P, undefined, 'fe80::1%eth0'), true, 'a link-local socket address without its zone')
  // localhost only on loopback, whatever the spelling of the socket's non-loopback address
  for (const local of ['192.0.2.10', '::ffff:192.0.2.10', '::ffff:c000:20a', 'fd00::2', '::', '0.0.0.0', '::ffff:0.0.0.0', '128.0.0.1', '::ffff:128.0.0.1']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), false, local)
    assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, local), false, local)
  }
  for (const local of ['127.0.0.1', '::ffff:127.0.0.1', '::1', '0:0:0:0:0:0:0:1']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), true, local)
  }
  // other loopback addresses are other servers as far as "localhost" goes
  for (const local of ['127.255.255.254', '::ffff:127.0.0.2']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), false, local)
  }
  assert.equal(canonicalIp('::ffff:127.0.0.1'), '127.0.0.1')
  assert.equal(canonicalIp('::127.0.0.1'), '[::7f00:1]')
  assert.equal(canonicalIp('[::ffff:127.0.0.1%lo]'), '127.0.0.1')
})

// From the red-team round 3, finding 1 (fixed).
test(
  'on loopback, localhost and the host name are accepted only on the address they resolve to: a server on 127.0.0.2:P refuses a handshake meant for http://<hostname>:P or http://localhost:P',
  async () => {
    const me = hostname().toLowerCase()
    const addresses = (await import('node:dns')).promises.lookup(me, { all: true })
    const resolved = (await addresses).map((a) => canonicalIp(a.address))
    // On this machine the host name is (typically) 127.0.0.1; a server on 127.0.0.2 is another server.
    const sbA = await sandbox()
    const a = await front(sbA, ['127.0.0.2'])
    if (resolved.includes('127.0.0.2')) return
    assert.equal(await m1Status(a.at['127.0.0.2']!, sbA, `http://${me}:${a.port}`), 'refused', `host name resolves to ${resolved.join(', ')}`)
    assert.equal(await m1Status(a.at['127.0.0.2']!, sbA, `http://localhost:${a.port}`), 'refused', 'localhost resolves to 127.0.0.1 / ::1')
  },
)

// From the red-team round 3 (held).
test('fetchAuthHandler without auth.audience refuses every handshake, machine-looking audiences included', async () => {
  const sb = await sandbox()
  const f = await front(sb, ['127.0.0.1'])
  for (const audience of ['http://localhost', 'http://127.0.0.1', `http://127.0.0.1:${f.port}`, `http://${hostname()}`, 'http://localhost:0', 'https://localhost', 'x']) {
    const res = await f.mcpAuth.fetchAuthHandler(new Request(`http://127.0.0.1:${f.port}/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(m1For(sb, audience)) }))
    assert.equal(res.status, 400, audience)
    const body = (await res.json()) as { error?: { code?: string }; challenge_token?: unknown }
    assert.equal(body.error?.code, 'invalid_message', audience)
    assert.equal(body.challenge_token, undefined)
  }
})

// From the red-team round 3, finding 2 (fixed).
test(
  'the compat facade (AuthenticationEngine.processAuthRequest) without a socket and without auth.audience refuses a message 1 meant for any other server',
  async () => {
    const sb = await sandbox()
    const config = await loadConfig(sb.serverConfigPath, { env: {} })
    assert.equal(config.auth.audience ?? null, null, 'the default configuration')
    const engine = new AuthenticationEngine(config, { keyPair: sb.serverKey, allowlist: await loadAllowlistFile(sb.serverAllowlistPath) })
    // A relay's audience: the client meant https://evil.example, which forwards the handshake here.
    assert.throws(() => engine.processAuthRequest(m1For(sb, 'https://evil.example')), (e: Error & { code?: string }) => e.code === 'invalid_message')
  },
)
