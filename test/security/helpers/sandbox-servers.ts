/**
 * Servers made from a sandbox (a temporary folder with keys, allowlists and configs, as
 * `createSandbox` writes them), each stopped after the file's tests: the real server, an MCP
 * endpoint on node:http (a port or a Unix socket), one service on several loopback addresses, and
 * a fetch-style front. Plus the handshake steps attack tests need.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { loadConfig } from '../../../src/config/load-config.js'
import { createClientHandshake, type ClientSession } from '../../../src/handshake/client-handshake.js'
import { createMcpAuth, mountMcpAuth, type McpAuth, type McpFetchHandler } from '../../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../../src/server/from-config.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../../src/server/start-server.js'
import { onCleanup } from './cleanup.js'
import { quiet, replyCode, send, type Target } from './loopback-http.js'

/** A sandbox with the audit log off; `server` is merged into the server config. */
export async function sandbox(server: ConfigObject = {}): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-security-'))
  onCleanup(() => rm(dir, { recursive: true, force: true }))
  return createSandbox(dir, { server: { audit: { enabled: false }, ...server } })
}

/** The real server (mcp-pki-server's code path) from a sandbox config (a new sandbox unless `sb`). */
export async function startServer(server: ConfigObject = {}, sb?: Sandbox): Promise<{ sb: Sandbox; running: RunningServer; port: number }> {
  const box = sb ?? (await sandbox(server))
  const config = await loadConfig(box.serverConfigPath, { env: {} })
  const running = await startServerFromConfig(config, { audit: quiet(), allowlistPollMs: 100 })
  onCleanup(() => running.close())
  return { sb: box, running, port: running.address.port }
}

/** Message 1 of the sandbox client for `audience`. */
export const m1For = (sb: Sandbox, audience: string): unknown => createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start()

/** A whole handshake of the sandbox client over HTTP; fails the test if it is refused. */
export async function handshakeAt(to: Target, sb: Sandbox, audience: string, authPath = '/auth'): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) })
  const r2 = await send(to, { path: authPath, body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const r4 = await send(to, { path: authPath, body: JSON.stringify(await c.handleChallenge(r2.json)) })
  assert.equal(r4.status, 200, r4.text)
  return c.handleComplete(r4.json)
}

/** Whether message 1 for `audience` is answered with a challenge at `to`; a refusal must be invalid_message and grant nothing. */
export async function m1Status(to: Target, sb: Sandbox, audience: string): Promise<'accepted' | 'refused'> {
  const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
  if (r.status === 200 && r.json.type === 'auth_challenge') return 'accepted'
  assert.equal(r.status, 400, `${audience} at ${'host' in to ? to.host : ''}: ${r.text}`)
  assert.equal(replyCode(r), 'invalid_message', audience)
  assert.equal(r.json.challenge_token, undefined)
  return 'refused'
}

export interface McpServer {
  to: Target
  port: number | undefined
  configured: ConfiguredAuthService
  mcpAuth: McpAuth
  server: http.Server
}

/** createMcpAuth + mountMcpAuth on a node:http server listening on `where` (port 0 on loopback, or a Unix socket path). */
export async function mcpServer(sb: Sandbox, o: { where?: string; fetchHandler?: McpFetchHandler; clock?: () => number } = {}): Promise<McpServer> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100, ...(o.clock === undefined ? {} : { clock: o.clock }) })
  const mcpAuth = createMcpAuth(configured.service)
  const server = http.createServer()
  mountMcpAuth(server, mcpAuth, { fetchHandler: o.fetchHandler ?? ((_req, info) => Response.json({ reached: true, client: info.clientId })) })
  await new Promise<void>((r) => (o.where === undefined ? server.listen(0, '127.0.0.1', r) : server.listen(o.where, r)))
  onCleanup(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
    await configured.close()
  })
  const addr = server.address()
  const port = typeof addr === 'object' && addr !== null ? (addr as AddressInfo).port : undefined
  return { to: o.where === undefined ? { port: port! } : { socketPath: o.where }, port, configured, mcpAuth, server }
}

export interface Front {
  configured: ConfiguredAuthService
  mcpAuth: McpAuth
  /** One node:http server per address, all on the same port, all serving the same AuthService. */
  at: Record<string, { host: string; port: number }>
  port: number
}

/**
 * One AuthService (one handshake, one verdict cache) mounted on several node:http servers, one per
 * loopback address, all on the same port number.
 */
export async function front(sb: Sandbox, hosts: string[], o: { clock?: () => number } = {}): Promise<Front> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100, ...(o.clock === undefined ? {} : { clock: o.clock }) })
  onCleanup(() => configured.close())
  const mcpAuth = createMcpAuth(configured.service)
  const at: Front['at'] = {}
  let port = 0
  for (const host of hosts) {
    const server = http.createServer()
    mountMcpAuth(server, mcpAuth, { fetchHandler: (_req, info) => Response.json({ reached: true, client: info.clientId }) })
    await new Promise<void>((r, j) => {
      server.once('error', j)
      server.listen(port, host, r)
    })
    onCleanup(async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    })
    port = (server.address() as AddressInfo).port
    at[host] = { host, port }
  }
  return { configured, mcpAuth, at, port }
}

/** A node:http front for fetch-style handlers (what @hono/node-server and friends do): streams the body. */
export async function fetchFront(app: (request: Request) => Promise<Response>): Promise<number> {
  const server = http.createServer((req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD'
    const headers = new Headers()
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers.set(k, v)
    const init: RequestInit & { duplex?: 'half' } = { method: req.method ?? 'GET', headers }
    if (hasBody) {
      init.body = Readable.toWeb(req) as ReadableStream<Uint8Array>
      init.duplex = 'half'
    }
    app(new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, init)).then(
      async (response) => {
        res.writeHead(response.status, Object.fromEntries(response.headers))
        res.end(Buffer.from(await response.arrayBuffer()))
      },
      () => res.writeHead(500).end(),
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  onCleanup(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })
  return (server.address() as AddressInfo).port
}
