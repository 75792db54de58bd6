/**
 * A protected node:http MCP endpoint whose handler records every request it is handed, in the two
 * patterns the docs show, and a session of the sandbox client with it.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../../src/config/load-config.js'
import { createClientHandshake, type ClientSession } from '../../../src/handshake/client-handshake.js'
import { createMcpAuth, mountMcpAuth, type McpRequest } from '../../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../../src/server/from-config.js'
import { createSandbox, type Sandbox } from '../../../src/server/sandbox.js'
import { onCleanup } from './cleanup.js'
import { quiet, send } from './loopback-http.js'

export interface ListenerSetup {
  sb: Sandbox
  configured: ConfiguredAuthService
  port: number
  /** `METHOD url auth=yes|none` for each request the MCP handler saw. */
  reached: string[]
}

/**
 * A protected node:http server. `style: 'listener'` is the pattern of mountMcpAuth's own @example:
 * the MCP transport is the server's existing 'request' listener and no `handler` is passed.
 * `style: 'handler'` is the pattern of docs/mcp-server.md (`mountMcpAuth(server, mcpAuth, { handler })`).
 */
export async function mcpListener(style: 'listener' | 'handler'): Promise<ListenerSetup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-security-mcp-'))
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100 })
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
  return { sb, configured, port: await listenUntilCleanup(server, configured, dir), reached }
}

/** Listens on loopback; at clean-up closes the server and the service and removes `dir`. Returns the port. */
export async function listenUntilCleanup(server: http.Server, configured: ConfiguredAuthService, dir: string): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  onCleanup(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    await configured.close()
    await rm(dir, { recursive: true, force: true })
  })
  return (server.address() as AddressInfo).port
}

/** A session of the sandbox client, its audience the endpoint's /mcp URL. */
export async function listenerSession(s: Pick<ListenerSetup, 'sb' | 'port'>): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: s.sb.clientKey, audience: `http://127.0.0.1:${s.port}/mcp`, serverTrust: () => ({}) })
  const r2 = await send({ port: s.port }, { path: '/auth', body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const r4 = await send({ port: s.port }, { path: '/auth', body: JSON.stringify(await c.handleChallenge(JSON.parse(r2.text))) })
  assert.equal(r4.status, 200, r4.text)
  return c.handleComplete(JSON.parse(r4.text))
}
