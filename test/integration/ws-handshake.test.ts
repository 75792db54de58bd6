import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { clientSetupFromConfig } from '../../src/transport/http-client.js'
import { authenticateWebSocket } from '../../src/transport/ws-client.js'

const dirs: string[] = []
const servers: RunningServer[] = []
after(async () => {
  for (const s of servers) await s.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function setup(server: ConfigObject = {}, wsHandshakeTimeoutMs?: number): Promise<{ sb: Sandbox; server: RunningServer; authenticated: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-ws-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { audit: { enabled: false }, ...server } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const authenticated: string[] = []
  const running = await startServerFromConfig(config, {
    audit: new AuditLogger({ enabled: false }),
    allowlistPollMs: 100,
    ...(wsHandshakeTimeoutMs === undefined ? {} : { wsHandshakeTimeoutMs }),
    onAuthenticated: (ws, conn) => {
      authenticated.push(conn.clientFingerprint)
      ws.on('message', (data) => ws.send(`echo:${String(data)}`))
    },
  })
  servers.push(running)
  return { sb, server: running, authenticated }
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
}

function nextFrame(ws: WebSocket): Promise<{ type?: string; error?: { code: string } }> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)) as { type?: string; error?: { code: string } })))
}

function closed(ws: WebSocket): Promise<number> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve(-1)
    ws.once('close', (code) => resolve(code))
  })
}

test('a full mutual handshake over WebSocket; the socket stays open and authenticated for application frames', async () => {
  const { sb, server, authenticated } = await setup()
  const clientConfig = await loadConfig(sb.clientConfigPath, { env: {} })
  const setupC = await clientSetupFromConfig(clientConfig, server.wsUrl)
  const { session, socket } = await authenticateWebSocket({ url: server.wsUrl, keyPair: setupC.keyPair, serverTrust: setupC.serverTrust, timeoutMs: 5000 })
  try {
    assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
    assert.deepEqual(session.serverMetadata, { role: 'mcp_server', endpoint: '127.0.0.1' })
    assert.deepEqual(authenticated, [sb.clientKey.fingerprint])
    assert.equal(server.ws.authenticatedConnections.size, 1)
    const [conn] = [...server.ws.authenticatedConnections.values()]
    assert.equal(conn!.clientFingerprint, sb.clientKey.fingerprint)
    socket.send('hello')
    const reply = await new Promise<string>((r) => socket.once('message', (d) => r(String(d))))
    assert.equal(reply, 'echo:hello')
    // the same session token works over HTTP-style verification (bearer check by token)
    assert.equal(server.configured.service.verifier.verifyToken(session.token).clientFingerprint, sb.clientKey.fingerprint)
  } finally {
    socket.close()
  }
})

test('an unknown client key and an untrusted server key are refused over WebSocket', async () => {
  const { sb, server } = await setup()
  await assert.rejects(authenticateWebSocket({ url: server.wsUrl, keyPair: generateKeyPair(), serverTrust: () => undefined, timeoutMs: 5000 }), { code: 'authentication_failed' })
  await assert.rejects(
    authenticateWebSocket({ url: server.wsUrl, keyPair: sb.clientKey, serverTrust: createServerTrust({ pinnedFingerprint: generateKeyPair().fingerprint }), timeoutMs: 5000 }),
    { code: 'server_key_mismatch' },
  )
  // A pin that follows server-key rotations refuses at message 4 (docs/PROTOCOL.md §15): the server has
  // completed its side by then, and drops the connection when the client cuts it.
  while (server.ws.authenticatedConnections.size !== 0) await new Promise((r) => setTimeout(r, 10))
  await assert.rejects(
    authenticateWebSocket({ url: server.wsUrl, keyPair: sb.clientKey, serverTrust: createServerTrust({ pinnedFingerprint: generateKeyPair().fingerprint, keyRotation: false }), timeoutMs: 5000 }),
    { code: 'server_key_mismatch' },
  )
  assert.equal(server.ws.authenticatedConnections.size, 0, 'a pin that does not follow rotations refuses at message 2')
})

test('bad frames get an auth_error frame with the code; the connection is closed after repeated errors', async () => {
  const { server } = await setup({ transport: { max_body_size: 2048 } })
  const ws = await open(server.wsUrl)
  const done = closed(ws)
  let frame = nextFrame(ws)
  ws.send(Buffer.from([1, 2, 3]), { binary: true })
  assert.equal((await frame).error?.code, 'invalid_message')
  frame = nextFrame(ws)
  ws.send('not json at all')
  assert.equal((await frame).error?.code, 'invalid_message')
  frame = nextFrame(ws)
  ws.send('"' + 'x'.repeat(3000) + '"')
  assert.equal((await frame).error?.code, 'payload_too_large')
  assert.equal(await done, 1008)
  assert.equal(server.ws.authenticatedConnections.size, 0)

  // far over the limit: cut by the WebSocket layer
  const big = await open(server.wsUrl)
  const bigClosed = closed(big)
  big.on('error', () => undefined)
  big.send('x'.repeat(10_000))
  assert.equal(await bigClosed, 1009)

  // the server still serves
  const ws2 = await open(server.wsUrl)
  const f = nextFrame(ws2)
  ws2.send('{"type":"auth_request"}')
  assert.equal((await f).error?.code, 'invalid_message')
  ws2.close()
})

test('a connection that does not finish the handshake in time is closed', async () => {
  const { server } = await setup({}, 300)
  const ws = await open(server.wsUrl)
  const frame = nextFrame(ws)
  const code = await closed(ws)
  assert.equal(code, 1008)
  assert.equal((await frame).error?.code, 'challenge_expired')
})

test('an authenticated connection is closed when its key is removed from the allowlist', async () => {
  const { sb, server } = await setup()
  const { socket } = await authenticateWebSocket({ url: server.wsUrl, keyPair: sb.clientKey, serverTrust: () => undefined, timeoutMs: 5000 })
  const frame = nextFrame(socket)
  const done = closed(socket)
  await updateAllowlistFile(sb.serverAllowlistPath, (l) => {
    l.remove(sb.clientKey.fingerprint)
  })
  assert.equal((await frame).error?.code, 'session_revoked')
  assert.equal(await done, 1008)
  assert.equal(server.ws.authenticatedConnections.size, 0)
})

test('upgrades on other paths are refused', async () => {
  const { server } = await setup()
  await assert.rejects(open(server.wsUrl.replace('/ws', '/other')), /404/)
})
