/**
 * Example: an MCP client built with the official SDK (1.x) that authenticates with mcp-pki-auth.
 *
 *   npx tsx examples/mcp-client.ts --config client_config.yml --server-url http://127.0.0.1:8443/mcp [--call TOOL]
 *
 * Runs the handshake on first use (verifying the server key against the client allowlist and the
 * fingerprint pinned under `servers:`), then lists the tools and calls `whoami`. See docs/mcp-client.md.
 * Outside this repository import from 'mcp-pki-auth/mcp/client' instead of '../src/…'.
 */
import { parseArgs } from 'node:util'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createAuthFetchFromConfig } from '../src/mcp/client.js'

const { values } = parseArgs({
  options: {
    config: { type: 'string', default: 'client_config.yml' },
    'server-url': { type: 'string', default: 'http://127.0.0.1:8443/mcp' },
    // Another server's tool instead of whoami/admin_echo (e.g. `--call caller` behind mcp-pki-gateway).
    call: { type: 'string' },
  },
})
const url = values['server-url']!

const authFetch = await createAuthFetchFromConfig(values.config!, url)
const client = new Client({ name: 'example-client', version: '1.0.0' })
await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch }))

const session = authFetch.current!
console.log(`authenticated: server key ${session.serverFingerprint}, my key ${session.clientFingerprint}`)
const { tools } = await client.listTools()
console.log(`tools: ${tools.map((t) => t.name).join(', ')}`)
if (values.call !== undefined) {
  const called = await client.callTool({ name: values.call, arguments: {} })
  console.log(`${values.call} → ${(called.content as { type: string; text: string }[])[0]!.text}`)
  await client.close()
  process.exit(called.isError ? 1 : 0)
}
const result = await client.callTool({ name: 'whoami', arguments: {} })
console.log(`whoami → ${(result.content as { type: string; text: string }[])[0]!.text}`)
const admin = await client.callTool({ name: 'admin_echo', arguments: { text: 'hello' } })
console.log(`admin_echo → ${admin.isError ? 'refused: ' : ''}${(admin.content as { type: string; text: string }[])[0]!.text}`)
await client.close()
