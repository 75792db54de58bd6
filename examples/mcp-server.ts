/**
 * Example: an MCP server built with the official SDK (1.x), protected by mcp-pki-auth.
 *
 *   npx tsx examples/mcp-server.ts --config server_config.yml [--port 8443] [--host 127.0.0.1]
 *
 * Serves POST /auth (the handshake) and an authenticated Streamable HTTP MCP endpoint at /mcp on
 * one port. Tools: `whoami` (who called: key fingerprint, role, org) and `admin_echo` (role admin only).
 * With `metrics.enabled` (or MCP_METRICS_ENABLED=true) it also serves Prometheus GET /metrics on
 * metrics.host:metrics.port (default 127.0.0.1:9464), a listener of its own.
 * See docs/mcp-server.md and docs/operations.md. Outside this repository import from 'mcp-pki-auth' and
 * 'mcp-pki-auth/mcp/server' instead of '../src/…'.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { loadConfig } from '../src/config/load-config.js'
import { callerOf, createMcpAuth, mountMcpAuth, requireRole, type McpRequest } from '../src/mcp/server.js'
import { createAuthMetrics } from '../src/metrics/auth-metrics.js'
import { serveMetrics } from '../src/metrics/metrics-server.js'
import { createAuthServiceFromConfig } from '../src/server/from-config.js'

const { values } = parseArgs({ options: { config: { type: 'string', default: 'server_config.yml' }, port: { type: 'string' }, host: { type: 'string' } } })

/** A plain SDK server; the only mcp-pki-auth calls are callerOf and requireRole. */
function buildMcpServer(): McpServer {
  const server = new McpServer({ name: 'example-protected-server', version: '1.0.0' })
  server.registerTool('whoami', { description: 'Who is calling (key fingerprint, role, org)' }, (extra) => {
    const caller = callerOf(extra)! // always set: every request to /mcp was authenticated
    return { content: [{ type: 'text', text: JSON.stringify({ fingerprint: caller.fingerprint, role: caller.role, org: caller.org }) }] }
  })
  server.registerTool(
    'admin_echo',
    { description: 'Echo, for callers whose allowlist role is "admin"', inputSchema: { text: z.string() } },
    requireRole('admin', ({ text }: { text: string }) => ({ content: [{ type: 'text' as const, text }] })),
  )
  return server
}

/** The SDK's stateful Streamable HTTP pattern: one transport per MCP session. */
const transports = new Map<string, StreamableHTTPServerTransport>()
async function handleMcp(req: McpRequest, res: ServerResponse): Promise<void> {
  const sessionId = req.headers['mcp-session-id']
  let transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined
  if (transport === undefined) {
    if (sessionId !== undefined || !isInitializeRequest(req.body)) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: no valid session"},"id":null}')
      return
    }
    const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (id) => void transports.set(id, created),
    })
    created.onclose = () => void (created.sessionId && transports.delete(created.sessionId))
    await buildMcpServer().connect(created)
    transport = created
  }
  await transport.handleRequest(req, res, req.body) // req.auth (set by mcp-pki-auth) reaches the tools as extra.authInfo
}

const config = await loadConfig(values.config!)
// Metrics: the service reports to `metrics`; serveMetrics puts GET /metrics on its own listener.
const metrics = config.metrics.enabled ? createAuthMetrics() : undefined
const { service, close } = await createAuthServiceFromConfig(config, metrics ? { metrics } : {})
const metricsListener = metrics ? await serveMetrics(metrics, { host: config.metrics.host, port: config.metrics.port }) : undefined
if (metricsListener) console.log(`metrics on ${metricsListener.url}`)
const mcpAuth = createMcpAuth(service)
const server = createServer()
mountMcpAuth(server, mcpAuth, { handler: handleMcp }) // POST /auth + authenticated /mcp

const port = values.port !== undefined ? Number(values.port) : config.transport.port
const host = values.host ?? config.transport.host
server.listen(port, host, () => {
  const { address, port: bound } = server.address() as AddressInfo
  console.log(`MCP server on http://${address}:${bound}/mcp (handshake at /auth); server key ${service.fingerprint}`)
})
process.once('SIGINT', () => {
  server.close()
  server.closeAllConnections()
  void metricsListener?.close()
  void close()
})
