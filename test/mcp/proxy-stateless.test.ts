/**
 * Issue 11.3: mcp-pki-proxy talks to servers of both eras. An SDK 2.x app that negotiates the
 * stateless 2026-07-28 revision (no initialize, `_meta` on every request, `server/discover`) and an
 * SDK 1.x app (initialize, Mcp-Session-Id) reach the same stateless 2.x server through the built
 * proxy, each authenticated with the proxy's client key.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { after, before, test } from 'node:test'
import { Client } from '@modelcontextprotocol/client'
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio'
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server'
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport as StdioClientTransport1 } from '@modelcontextprotocol/sdk/client/stdio.js'
import { loadConfig } from '../../src/config/load-config.js'
import { callerOf, createMcpAuth, mountMcpAuth } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { makeDeployment, PROXY_BIN, type Deployment } from './fixtures/deployment.js'
import { closeServer, listen, textOf } from './fixtures/harness.js'

let d: Deployment
let configured: ConfiguredAuthService
let server: Server
let origin: string
let handler: ReturnType<typeof createMcpHandler>
const versions: (string | null)[] = []
const methods: string[] = []

function buildServer(): McpServer {
  const mcp = new McpServer({ name: 'stateless-server', version: '1.0.0' })
  mcp.registerTool('whoami', { description: 'who is calling' }, (ctx) => {
    const text = JSON.stringify({ clientId: ctx.http?.authInfo?.clientId, role: callerOf(ctx)?.role })
    return { content: [{ type: 'text', text }] }
  })
  return mcp
}

before(async () => {
  assert.ok(existsSync(PROXY_BIN), `${PROXY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  d = await makeDeployment()
  configured = await createAuthServiceFromConfig(await loadConfig(d.serverConfig))
  handler = createMcpHandler(() => buildServer())
  server = createServer()
  mountMcpAuth(server, createMcpAuth(configured.service), {
    fetchHandler: async (request, authInfo) => {
      versions.push(request.headers.get('mcp-protocol-version'))
      const body = request.method === 'POST' ? ((await request.clone().json()) as { method?: string }) : {}
      if (typeof body.method === 'string') methods.push(body.method)
      return handler.fetch(request, { authInfo })
    },
  })
  origin = await listen(server)
})

after(async () => {
  await handler.close()
  await closeServer(server)
  await configured.close()
  await d.cleanup()
})

test('an SDK 2.x app on the 2026-07-28 revision: no initialize, every request carries that version', async () => {
  const config = await d.writeClientConfig('modern', { serverUrl: `${origin}/auth` })
  versions.length = 0
  methods.length = 0
  const client = new Client({ name: 'modern-app', version: '1.0.0' }, { versionNegotiation: { mode: 'auto' } })
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [PROXY_BIN, '--config', config, '--server-url', `${origin}/mcp`, '--quiet'] }))
  try {
    assert.equal(client.getNegotiatedProtocolVersion(), '2026-07-28')
    const me = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as { clientId: string; role: string }
    assert.equal(me.clientId, d.client.fingerprint)
    assert.equal(me.role, 'trusted_client')
  } finally {
    await client.close()
  }
  assert.ok(!methods.includes('initialize'), `no initialize was sent: ${methods.join(', ')}`)
  assert.ok(methods.includes('tools/call'))
  assert.ok(versions.length > 0 && versions.every((v) => v === '2026-07-28'), `MCP-Protocol-Version headers: ${versions.join(', ')}`)
})

test('an SDK 1.x app (initialize) reaches the same server through the proxy', async () => {
  const config = await d.writeClientConfig('legacy', { serverUrl: `${origin}/auth` })
  methods.length = 0
  const client = new Client1({ name: 'legacy-app', version: '1.0.0' })
  await client.connect(new StdioClientTransport1({ command: process.execPath, args: [PROXY_BIN, '--config', config, '--server-url', `${origin}/mcp`, '--quiet'] }))
  try {
    const me = JSON.parse(textOf(await client.callTool({ name: 'whoami', arguments: {} }))) as { clientId: string }
    assert.equal(me.clientId, d.client.fingerprint)
  } finally {
    await client.close()
  }
  assert.equal(methods[0], 'initialize')
})
