/**
 * mcp-pki-proxy (the built bin) driven over stdio by the SDK's StdioClientTransport, in front of
 * an SDK server protected by createMcpAuth with a service built from a YAML config.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { after, before, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { loadConfig } from '../../src/config/load-config.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createMcpAuth, mountMcpAuth } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { makeDeployment, PROXY_BIN, type Deployment } from './fixtures/deployment.js'
import { closeServer, listen, statefulMcpHandler, textOf, type ToolCalls } from './fixtures/harness.js'

let d: Deployment
let configured: ConfiguredAuthService
let server: Server
let origin: string
const calls: ToolCalls = { whoami: 0, admin: 0 }

before(async () => {
  assert.ok(existsSync(PROXY_BIN), `${PROXY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  d = await makeDeployment()
  configured = await createAuthServiceFromConfig(await loadConfig(d.serverConfig))
  server = createServer()
  mountMcpAuth(server, createMcpAuth(configured.service), { handler: statefulMcpHandler(calls) })
  origin = await listen(server)
})

after(async () => {
  await closeServer(server)
  await configured.close()
  await d.cleanup()
})

function proxyTransport(config: string, extra: string[] = []): StdioClientTransport {
  return new StdioClientTransport({ command: process.execPath, args: [PROXY_BIN, '--config', config, '--server-url', `${origin}/mcp`, ...extra], stderr: 'pipe' })
}

test('listTools and callTool through mcp-pki-proxy; the tool sees the proxy’s client key', async () => {
  const config = await d.writeClientConfig('client', { serverUrl: `${origin}/auth` })
  const transport = proxyTransport(config)
  let stderr = ''
  transport.stderr?.on('data', (c: Buffer) => (stderr += c.toString()))
  const client = new Client({ name: 'desktop-app', version: '1.0.0' })
  await client.connect(transport)
  try {
    const tools = await client.listTools()
    assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['admin_echo', 'whoami'])
    const result = await client.callTool({ name: 'whoami', arguments: {} })
    const me = JSON.parse(textOf(result)) as { clientId: string; role: string }
    assert.equal(me.clientId, d.client.fingerprint)
    assert.equal(me.role, 'trusted_client')
    const denied = await client.callTool({ name: 'admin_echo', arguments: { text: 'x' } })
    assert.equal(denied.isError, true)
    assert.equal(calls.whoami, 1)
    assert.equal(calls.admin, 0)
  } finally {
    await client.close()
  }
  assert.match(stderr, new RegExp(`authenticated to .* \\(server key ${d.server.fingerprint}\\) as ${d.client.fingerprint}`))
})

function runProxy(args: string[], input = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROXY_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })
}

test('a server with another key: the proxy exits 1 with a clear error on stderr, and the app gets it as a JSON-RPC error', async () => {
  const config = await d.writeClientConfig('pinned_other', { serverUrl: `${origin}/auth`, pinnedFingerprint: generateKeyPair().fingerprint })
  const before = calls.whoami
  const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })
  const r = await runProxy(['--config', config, '--server-url', `${origin}/mcp`], init + '\n')
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^error: server key [0-9a-f]{64} does not match the fingerprint pinned for this server/m)
  assert.match(r.stderr, /^hint: the server presented another key than the fingerprint pinned under servers:/m)
  // stdout carries only MCP: the answer to initialize is an error that says the same.
  const reply = JSON.parse(r.stdout.trim()) as { id: number; error: { code: number; message: string; data: { code: string } } }
  assert.equal(reply.id, 0)
  assert.equal(reply.error.data.code, 'server_key_mismatch')
  assert.match(reply.error.message, /does not match the fingerprint pinned .*Fix: the server presented another key/)
  assert.equal(calls.whoami, before)

  // And the SDK client sees the connection fail with that message (not "Connection closed").
  const client = new Client({ name: 'desktop-app', version: '1.0.0' })
  await assert.rejects(client.connect(proxyTransport(config)), /does not match the fingerprint pinned/)
})

test('an unreachable server and a client key the server does not know: exit 1 with error lines', async () => {
  const config = await d.writeClientConfig('client', { serverUrl: `${origin}/auth` })
  const down = await runProxy(['--config', config, '--server-url', 'http://127.0.0.1:1/mcp'])
  assert.equal(down.code, 1)
  assert.match(down.stderr, /^error: cannot reach http:\/\/127\.0\.0\.1:1\/auth/m)

  const stranger = await d.writeClientConfig('stranger', { serverUrl: `${origin}/auth`, keyPair: generateKeyPair() })
  const refused = await runProxy(['--config', stranger, '--server-url', `${origin}/mcp`])
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /^error: server refused: /m)
  assert.equal(refused.stdout, '')

  const usage = await runProxy(['--config', config])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /--server-url/)
})
